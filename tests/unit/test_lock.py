"""One writer per output (raycollect/output/lock.py): pure, no Ray, no browser."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time

import pytest

from raycollect.errors import OutputBusy
from raycollect.output.lock import OutputLock


def test_a_second_writer_is_refused_naming_the_holder(tmp_path):
    with OutputLock(tmp_path):
        with pytest.raises(OutputBusy) as e:
            OutputLock(tmp_path).acquire()
    text = str(e.value)
    assert socket.gethostname() in text and f"pid {os.getpid()}" in text and "since" in text
    # Released: the next run takes it.
    with OutputLock(tmp_path):
        pass
    assert not (tmp_path / "lock").exists()


def test_a_dead_holders_lock_is_taken_over(tmp_path):
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    (tmp_path / "lock").write_text(json.dumps({"host": socket.gethostname(), "pid": dead.pid,
                                               "token": "x", "since": "earlier"}))
    with OutputLock(tmp_path) as lock:
        assert json.loads((tmp_path / "lock").read_text())["token"] == lock.token


def test_another_hosts_lock_is_stale_only_without_a_heartbeat(tmp_path):
    (tmp_path / "lock").write_text(json.dumps({"host": "elsewhere", "pid": 1, "token": "x",
                                               "since": "earlier"}))
    with pytest.raises(OutputBusy, match="host elsewhere, pid 1"):
        OutputLock(tmp_path, stale_after=60).acquire()
    old = time.time() - 120
    os.utime(tmp_path / "lock", (old, old))
    with OutputLock(tmp_path, stale_after=60):
        pass


def test_the_holder_keeps_its_lock_fresh(tmp_path):
    with OutputLock(tmp_path, heartbeat=0.05):
        old = time.time() - 120
        os.utime(tmp_path / "lock", (old, old))
        time.sleep(0.3)
        assert time.time() - (tmp_path / "lock").stat().st_mtime < 5


def test_a_journal_cut_short_is_found_from_its_header_alone(tmp_path):
    """Past FULL_CHECK_LIMIT the start-up check reads only SQLite's header: a file shorter
    than the page count it records is found without reading the pages."""
    import sqlite3

    from raycollect.output.repair import _header_problem

    path = tmp_path / "queue.sqlite"
    db = sqlite3.connect(path)
    db.execute("CREATE TABLE t (x TEXT)")
    db.executemany("INSERT INTO t VALUES (?)", [("x" * 500,)] * 200)
    db.commit()
    db.close()
    assert _header_problem(path) is None
    data = path.read_bytes()
    path.write_bytes(data[:len(data) // 2])
    assert "cut short" in _header_problem(path)
    path.write_bytes(b"not a database at all" * 10)
    assert _header_problem(path) == "file is not a database"


def test_a_full_disk_under_the_journal_is_an_output_error(tmp_path):
    """The disk can fill at a journal commit rather than at a frame (a CI run of the
    full-disk test met it: sqlite's "database or disk is full" reached the caller raw, not as
    the OutputError a full output raises). The journal raises ENOSPC naming itself, the
    transaction is not half written, the journal still reads, and the queue names the
    output and its free space. A real 256 KiB tmpfs (needs root, as CI runs)."""
    import errno

    from raycollect.errors import OutputError, output_error
    from raycollect.jobs import JobState
    from raycollect.journal import Journal

    from conftest import tmpfs

    with tmpfs(tmp_path / "disk", "256k") as mnt:
        journal = Journal(mnt / ".raycollect" / "queue.sqlite")
        with pytest.raises(OSError) as e:
            for batch in range(1000):
                journal.write([(f"job-{batch}-{i}", "x" * 400) for i in range(20)], [])
        assert e.value.errno == errno.ENOSPC and str(mnt) in str(e.value), e.value
        pending = journal.counts()[JobState.PENDING.value]
        assert pending % 20 == 0 and pending < 20 * 1000  # whole transactions only
        message = str(output_error(journal.path, e.value))
        assert isinstance(output_error(journal.path, e.value), OutputError)
        assert str(mnt) in message and "No space left" in message and "free" in message
        journal.close()
