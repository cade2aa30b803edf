"""One owner per lease from lease to manifest: slow callers, early exits, reruns, lost nodes,
errors that must reach the user as themselves, and no hang at start."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil
import pytest

import raycollect as rc
from conftest import check_output, read_jsonl, render_all, worker_nodes
from raycollect.jobs import content_id, to_plain

pytestmark = pytest.mark.browser


def _ids(jobs):
    return [content_id(to_plain(j)) for j in jobs]


# Camera views per scene update in the slow-caller test: a worker's frame count moves once
# a batch, so small batches let a short stillness show that it waits on the driver.
SLOW_CALLER_VIEWS = 4
# How long the workers' frame counts must stand still, with the driver's backlog full, before
# they are taken to be waiting on the driver (a batch renders well within it, however busy
# the machine: a CI run saw 1.8 frames/s a worker here, so a batch of SLOW_CALLER_VIEWS takes
# ~2.2 s). Longer than the lease TTL, so the frames held meanwhile outlive their leases.
STILL_S = 8.0
HOLD_LIMIT_S = 180.0
# The caller's pace once it takes frames again: the last of the 2 x 64 frames the driver
# holds when the hold ends waits a further 12.8 s behind the others, well past its 3 s
# lease; the driver's backlog, not the pace, bounds what waits in the driver.
SLOW_CALLER_PACE_S = 0.1


def _hold_until_the_workers_wait(run) -> None:
    """Consume nothing until the driver's backlog is full and no worker has rendered a frame
    for STILL_S: the workers then wait on the driver, whatever the machine's speed (a fixed
    0.2 s per frame was once slower than two workers rendered, on a busy CI machine)."""
    import ray

    def frames() -> int:
        return sum(ray.get(m.actor.status.remote())["frames"]
                   for m in list(run.pool.members.values()))

    deadline = time.monotonic() + HOLD_LIMIT_S
    last, since = -1, time.monotonic()
    while time.monotonic() < deadline:
        now = frames()
        if now != last:
            last, since = now, time.monotonic()
        elif run.pool.inbox.full() and time.monotonic() - since >= STILL_S:
            return
        time.sleep(0.5)
    raise AssertionError(f"the backlog never filled: {last} frames in {HOLD_LIMIT_S} s")


def test_slow_caller_causes_no_rerender_and_keeps_memory_flat(ray_local, chromium, tmp_out):
    """The caller holds its first frame until the driver's backlog is full and the workers
    stand still, then takes 0.1 s per frame; a 3 s lease TTL, three times more jobs than the
    driver's backlog holds: the backlog fills, the workers pause (they wait on the driver),
    the frames behind it wait longer than their leases would last, yet every job renders
    once, on its first attempt, nothing refused, and the driver's memory stays flat."""
    from raycollect.pool import DRIVER_BACKLOG

    n = 3 * DRIVER_BACKLOG
    jobs = rc.orbit(n, 96, 72)
    me = psutil.Process()
    rss = {}
    with rc.render(jobs, out=tmp_out, workers=2, lease_ttl=3.0, progress=False,
                   views_per_update=SLOW_CALLER_VIEWS) as run:
        for i, _ in enumerate(run):
            if i == 0:
                _hold_until_the_workers_wait(run)
            time.sleep(SLOW_CALLER_PACE_S)
            if i in (DRIVER_BACKLOG, n - 1):
                rss[i] = me.memory_info().rss
    manifest = check_output(tmp_out, _ids(jobs), run)
    assert len(manifest) == n
    assert {m["attempt"] for m in manifest} == {1}, "a frame was rendered again"
    assert run.summary["stale_refused"] == 0 and run.summary["failed"] == 0
    # The backlog bound was reached: the workers waited on the driver.
    waited = sum(w["wait_s"]["driver"] for w in run.summary["by_worker"].values())
    assert waited > 1.0, run.summary["by_worker"]
    # The backlog is bounded: waiting frames do not pile up in the driver.
    grown = rss[n - 1] - rss[DRIVER_BACKLOG]
    assert grown < 40 * 2**20, grown / 2**20


