"""Clusters: workers on several Ray nodes (ray.cluster_utils on one machine), a node removed
mid-run, and a driver run the way cluster users run it (`ray start` + `ray job submit`)."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pytest
import ray

import raycollect as rc
from conftest import TAG_VAR, check_output, read_jsonl, tagged_chromiums, worker_nodes, replacements_rendered
from raycollect.jobs import content_id, to_plain

pytestmark = pytest.mark.browser
ROOT = Path(__file__).resolve().parents[1]


def _ids(jobs):
    return [content_id(to_plain(j)) for j in jobs]


# The most the test waits on a condition below (Ray seeing a node gone, a replacement that
# starts and renders) before it fails: far longer than either takes on a loaded machine.
HOLD_LIMIT_S = 120.0
POLL_S = 0.2
STATUS_TIMEOUT_S = 10.0


def _hold_until(condition, what: str) -> None:
    """Consume nothing until `condition()` holds: the caller's loop stands still, the
    driver's backlog fills, and the workers that are left pause (they wait on the driver)."""
    deadline = time.monotonic() + HOLD_LIMIT_S
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not within {HOLD_LIMIT_S:.0f} s")
        time.sleep(POLL_S)


def _node_gone(node_id: str) -> bool:
    return not any(n["Alive"] for n in ray.nodes() if n["NodeID"] == node_id)


def _replacement_rendered(run, first: int) -> bool:
    """A worker started after the first `first` has rendered a frame, by its own counter
    (its frames may still wait in the driver's full backlog)."""
    for name, member in list(run.pool.members.items()):
        if int(name[1:]) < first:
            continue
        try:
            if ray.get(member.actor.status.remote(), timeout=STATUS_TIMEOUT_S)["frames"]:
                return True
        except (ray.exceptions.RayError, TimeoutError):
            continue
    return False


def test_two_nodes_frames_from_both_and_a_node_removed_mid_run(ray_cluster_reset, chromium,
                                                               tmp_out):
    """Workers on two nodes; one node is removed mid-run: its worker's leases come back
    through its death, a replacement starts on the node that is left and renders, and every
    job lands once, with frames from both nodes."""
    with worker_nodes(2, cpus=2) as (cluster, nodes):
        # The survivor alone could finish the run before the lost worker's death reaches the
        # driver (behind the frames in its backlog) or before the replacement renders. The
        # caller therefore stands still twice (the survivor pauses: the backlog fills): until
        # Ray has seen the node gone (so no replacement is placed on it), and, once the
        # driver has started the replacement, until that has rendered. In between it takes
        # at most the frames ahead of the death in the driver (64 taken, 64 in its backlog)
        # and the survivor renders at most as many again, so its leases after the removal
        # stay under ~350 whatever the machine's speed: 400 jobs leave the replacement some.
        jobs = rc.orbit(400, 96, 72)
        removed = []
        replacement_seen = False
        # A TTL far longer than Ray takes to see the node gone: the dead worker's leases come back
        # through its death (and its replacement), not by expiring.
        with rc.render(jobs, out=tmp_out, workers=2, progress=False, lease_ttl=120) as run:
            n = 0
            for r in run:
                n += 1
                if n == 20:
                    # Both workers have produced frames by now; take the node of the first.
                    victim = next(node for node in nodes if node.node_id == r.node)
                    removed.append(victim.node_id)
                    cluster.remove_node(victim, allow_graceful=False)
                    _hold_until(lambda: _node_gone(victim.node_id), "Ray saw the node gone")
                elif removed and not replacement_seen and run.pool.replaced:
                    _hold_until(lambda: _replacement_rendered(run, first=2),
                                "a replacement rendered")
                    replacement_seen = True
        manifest = check_output(tmp_out, _ids(jobs), run)
        by_node = {m["node"] for m in manifest}
        assert len(by_node) == 2, "frames came from both worker nodes"
        assert removed and removed[0] in by_node
        assert run.summary["workers_restarted"] >= 1
        assert replacements_rendered(run, first=2) > 0, run.summary["by_worker"]
        # The lost worker's leases came back through its death, not by expiring.
        assert run.summary["leases_expired"] == 0
        assert run.summary["failed"] == 0


def test_assets_reach_workers_on_every_node(ray_cluster_reset, chromium, tmp_path, tmp_out):
    """The assets folder is shipped through the object store; the driver's copy is gone
    before any worker starts, so the workers can only serve what Ray brought them."""
    import meshgen
    from scenes import model_scene

    root = tmp_path / "assets"
    meshgen.write_obj(root / "meshes" / "cube.obj", *meshgen.box((0.4, 0.4, 0.4)))
    v, f = meshgen.uv_sphere(0.25, 12, 24)
    meshgen.write_ply(root / "meshes" / "disc.ply", v, f)
    # A file unique to this run: its digest, and so its unpacked copy, is new.
    (root / "run.txt").write_text(str(tmp_path))
    with worker_nodes(2, cpus=1):
        from raycollect.assets import prepare

        shipped = prepare(root)
        assert shipped.shipped
        shutil.rmtree(root)
        jobs = [{"x": 0.02 * i, "camera": {"matrix": rc.look_at([0.05 * i - 0.5, 0.8, 2.5],
                                                                [0, 0, 0]).tolist(),
                                           "fov": 50, "width": 96, "height": 72}}
                for i in range(24)]
        # Small batches, so that both workers lease some of the jobs.
        with rc.render(jobs, scene=model_scene, assets=shipped, out=tmp_out, workers=2,
                       masks=True, progress=False, views_per_update=2) as run:
            results = {r.job_id: r for r in run}
        manifest = check_output(tmp_out, _ids(jobs), run)
        assert len({m["node"] for m in manifest}) == 2, "frames came from both worker nodes"
        for m in manifest:
            x, ids = m["params"]["x"], m["instances"]
            mask, cam = results[m["job_id"]].mask, m["camera"]
            for key, centre in (("cube", (x - 0.5, 0, 0)), ("disc", (x + 0.5, 0, 0))):
                u, v = rc.project(np.array([centre]), np.asarray(cam["matrix"]),
                                  np.asarray(cam["K"]))[0]
                assert mask[int(v), int(u)] == ids[key], (key, m["node"])


