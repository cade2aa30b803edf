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

import raycollect as rc
from conftest import TAG_VAR, check_output, read_jsonl, tagged_chromiums, worker_nodes, replacements_rendered
from raycollect.jobs import content_id, to_plain

pytestmark = pytest.mark.browser
ROOT = Path(__file__).resolve().parents[1]


def _ids(jobs):
    return [content_id(to_plain(j)) for j in jobs]


def test_two_nodes_frames_from_both_and_a_node_removed_mid_run(ray_cluster_reset, chromium,
                                                               tmp_out):
    with worker_nodes(2, cpus=2) as (cluster, nodes):
        # Enough work left after the removal for Ray to see the node gone (its processes
        # can run on for a few seconds) while the run still needs the lost worker's leases.
        # And enough that jobs are still pending when the replacement is up (Ray took 20 s
        # to see the node gone here), so the replacement renders too.
        jobs = rc.orbit(400, 96, 72)
        removed = []
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
                elif removed and r.worker in ("w0", "w1"):
                    # The survivor alone can finish the run before the lost worker's death
                    # reaches the driver (its processes run on a little) or before its
                    # replacement comes up: a slower caller pauses the survivor (the
                    # driver's backlog fills) until the replacement (started, given a
                    # browser by its node's host, its page loaded) has rendered.
                    time.sleep(0.3)
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
    browsers = None
    try:
        # The cluster way: `raycollect browsers` beside the node, the driver as a Ray job.
        browsers = subprocess.Popen(
            [str(bindir / "raycollect"), "browsers", "--address", f"127.0.0.1:{gcs}"],
            env={**env, "RAY_AUTH_MODE": "token"}, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            start_new_session=True)
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
            os.killpg(browsers.pid, signal.SIGINT)
            try:
                browsers.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(browsers.pid, signal.SIGKILL)
        subprocess.run([ray_bin, "stop", "--force"], env=env, capture_output=True, timeout=120)
        shutil.rmtree(temp, ignore_errors=True)
    assert tagged_chromiums(str(tmp_path)) == [], "`raycollect browsers` left Chromium behind"
