"""Runs that last: one writer per output, a full disk, a damaged journal."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

import raycollect as rc
from conftest import check_output, read_jsonl, render_all, tmpfs
from raycollect.errors import JournalDamaged, OutputError

pytestmark = pytest.mark.browser


def _ids(jobs):
    from raycollect.jobs import content_id, to_plain

    return [content_id(to_plain(j)) for j in jobs]


def _cli_run(out, views, extra=()):
    return subprocess.Popen(
        [sys.executable, "-m", "raycollect.cli", "run", "--views", str(views), "--size",
         "64x48", "--out", str(out), "--no-progress", "--address", "local", *extra],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def test_two_runs_started_together_on_one_output_one_renders(chromium, tmp_path, ray_cluster_reset):
    """Two `raycollect run` on one output at once: one renders, the other is refused at once
    naming the holder, and every job is in the output once."""
    out = tmp_path / "out"
    a, b = _cli_run(out, 24), _cli_run(out, 24)
    results = [(p.wait(timeout=300), *p.communicate()) for p in (a, b)]
    codes = sorted(code for code, _, _ in results)
    assert codes == [0, 2], results
    refused = next(err for code, _, err in results if code == 2)
    assert "is being written by another run" in refused and "pid" in refused, refused
    assert len(refused.strip().splitlines()) == 1, refused
    assert len(read_jsonl(out / "manifest.jsonl")) == 24
    check_output(out, _ids(rc.orbit(24, 64, 48)))


def test_a_run_on_a_held_output_is_refused_and_a_dead_holders_lock_taken_over(ray_local, chromium,
                                                                              tmp_out):
    from raycollect.output.lock import OutputLock

    jobs = rc.orbit(6, 64, 48)
    holder = OutputLock(tmp_out / ".raycollect")
    holder.acquire()
    try:
        with pytest.raises(rc.errors.OutputBusy, match=f"pid {os.getpid()}"):
            render_all(jobs, out=tmp_out)
    finally:
        holder.release()
    # A holder that died (its process is gone) left its lock: the next run takes it over.
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    import json
    import socket

    (tmp_out / ".raycollect" / "lock").write_text(json.dumps(
        {"host": socket.gethostname(), "pid": dead.pid, "token": "t", "since": "then"}))
    results, run = render_all(jobs, out=tmp_out)
    assert len(results) == 6 and not (tmp_out / ".raycollect" / "lock").exists()


@pytest.fixture
def small_disk(tmp_path):
    """A real 1 MiB tmpfs mounted for the test (needs root, as CI runs)."""
    with tmpfs(tmp_path / "disk", "1m") as mnt:
        yield mnt


def test_a_full_disk_stops_the_run_and_a_rerun_completes_it(ray_local, chromium, small_disk):
    """The output's filesystem fills mid-run: the run stops with an error naming the output
    and its free space, the manifest holds only whole lines, and once there is room a rerun
    completes every job exactly once. A read-only output is refused the same way."""
    out = small_disk / "out"
    jobs = rc.orbit(120, 320, 240)
    with pytest.raises(OutputError) as e:
        render_all(jobs, out=out, workers=2)
    message = str(e.value)
    assert str(out) in message and "free" in message and "No space left" in message, message
    before = read_jsonl(out / "manifest.jsonl")  # every line whole: this parses them all
    assert 0 < len(before) < 120
    subprocess.run(["mount", "-o", "remount,size=64m", str(small_disk)], check=True)
    results, run = render_all(jobs, out=out, workers=2)
    assert run.summary["failed"] == 0
    check_output(out, _ids(jobs), run)
    assert len(results) + len(before) >= 120  # only what had not landed, at most
    subprocess.run(["mount", "-o", "remount,ro", str(small_disk)], check=True)
    with pytest.raises(OutputError, match="Read-only file system"):
        render_all(rc.orbit(4, 64, 48), out=out)


def test_a_damaged_journal_is_named_and_repaired_from_the_manifest(ray_local, chromium, tmp_out):
    jobs = rc.orbit(30, 64, 48)
    first = jobs[:20]
    render_all(first, out=tmp_out, masks=True)
    ids_before = {m["job_id"]: m["instances"] for m in read_jsonl(tmp_out / "manifest.jsonl")}
    journal = tmp_out / ".raycollect" / "queue.sqlite"
    for extra in ("-wal", "-shm"):
        journal.with_name(journal.name + extra).unlink(missing_ok=True)
    data = journal.read_bytes()
    journal.write_bytes(data[:len(data) // 2])  # cut short, as by a power loss
    with pytest.raises(JournalDamaged) as e:
        render_all(jobs, out=tmp_out, masks=True)
    assert str(journal) in str(e.value) and f"raycollect repair {tmp_out}" in str(e.value)
    done = subprocess.run([sys.executable, "-m", "raycollect.cli", "repair", str(tmp_out)],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    results, run = render_all(jobs, out=tmp_out, masks=True)
    assert sorted(results) == sorted(_ids(jobs[20:]))  # only the missing ten rendered
    manifest = check_output(tmp_out, _ids(jobs), run)
    # Instance ids survive the repair: the same keys have the same ids.
    assert all(m["instances"] == next(iter(ids_before.values())) for m in manifest)


def _reversed_demo(params):
    from raycollect.scene import demo_scene

    return list(reversed(demo_scene(params)))


def test_instance_ids_are_stable_across_reruns(ray_local, chromium, tmp_out):
    """An element key keeps its id across runs over one output, whatever order the scene
    lists its elements in (ids come from the queue's journal, by key)."""
    jobs = rc.orbit(8, 64, 48)
    render_all(jobs[:4], out=tmp_out, masks=True)
    results, run = render_all(jobs[4:], out=tmp_out, masks=True, scene=_reversed_demo)
    assert len(results) == 4
    lines = read_jsonl(tmp_out / "manifest.jsonl")
    assert len(lines) == 8
    assert all(m["instances"] == lines[0]["instances"] for m in lines), \
        [m["instances"] for m in lines]
    # Only elements a mask can show have ids: the demo's two lights have none.
    assert not {"ambient", "sun"} & set(lines[0]["instances"])
