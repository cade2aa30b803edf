"""Nothing lost: kills, crashes and bad input, each against real Ray, Chromium and files.

After every scenario the output holds every job exactly once (check_output)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
import uuid

import pytest
import ray

import raycollect as rc
from raycollect import driver
from raycollect.testing import chaos
from conftest import TAG_VAR, check_output, read_jsonl, tagged_chromiums, replacements_rendered
from raycollect.jobs import content_id, to_plain
from scenes import broken_scene

pytestmark = pytest.mark.browser


def _ids(jobs):
    return [content_id(to_plain(j)) for j in jobs]


def _run_with(jobs, out, actions: dict, until_replaced: bool = False, **kwargs):
    """Render, calling actions[n](run) once the n-th frame has arrived. until_replaced:
    after the first action, take frames slowly (the driver's backlog fills and pauses the
    survivors) until a worker started as a replacement has rendered one."""
    kwargs.setdefault("progress", False)
    first = kwargs.get("workers", 2)
    with rc.render(jobs, out=out, **kwargs) as run:
        n, replacement_seen = 0, False
        for r in run:
            n += 1
            replacement_seen = replacement_seen or int(r.worker[1:]) >= first
            if n in actions:
                actions[n](run)
            elif until_replaced and n > min(actions) and not replacement_seen:
                time.sleep(0.2)
    return run


def test_worker_killed_by_ray_and_by_sigkill_is_replaced(ray_local, chromium, tmp_out):
    # More jobs after the kills than the driver's backlog holds, so a slow caller can pause
    # the survivor until a replacement has rendered.
    jobs = rc.orbit(200, 96, 72)
    killed = []

    def ray_kill(run):
        member = run.pool.members["w0"]
        killed.append(member.id)
        ray.kill(member.actor, no_restart=True)

    def sigkill(run):
        member = next(m for m in run.pool.members.values() if m.id not in killed)
        killed.append(member.id)
        os.kill(member.info["pid"], signal.SIGKILL)

    # A TTL far longer than the run: the killed workers' leases must come back through their
    # deaths, at once, not by expiring.
    run = _run_with(jobs, tmp_out, {8: ray_kill, 24: sigkill}, workers=2, lease_ttl=60,
                    until_replaced=True)
    manifest = check_output(tmp_out, _ids(jobs), run)
    # The killed workers' leases came back through their deaths, not by expiring: jobs were
    # rendered again, and no lease ran out.
    assert any(m["attempt"] > 1 for m in manifest)
    assert run.summary["leases_expired"] == 0
    assert run.summary["workers_restarted"] >= 2
    assert replacements_rendered(run, first=2) > 0, run.summary["by_worker"]
    assert run.summary["failed"] == 0


def test_browser_killed_mid_run_is_relaunched(ray_local, chromium, tmp_out, monkeypatch):
    # The driver reads its browser hosts every few seconds; a run that ends soon after a
    # crash must still count it. A long period makes "soon" certain here.
    monkeypatch.setattr(driver, "BROWSER_STATUS_PERIOD", 3600.0)
    jobs = rc.orbit(40, 96, 72)
    pids = []

    def kill_browser(run):
        deadline = time.time() + 20  # the previous victim may still be relaunching
        while time.time() < deadline:
            for worker in list(run.pool.members):
                pid = chaos.kill_browser(run, worker)
                if pid:
                    pids.append(pid)
                    # Once its host has counted the crash it belongs in the run's summary,
                    # however soon after it the run ends.
                    while (run.pool.browser_status()["restarts"] < len(pids)
                           and time.time() < deadline):
                        time.sleep(0.1)
                    return
            time.sleep(0.2)
        pids.append(None)

    # The first kill is early (the run goes on with a relaunched browser); the second comes
    # with the last frame, so the summary must have read the browsers after it. Each kill
    # ends an attempt of the batch on that page, and the same jobs can be on the next
    # victim's page too: allow more than the default 3 so the kills alone never dead-letter
    # a job (seen once in a full run).
    run = _run_with(jobs, tmp_out, {5: kill_browser, len(jobs): kill_browser}, workers=2,
                    max_attempts=5)
    assert all(pids), "there was a browser to kill"
    check_output(tmp_out, _ids(jobs), run)
    assert run.summary["browsers_restarted"] == 2
    assert run.summary["failed"] == 0


def test_browser_that_keeps_crashing_is_given_up(ray_local):
    from raycollect.browser import BrowserManager

    q = rc.JobQueue.create(name="crashy-browsers")
    q.register_worker("wx", {"url": "http://127.0.0.1:9/", "node_id": "n1"})
    manager = BrowserManager(q, node_id="n1", binary="/bin/false", poll_period=0.05).start()
    try:
        deadline = time.time() + 30
        while not manager.errors and time.time() < deadline:
            time.sleep(0.05)
    finally:
        manager.stop()
    assert manager.errors and "crashed 5 times" in manager.errors[0]
    assert manager.slots["wx"].launches == 5  # bounded: no more launches after giving up


# Frames a browser serves before its host recycles it, in the recycle test: fewer than a
# worker renders before the driver's full backlog pauses it (the driver holds up to two
# records' worth, 2 x 64 frames, and the generator two batches more), so a caller that stands
# still at its first frame sees a recycle; and few enough recycles over RECYCLE_JOBS that
# the run does not spend itself relaunching browsers (each costs a relaunch and a batch).
RECYCLE_FRAMES = 60
# More than a worker can render while the caller stands still (~190, above): frames are
# rendered after the recycle too, in the relaunched browser.
RECYCLE_JOBS = 240
HOLD_LIMIT_S = 120.0  # the longest the caller stands still waiting for a recycle


def test_browsers_are_recycled_after_a_number_of_frames(ray_local, chromium, tmp_out):
    """A browser is recycled once it has served `recycle_frames` frames (its host reads the
    worker's count from the registry, refreshed every second); the run goes on in the
    relaunched browser, every job once, and a recycle is not counted as a crash."""
    jobs = rc.orbit(RECYCLE_JOBS, 96, 72)
    with rc.render(jobs, out=tmp_out, workers=1, recycle_frames=RECYCLE_FRAMES,
                   progress=False, max_attempts=5) as run:
        for n, _ in enumerate(run, 1):
            if n == 1:
                # Stand still until the host has recycled the browser: however fast the
                # worker renders, the run cannot end before a refresh of the registry has
                # shown the host RECYCLE_FRAMES frames.
                deadline = time.monotonic() + HOLD_LIMIT_S
                while run.pool.browser_status()["recycles"] < 1:
                    assert time.monotonic() < deadline, "no browser was recycled"
                    time.sleep(0.2)
    check_output(tmp_out, _ids(jobs), run)
    assert run.summary["browsers_recycled"] >= 1
    assert run.summary["browsers_restarted"] == 0  # a recycle is not a crash
    assert run.summary["failed"] == 0


def test_queue_actor_killed_mid_run_recovers_from_its_journal(ray_local, chromium, tmp_out):
    jobs = rc.orbit(48, 96, 72)

    def kill_queue(run):
        ray.kill(run.queue._actor, no_restart=False)  # Ray restarts it; the journal refills it

    run = _run_with(jobs, tmp_out, {10: kill_queue}, workers=2)
    check_output(tmp_out, _ids(jobs), run, faults=1)
    assert run.summary["failed"] == 0


def _signal(pid: int, sig: int) -> None:
    try:
        os.kill(pid, sig)
    except ProcessLookupError:  # the run ended and took the process with it
        pass


RUN_BETWEEN_FREEZES = 2.5  # seconds a thawed worker runs before it is frozen again


def test_late_worker_completion_is_refused_and_never_lands(ray_local, chromium, tmp_out):
    """A worker frozen past its lease TTL (presumed dead) comes back: the queue refuses its
    frames by token, the jobs were rendered elsewhere, and the output has each once."""
    # Enough work that w1 is still rendering when w0 wakes up with its stale batch.
    jobs = rc.orbit(600, 160, 120)
    freezes, thawed = [], threading.Event()
    thawed.set()
    ran_since = [time.monotonic()]  # when w0 was last let go

    def thaw(pid):
        _signal(pid, signal.SIGCONT)
        ran_since[0] = time.monotonic()
        thawed.set()

    def freeze_w0(run):
        # A frozen worker can wake to find its batch failed instead of finished (a settle
        # or grab that timed out while it was stopped: the batch is given back, which the
        # queue refuses too, but no late frame is sent), and a freeze that comes before
        # w0's first batch is on its page (the page still loading) leaves it nothing late
        # to send. So: freeze it again each time it has run RUN_BETWEEN_FREEZES since its
        # last thaw (time to send the late frame), until a late frame has been refused.
        member = run.pool.members.get("w0")
        if member is None or not thawed.is_set() or \
                time.monotonic() - ran_since[0] < RUN_BETWEEN_FREEZES or \
                (freezes and run.queue.stats()["stale_refused"]):
            return
        freezes.append(member.info["pid"])
        thawed.clear()
        os.kill(member.info["pid"], signal.SIGSTOP)
        threading.Timer(4.0, thaw, (member.info["pid"],)).start()

    run = _run_with(jobs, tmp_out, {n: freeze_w0 for n in range(4, len(jobs))}, workers=2,
                    lease_ttl=2.0, views_per_update=4)
    check_output(tmp_out, _ids(jobs), run)
    # The late frames reached the driver and were refused: none of them is in the output.
    assert run.summary["stale_refused"] >= 1, (f"no late frame in {len(freezes)} freezes; "
                                               f"{run.summary['by_worker']}")
    assert run.summary["failed"] == 0


def _cli(args, env=None, **kw):
    return subprocess.Popen([sys.executable, "-m", "raycollect.cli", *args],
                            env={**os.environ, **(env or {})}, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, start_new_session=True, **kw)


def test_driver_sigkilled_then_rerun_renders_only_the_missing(ray_cluster_reset, chromium,
                                                              tmp_path):
    out = tmp_path / "renders"
    args = ["run", "--views", "48", "--size", "96x72", "--workers", "2", "--out", str(out),
            "--no-progress"]
    tag = {TAG_VAR: uuid.uuid4().hex}  # this test's browsers carry it in their environment
    first = _cli(args, env=tag)
    manifest = out / "manifest.jsonl"
    deadline = time.time() + 180
    while time.time() < deadline and first.poll() is None:
        if manifest.exists() and len(read_jsonl(manifest)) >= 12:
            break
        time.sleep(0.1)
    assert first.poll() is None, first.communicate()[0][-3000:]
    assert tagged_chromiums(tag[TAG_VAR]), "this test's browsers cannot be told apart"
    os.killpg(first.pid, signal.SIGKILL)
    first.wait()
    done_before = len(read_jsonl(manifest))
    assert 12 <= done_before < 48
    deadline = time.time() + 30  # the killed driver's browsers die with their parents
    while tagged_chromiums(tag[TAG_VAR]) and time.time() < deadline:
        time.sleep(0.5)
    assert tagged_chromiums(tag[TAG_VAR]) == []

    second = _cli(args, env=tag)
    text = second.communicate(timeout=300)[0]
    assert second.returncode == 0, text[-3000:]
    jobs = rc.orbit(48, 96, 72)
    check_output(out, _ids(jobs))
    # Only the missing were rendered (the writer would drop any other frame before the
    # manifest, so its line count alone could not show it).
    assert f" {48 - done_before} rendered, {done_before} already done" in text, text[-2000:]
    assert tagged_chromiums(tag[TAG_VAR]) == []


def test_bad_input_fails_alone_with_job_and_field(ray_local, chromium, tmp_path):
    good = rc.orbit(6, 96, 72)
    cam = good[0]["camera"]
    bad = [
        {"no_camera": 1},
        {"camera": {**cam, "matrix": [[float("nan")] * 4] * 4}},
        {"camera": {**cam, "matrix": [[0.0] * 4] * 3 + [[0, 0, 0, 1]]}},
        {"camera": {**cam, "width": 0}},
        {"camera": {**cam, "width": 100000}},
        {"camera": {**cam, "fov": "wide"}},
        {"camera": "front"},
    ]
    runtime_bad = [{**good[1], "explode": True}, {**good[2], "garbage": True}]
    jobs_file = tmp_path / "jobs.jsonl"
    lines = [json.dumps(j) for j in good + bad + runtime_bad]
    lines.insert(3, "{this is not json")
    lines.insert(5, "[1, 2, 3]")
    jobs_file.write_text("\n".join(lines) + "\n")
    out = tmp_path / "out"
    from raycollect.cli import main

    code = main(["run", "--jobs", str(jobs_file), "--scene", "scenes:broken_scene",
                 "--workers", "1", "--out", str(out), "--no-progress"])
    assert code == 1  # something failed: non-zero exit
    check_output(out, _ids(good))
    assert len(read_jsonl(out / "manifest.jsonl")) == 6
    failures = read_jsonl(out / "failures.jsonl")
    by_field = {}
    for f in failures:
        by_field.setdefault(f["field"] if "field" in f else "render", []).append(f)
    assert len(failures) == len(bad) + len(runtime_bad) + 2
    fields = sorted(f.get("field", "render") for f in failures)
    assert fields.count("json") == 2
    for expected in ("camera", "camera.matrix", "camera.width", "camera.fov"):
        assert expected in fields, (expected, fields)
    for f in failures:
        assert f["error"] and f["job"], f
        if f.get("field") == "json":
            assert f"{jobs_file}:" in f["job"]
    runtime = [f for f in failures if "field" not in f]
    assert len(runtime) == 2
    for f in runtime:
        assert f["attempts"] == 3  # errors raised while rendering were retried
        assert f["job_id"] in f["error"] and "field 'scene" in f["error"]
        assert "Traceback" in f["error"] or "not a vuer element" in f["error"]
    validation = [f for f in failures if f.get("field") not in (None, "json")]
    assert all(f["attempts"] == 0 for f in validation)  # no browser time spent on them


def test_missing_chromium_and_absent_browser_fail_fast_and_clearly(ray_local, monkeypatch):
    monkeypatch.setenv("RAYCOLLECT_CHROMIUM", "/nonexistent/chromium")
    with pytest.raises(rc.BrowserError, match="RAYCOLLECT_CHROMIUM"):
        list(rc.render(rc.orbit(2, 96, 72), progress=False))
    monkeypatch.delenv("RAYCOLLECT_CHROMIUM")
    monkeypatch.setenv("PATH", "/nonexistent")
    with pytest.raises(rc.BrowserError, match="apt-get install -y chromium"):
        list(rc.render(rc.orbit(2, 96, 72), progress=False))
    monkeypatch.undo()
    t0 = time.time()
    with pytest.raises(rc.RunFailed, match=r"no browser attached to http://127\.0\.0\.1:\d+.*raycollect browsers"):
        list(rc.render(rc.orbit(2, 96, 72), workers=1, browsers="external",
                       session_timeout=3, progress=False))
    assert time.time() - t0 < 60