# `raycollect browsers` stops its browsers (each given seconds) and leaves within this.
BROWSERS_STOP_WAIT = 30.0


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_ray_job_submit_runs_collect_py(ray_cluster_reset, chromium, tmp_path):
    """As a user does it on the Ray that pip brings (2.60): a token in ~/.ray/auth_token
    (what any earlier local `ray.init()` leaves, or `ray get-auth-token --generate`), so
    `ray start --head` turns token authentication on; then every client runs with
    RAY_AUTH_MODE=token, as the README's cluster commands say."""
    bindir = Path(sys.executable).parent
    ray_bin = str(bindir / "ray")
    home = tmp_path / "home"  # the token file lands in this test's own ~/.ray
    home.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAY_AUTH")}
    env.update(PATH=f"{bindir}:{os.environ['PATH']}", RAY_ADDRESS="", HOME=str(home),
               **{TAG_VAR: str(tmp_path)})  # marks this test's browsers
    gcs, dash = _free_port(), _free_port()
    temp = Path(tempfile.mkdtemp(prefix="rc-", dir="/tmp"))  # socket paths must stay short
    subprocess.run([ray_bin, "get-auth-token", "--generate"], check=True, env=env,
                   capture_output=True, text=True, timeout=60)
    subprocess.run([ray_bin, "start", "--head", f"--port={gcs}", "--num-cpus=2",
                    "--dashboard-host=127.0.0.1", f"--dashboard-port={dash}",
                    f"--temp-dir={temp}", "--disable-usage-stats"],
                   check=True, env=env, capture_output=True, text=True, timeout=180)
    assert (home / ".ray" / "auth_token").exists()
    browsers, stopped_by_sigint = None, False
    try:
        # The cluster way: `raycollect browsers` beside the node, the driver as a Ray job.
        browsers = subprocess.Popen(
            [str(bindir / "raycollect"), "browsers", "--address", f"127.0.0.1:{gcs}"],
            env={**env, "RAY_AUTH_MODE": "token"}, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            start_new_session=True,
            # As a launcher's start command or `&` starts it: SIGINT ignored, inherited.
            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_IGN))
        out = tmp_path / "renders"
        # Without the README's RAY_AUTH_MODE=token the cluster refuses the submission.
        refused = subprocess.run(
            [ray_bin, "job", "list", "--address", f"http://127.0.0.1:{dash}"],
            env=env, capture_output=True, text=True, timeout=120)
        assert refused.returncode != 0 and "auth" in (refused.stdout + refused.stderr).lower()
        env["RAY_AUTH_MODE"] = "token"
        # Submitted right after `ray start`: the job agent may not be up yet, which the
        # documented script waits out (a busy CI machine once got "No available agent").
        job = subprocess.run(
            [sys.executable, str(ROOT / "scripts" / "job_submit.py"), "--address", f"http://127.0.0.1:{dash}",
             "--working-dir", str(ROOT), "--",
             "python", "scripts/collect.py", "--address", "auto", "--views", "10",
             "--size", "96x72", "--workers", "2", "--browsers", "external",
             "--out", str(out), "--no-progress"],
            env=env, capture_output=True, text=True, timeout=420, cwd=ROOT)
        assert job.returncode == 0, (job.stdout + job.stderr)[-4000:]
        assert "10 rendered" in job.stdout + job.stderr
        jobs = rc.orbit(10, 96, 72)
        check_output(out, _ids(jobs))
        assert len(read_jsonl(out / "manifest.jsonl")) == 10
        assert (out / "contact_sheet.png").exists()
    finally:
        if browsers is not None:
            # Ctrl-C, which `raycollect browsers` must obey even started in the background
            # (SIGINT inherited ignored: raycollect/cli.py handles it itself).
            os.killpg(browsers.pid, signal.SIGINT)
            try:
                browsers.wait(BROWSERS_STOP_WAIT)
            except subprocess.TimeoutExpired:
                os.killpg(browsers.pid, signal.SIGKILL)
                browsers.wait()
                stopped_by_sigint = False
            else:
                stopped_by_sigint = True
        subprocess.run([ray_bin, "stop", "--force"], env=env, capture_output=True, timeout=120)
        shutil.rmtree(temp, ignore_errors=True)
    assert stopped_by_sigint, (f"`raycollect browsers` did not stop on SIGINT within "
                               f"{BROWSERS_STOP_WAIT:.0f} s (it was killed)")
    assert tagged_chromiums(str(tmp_path)) == [], "`raycollect browsers` left Chromium behind"