def test_rerun_with_another_job_list_renders_only_that_list(ray_local, chromium, tmp_out):
    # More jobs than two batches: breaking out after the first frames leaves most pending.
    first = rc.orbit(40, 96, 72)
    with rc.render(first, out=tmp_out, workers=1, progress=False) as run:
        for n, _ in enumerate(run, 1):
            if n == 4:
                break  # the rest of the first list stays pending in the journal
    recorded = len(read_jsonl(tmp_out / "manifest.jsonl"))
    assert 4 <= recorded < 40
    other = rc.orbit(6, 96, 72, radius=3.0)
    results, run = render_all(other, out=tmp_out, workers=1)
    assert set(results) == set(_ids(other)), "the rerun rendered jobs it was not given"
    assert run.summary["rendered"] == 6 and run.summary["failed"] == 0
    assert run.summary["parked"] == 40 - recorded
    manifest = check_output(tmp_out, _ids(other), run)
    assert len(manifest) == len({m["job_id"] for m in manifest}) < 40
    from raycollect.cli import main
    import contextlib
    import io

    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        assert main(["status", "--out", str(tmp_out)]) == 0
    status = json.loads(buf.getvalue())
    assert status["journal"]["pending"] == 40 - recorded  # the first list's rest, on record


def _alive_actors() -> list[str]:
    """raycollect's actors still running in this test's own Ray (whose processes descend from
    this one; another Ray on the machine is not ours), by their titles (ray::<Class>...)."""
    names = ("ray::_RenderWorker", "ray::_BrowserHost", "ray::_QueueActor")
    out = []
    for p in psutil.Process().children(recursive=True):
        try:
            cmd = " ".join(p.cmdline())
        except psutil.Error:
            continue
        out += [n for n in names if cmd.startswith(n)]
    return out


def _chromium_for(ports) -> list[int]:
    pids = []
    for p in psutil.process_iter(["cmdline"]):
        cmd = " ".join(p.info["cmdline"] or [])
        if "raycollect-chromium-" in cmd and any(f"127.0.0.1:{port}" in cmd for port in ports):
            pids.append(p.pid)
    return pids


def test_break_out_of_the_loop_leaves_nothing_running(ray_local, chromium, tmp_out):
    with rc.render(rc.orbit(40, 96, 72), out=tmp_out, workers=2, progress=False) as run:
        for n, _ in enumerate(run, 1):
            if n == 3:
                ports = [m.info["port"] for m in run.pool.members.values()]
                # This run's browsers, found by port (the second may still be starting).
                deadline = time.time() + 60
                while len(_chromium_for(ports)) < len(ports) and time.time() < deadline:
                    time.sleep(0.2)
                assert len(_chromium_for(ports)) == len(ports) == 2
                break
    deadline = time.time() + 30
    while (_chromium_for(ports) or _alive_actors()) and time.time() < deadline:
        time.sleep(0.5)
    assert _chromium_for(ports) == [] and _alive_actors() == []
    check_output(tmp_out, [])  # what was recorded is whole


def test_chromium_that_cannot_launch_fails_the_run_with_that_cause(ray_local, tmp_path,
                                                                   monkeypatch):
    broken = tmp_path / "chromium"
    broken.write_text("#!/nonexistent/interpreter\n")  # exists and is executable; exec fails
    broken.chmod(0o755)
    monkeypatch.setenv("RAYCOLLECT_CHROMIUM", str(broken))
    # With a session timeout of 5 minutes, the run would end with NoBrowser much later if
    # the launch failure were not reported as itself.
    with pytest.raises(rc.BrowserError, match="cannot start"):
        render_all(rc.orbit(4, 96, 72), workers=1, session_timeout=300)


