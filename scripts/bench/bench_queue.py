#!/usr/bin/env python
"""Queue benchmark: prints one table of figures measured in this run, on this machine.

  lease+complete jobs/s through the actor, 4 concurrent clients, batches of 1 and of 100
  the same with the SQLite journal on
  ray.util.queue.Queue put+get cycles/s, for reference
  lease+complete cost at 1k, 100k and 1M pending (in the actor's own process, and through
  Ray), with the 1M/1k ratio; actor memory per queued job

Usage: python scripts/bench/bench_queue.py [--quick]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
import time

import psutil
import ray
from ray.util.queue import Queue

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", ".."))
import raycollect as rc  # noqa: E402
from raycollect.jobs import prepare  # noqa: E402
from raycollect.queue import _QueueActor  # noqa: E402

CLIENTS = 4


@ray.remote(num_cpus=0)
class Client:
    def __init__(self, q: rc.JobQueue, name: str):
        self.q, self.name = q, name

    def drain(self, batch: int) -> int:
        n = 0
        while True:
            leases = self.q.lease(self.name, batch)
            if not leases:
                return n
            n += sum(self.q.complete_many(leases))


def through_actor(batch: int, jobs: int, journal: str | None) -> float:
    q = rc.JobQueue.create(name=f"bench-{batch}-{bool(journal)}-{time.time()}", journal=journal)
    q.submit([{"i": i} for i in range(jobs)])
    clients = [Client.remote(q, f"c{i}") for i in range(CLIENTS)]
    ray.get([c.__ray_ready__.remote() for c in clients])
    t0 = time.perf_counter()
    done = sum(ray.get([c.drain.remote(batch) for c in clients]))
    dt = time.perf_counter() - t0
    assert done == jobs, (done, jobs)
    q.kill()
    for c in clients:
        ray.kill(c)
    return jobs / dt


def ray_util_queue(n: int) -> float:
    q = Queue()
    t0 = time.perf_counter()
    for i in range(n):
        q.put(i)
        q.get()
    dt = time.perf_counter() - t0
    q.shutdown()
    return n / dt


def in_process_cost(pending: int, samples: int = 2000) -> float:
    """Microseconds per lease+complete of one job with `pending` jobs queued, timed in the
    actor's own code (no Ray round trip)."""
    async def go() -> float:
        actor = _QueueActor("bench", 30.0, 3, None)
        items = prepare([{"i": i} for i in range(pending + samples)])
        await actor.submit(items)
        times = []
        for _ in range(samples):
            t0 = time.perf_counter()
            [lease] = await actor.lease("w", 1)
            await actor.complete([(lease.job_id, lease.token, None)])
            times.append(time.perf_counter() - t0)
        actor._reaper.cancel()
        return statistics.median(times) * 1e6
    return asyncio.run(go())


def actor_cost(pending: int, samples: int = 300) -> tuple[float, float]:
    """Milliseconds per lease+complete through Ray with `pending` queued, and the actor's
    resident memory per queued job in bytes."""
    q = rc.JobQueue.create(name=f"bench-pending-{pending}")
    pid = ray.get(q._actor.__ray_call__.remote(lambda self: os.getpid()))
    rss0 = psutil.Process(pid).memory_info().rss
    chunk = 50_000
    for i in range(0, pending + samples, chunk):
        q.submit([{"i": j} for j in range(i, min(i + chunk, pending + samples))])
    rss1 = psutil.Process(pid).memory_info().rss
    times = []
    for _ in range(samples):
        t0 = time.perf_counter()
        [lease] = q.lease("w", 1)
        q.complete(lease)
        times.append(time.perf_counter() - t0)
    q.kill()
    return statistics.median(times) * 1e3, (rss1 - rss0) / (pending + samples)


def actor_memory(pending: int, journal: str) -> float:
    """Resident bytes per pending job in the queue actor with a journal (as every run has),
    for jobs with a real camera in their params, as rc.render submits them."""
    q = rc.JobQueue.create(name=f"bench-mem-{pending}", journal=journal)
    pid = ray.get(q._actor.__ray_call__.remote(lambda self: os.getpid()))
    cam = rc.orbit(1, 4, 4)[0]["camera"]
    rss0 = psutil.Process(pid).memory_info().rss
    chunk = 20_000
    for i in range(0, pending, chunk):
        q.submit([{"i": j, "camera": cam} for j in range(i, min(i + chunk, pending))])
    rss1 = psutil.Process(pid).memory_info().rss
    q.kill()
    return (rss1 - rss0) / pending


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true", help="smaller sizes (1M becomes 200k)")
    args = ap.parse_args()
    big = 200_000 if args.quick else 1_000_000
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    rows = []
    jdir = tempfile.mkdtemp(prefix="rc-bench-")
    b1 = through_actor(1, 2_000, None)
    b100 = through_actor(100, 40_000, None)
    b100j = through_actor(100, 40_000, os.path.join(jdir, "q.sqlite"))
    b1j = through_actor(1, 2_000, os.path.join(jdir, "q1.sqlite"))
    ref = ray_util_queue(1_000)
    rows += [
        ("lease+complete, batch 1, 4 clients", f"{b1:,.0f} jobs/s"),
        ("lease+complete, batch 100, 4 clients", f"{b100:,.0f} jobs/s  (target >= 5,000)"),
        ("  same, journal on (batch 1 / 100)", f"{b1j:,.0f} / {b100j:,.0f} jobs/s  "
                                               f"(journal on/off: {b1j / b1:.2f} / {b100j / b100:.2f})"),
        ("ray.util.queue.Queue put+get, 1 client", f"{ref:,.0f} cycles/s"),
    ]
    sizes = [1_000, 100_000, big]
    inproc = {n: in_process_cost(n) for n in sizes}
    through = {n: actor_cost(n) for n in sizes}
    for n in sizes:
        rows.append((f"cost at {n:>9,} pending", f"{inproc[n]:6.1f} us in the actor, "
                     f"{through[n][0]:5.2f} ms through Ray, {through[n][1]:,.0f} B/job RSS"))
    rows.append((f"ratio {big:,}/1k", f"{inproc[big] / inproc[1_000]:.2f} in the actor, "
                 f"{through[big][0] / through[1_000][0]:.2f} through Ray  (target <= 2)"))
    per_job = actor_memory(big, os.path.join(jdir, "mem.sqlite"))
    rows.append((f"actor memory, {big:,} pending, journal", f"{per_job:,.0f} B/job above empty "
                 f"(target < 300); 10M pending: {per_job * 10_000_000 / 2**30:.1f} GiB"))
    print(f"\nraycollect queue benchmark: {os.cpu_count()} cores, ray {ray.__version__}, "
          f"python {sys.version.split()[0]}")
    width = max(len(k) for k, _ in rows)
    for k, v in rows:
        print(f"  {k:<{width}}  {v}")


if __name__ == "__main__":
    main()
