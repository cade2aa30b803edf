"""The job queue against a real local Ray: concurrency, leases, dead letters, recovery."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import time

import pytest
import ray

import raycollect as rc
from conftest import count_by


@ray.remote(num_cpus=0)
class _Leaser:
    """A client that leases and completes until the queue has nothing left for it."""

    def __init__(self, q: rc.JobQueue, name: str):
        self.q, self.name = q, name

    def run(self, batch: int, pause: float = 0.0) -> list[str]:
        accepted = []
        idle_since = None
        while True:
            leases = self.q.lease(self.name, batch)
            if not leases:
                idle_since = idle_since or time.time()
                s = self.q.stats()
                if s["pending"] == 0 and s["leased"] == 0:
                    return accepted
                if time.time() - idle_since > 30:
                    return accepted
                time.sleep(0.05)
                continue
            idle_since = None
            if pause:
                time.sleep(pause)
            for lease, ok in zip(leases, self.q.complete_many(leases, [{"by": self.name}] * len(leases))):
                if ok:
                    accepted.append(lease.job_id)


def test_eight_clients_complete_every_job_exactly_once(ray_local):
    q = rc.JobQueue.create(name="conc", lease_ttl=30)
    ids = q.submit([{"i": i} for i in range(2000)])
    clients = [_Leaser.remote(q, f"w{i}") for i in range(8)]
    done = sum(ray.get([c.run.remote(1 + i % 4 * 7) for i, c in enumerate(clients)]), [])
    assert sorted(done) == sorted(ids)
    assert max(count_by(done).values()) == 1
    s = q.stats()
    assert (s["done"], s["pending"], s["leased"], s["failed"]) == (2000, 0, 0, 0)


def test_expired_lease_is_leased_again_and_its_token_is_refused(ray_local):
    q = rc.JobQueue.create(name="expiry", lease_ttl=0.5, max_attempts=5)
    [job_id] = q.submit([{"pose": 1}])
    [old] = q.lease("slow")
    assert old.attempt == 1 and old.job_id == job_id
    time.sleep(1.2)  # no caller reaps (stats() only reads): the actor does it by itself
    s = q.stats()
    assert (s["pending"], s["leased"], s["expired"]) == (1, 0, 1)
    [new] = q.lease("fast")
    assert new.job_id == job_id and new.attempt == 2 and new.token != old.token
    assert q.extend(old) is False
    assert q.complete(old) is False
    assert q.fail(old, "late") is False
    s = q.stats()
    # Each refusal counted by what was refused: only the completion is a frame refused.
    assert (s["stale_refused"], s["refused_heartbeats"], s["refused_failures"]) == (1, 1, 1)
    assert q.extend(new, ttl=5) is True
    assert q.complete(new, {"frame": "ok"}) is True
    assert q.complete(new) is False  # accepted once
    assert q.stats()["done"] == 1
    # The driver's per-batch call: the counts it returns already include its completions.
    [other] = q.lease("fast") or [None]
    assert other is None
    [job2] = q.submit([{"pose": 2}])
    [l2] = q.lease("fast")
    accepted, counts = q.complete_and_count([l2, old])
    assert accepted == [True, False] and l2.job_id == job2
    assert (counts["done"], counts["leased"], counts["pending"], counts["stale_refused"]) == (2, 0, 0, 3)


def test_dead_letter_after_max_attempts_keeps_the_error(ray_local):
    q = rc.JobQueue.create(name="dead", lease_ttl=30, max_attempts=3)
    [job_id] = q.submit([{"bad": True}])
    for attempt in (1, 2, 3):
        [lease] = q.lease("w")
        assert lease.attempt == attempt
        assert q.fail(lease, f"boom {attempt}") is True
    assert q.lease("w") == []
    s = q.stats()
    assert (s["failed"], s["pending"]) == (1, 0)
    [f] = q.failures()
    assert f["job_id"] == job_id and f["error"] == "boom 3" and f["attempts"] == 3


def test_submit_is_idempotent_and_fifo(ray_local):
    q = rc.JobQueue.create(name="idem")
    a = q.submit([{"i": 1}, {"i": 2}])
    assert q.submit([{"i": 2}, {"i": 1}]) == a[::-1]
    assert q.submit([{"x": 0}], keys=["frame-7"]) == ["frame-7"]
    assert q.submit([{"x": 99}], keys=["frame-7"]) == ["frame-7"]  # same key: no new job
    assert q.stats()["total"] == 3
    assert [l.job_id for l in q.lease("w", 10)] == a + ["frame-7"]


def test_bad_calls_raise_clear_errors_and_change_nothing(ray_local):
    q = rc.JobQueue.create(name="bad")
    other = rc.JobQueue.create(name="bad-other")
    with pytest.raises(rc.InvalidJob, match=r"job #1: field 'params.obj'"):
        q.submit([{"ok": 1}, {"obj": object()}])
    with pytest.raises(rc.InvalidJob, match="field 'params'"):
        q.submit(["not a dict"])
    with pytest.raises(rc.InvalidJob, match="field 'key'"):
        q.submit([{"a": 1}], keys=["../etc/passwd"])
    with pytest.raises(ValueError):
        q.lease("w", 0)
    with pytest.raises(rc.UnknownJob, match="nope"):
        q.complete(rc.Lease("nope", "t", {}, 1, 0.0, q.uid))
    other.submit([{"o": 1}])
    [foreign] = other.lease("w")
    with pytest.raises(rc.WrongQueue):
        q.complete(foreign)
    assert q.stats()["total"] == 0  # the failed submits added nothing
    assert other.complete(foreign) is True


def test_queue_killed_mid_run_restarts_from_its_journal(ray_local, tmp_path):
    journal = tmp_path / "q.sqlite"
    q = rc.JobQueue.create(name="crashy", lease_ttl=5, journal=str(journal))
    ids = q.submit([{"i": i} for i in range(600)])
    clients = [_Leaser.remote(q, f"w{i}") for i in range(4)]
    runs = [c.run.remote(5, 0.01) for c in clients]
    deadline = time.time() + 60
    while q.stats()["done"] < 50 and time.time() < deadline:
        time.sleep(0.05)
    before = q.stats()
    assert 0 < before["done"] < 600, before
    ray.kill(q._actor, no_restart=False)
    done = sum(ray.get(runs, timeout=120), [])
    s = q.stats()
    assert s["incarnation"] != before["incarnation"], "the queue did not restart"
    assert (s["done"], s["pending"], s["leased"], s["failed"]) == (600, 0, 0, 0)
    assert sorted(done) == sorted(ids), "every job accepted exactly once"


def test_journal_reopened_from_a_fresh_process(ray_local, tmp_path):
    journal = tmp_path / "q.sqlite"
    script = textwrap.dedent(f"""
        import os, ray, raycollect as rc
        ray.init(num_cpus=1, include_dashboard=False)
        q = rc.JobQueue.create(name="first", journal={str(journal)!r})
        q.submit([{{"i": i}} for i in range(100)])
        leases = q.lease("w", 50)
        q.complete_many(leases[:40])
        q.fail_many(leases[40:45], ["boom"] * 5)
        os._exit(0)  # die without any goodbye: leases 45..49 are still out
    """)
    subprocess.run([sys.executable, "-c", script], check=True, timeout=120)
    q = rc.JobQueue.create(name="second", journal=str(journal))
    s = q.stats()
    assert (s["done"], s["pending"], s["leased"], s["total"]) == (40, 60, 0, 100)
    leases = q.lease("w", 100)
    assert len(leases) == 60
    assert all(l.token.split("-")[0] == s["incarnation"] for l in leases)
    assert all(q.complete_many(leases))
    assert q.stats()["done"] == 100


def test_status_prints_the_live_queue_counts(ray_local, capsys):
    from raycollect.cli import main

    q = rc.JobQueue.create(name="status-q", lease_ttl=0.3)
    q.submit([{"i": i} for i in range(3)])
    [lease] = q.lease("w")
    time.sleep(0.8)  # expires: its token is stale now
    assert q.complete(lease) is False
    assert main(["status", "--queue", "status-q"]) == 0
    counts = json.loads(capsys.readouterr().out)
    assert (counts["pending"], counts["done"], counts["stale_refused"], counts["expired"]) == (3, 0, 1, 1)
    assert main(["status", "--queue", "no-such-queue"]) == 1