def test_node_lost_with_workers_auto_finishes_on_the_rest(ray_cluster_reset, chromium, tmp_out):
    """--workers auto takes every CPU slot: after a node is lost no replacement can be
    placed, and the run finishes on the surviving worker, exactly once."""
    with worker_nodes(2, cpus=1) as (cluster, nodes):
        jobs = rc.orbit(60, 96, 72)
        with rc.render(jobs, out=tmp_out, workers="auto", progress=False, lease_ttl=10,
                       views_per_update=2) as run:
            removed = False
            for n, r in enumerate(run, 1):
                if n == 10:
                    victim = next(node for node in nodes if node.node_id == r.node)
                    cluster.remove_node(victim, allow_graceful=False)
                    removed = True
                elif removed and run.pool.replaced == 0:
                    # The survivor alone can finish the run before the lost worker's death
                    # reaches the driver (a full-suite run saw it): a slower caller pauses
                    # the survivor until the driver has seen the death.
                    time.sleep(0.1)
        check_output(tmp_out, _ids(jobs), run)
        assert run.summary["failed"] == 0 and run.summary["workers_restarted"] >= 1


def test_a_stale_cluster_record_does_not_hang_a_run(ray_cluster_reset, chromium, tmp_path):
    import socket

    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        dead = s.getsockname()[1]
    tmp = Path(tempfile.mkdtemp(prefix="rc-", dir="/tmp"))  # Ray's socket paths stay short
    (tmp / "ray").mkdir()
    (tmp / "ray" / "ray_current_cluster").write_text(f"127.0.0.1:{dead}")
    env = {**os.environ, "RAY_TMPDIR": str(tmp), "RAY_ADDRESS": ""}
    cmd = [sys.executable, "-m", "raycollect.cli", "run", "--views", "3", "--size", "64x48",
           "--workers", "1", "--no-progress"]
    try:
        done = subprocess.run([*cmd, "--out", str(tmp_path / "a")], env=env, timeout=180,
                              capture_output=True, text=True)
        assert done.returncode == 0, done.stderr[-3000:]
        assert len(read_jsonl(tmp_path / "a" / "manifest.jsonl")) == 3
        t0 = time.time()
        refused = subprocess.run([*cmd, "--address", "auto", "--out", str(tmp_path / "b")],
                                 env=env, timeout=180, capture_output=True, text=True)
        assert refused.returncode == 2
        assert f"127.0.0.1:{dead}" in refused.stderr and "ray stop" in refused.stderr
        assert time.time() - t0 < 60
    finally:
        import shutil

        shutil.rmtree(tmp, ignore_errors=True)


def test_the_run_fails_only_when_no_worker_is_left(ray_cluster_reset, chromium, tmp_out):
    """One node lost: the run goes on with the other's worker. Both lost, and no slot left
    for a replacement: the run fails (after `no_worker_timeout`) instead of waiting forever,
    and what it recorded is whole."""
    from raycollect.errors import RunFailed

    with worker_nodes(2, cpus=1) as (cluster, nodes):
        jobs = rc.orbit(300, 96, 72)
        after_first = 0
        with pytest.raises(RunFailed, match="no render worker"):
            with rc.render(jobs, out=tmp_out, workers="auto", progress=False, lease_ttl=10,
                           views_per_update=2, no_worker_timeout=5) as run:
                for n, r in enumerate(run, 1):
                    if n == 10:
                        first = next(node for node in nodes if node.node_id == r.node)
                        cluster.remove_node(first, allow_graceful=False)
                    elif n > 10 and run.pool.replaced == 0:
                        time.sleep(0.1)  # until the driver has seen the first death
                    elif n > 10:
                        after_first += 1
                        if after_first == 20:  # the survivor rendered on alone; now it too
                            for node in nodes:
                                if node is not first:
                                    cluster.remove_node(node, allow_graceful=False)
        assert after_first >= 20
        check_output(tmp_out, [])  # what was recorded is whole
