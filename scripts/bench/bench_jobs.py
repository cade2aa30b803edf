#!/usr/bin/env python
"""Many jobs: time to the first frame and the driver's memory with 200,000 jobs given as a
generator (validated and submitted in chunks while rendering runs).

Target: the first frame within 30 s with 200,000 jobs; driver memory flat while the jobs
stream in (the driver never holds the job list).

Usage: python scripts/bench/bench_jobs.py [--jobs 200000] [--frames 300]
"""

from __future__ import annotations

import argparse
import os
import sys
import time

import psutil
import ray

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
import raycollect as rc  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--jobs", type=int, default=200_000)
    ap.add_argument("--frames", type=int, default=300, help="frames to render before stopping")
    args = ap.parse_args()
    me = psutil.Process()
    cam = rc.orbit(1, 16, 16)[0]["camera"]
    taken = 0

    def jobs():
        nonlocal taken
        for i in range(args.jobs):
            taken += 1
            yield {"i": i, "camera": cam}

    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    rss0 = me.memory_info().rss
    t0 = time.perf_counter()
    first = None
    rss = []
    with rc.render(jobs(), workers=1, progress=False) as run:
        for n, _ in enumerate(run, 1):
            if first is None:
                first = time.perf_counter() - t0
                at_first = taken
            if n % 100 == 0:
                rss.append(me.memory_info().rss)
            if n >= args.frames:
                break
        queue_pid = ray.get(run.queue._actor.__ray_call__.remote(lambda self: os.getpid()))
        queue_rss = psutil.Process(queue_pid).memory_info().rss
        submitted = taken
    print(f"raycollect job-streaming benchmark: {args.jobs:,} jobs from a generator, 1 worker")
    print(f"  first frame after          {first:.1f} s  (target < 30 s); {at_first:,} jobs read by then")
    print(f"  jobs read by frame {args.frames}     {submitted:,}")
    print(f"  driver RSS                 {rss0 / 2**20:.0f} MB before, "
          f"{', '.join(f'{r / 2**20:.0f}' for r in rss)} MB every 100 frames")
    print(f"  queue actor RSS            {queue_rss / 2**20:.0f} MB with {submitted:,} jobs submitted")


if __name__ == "__main__":
    main()
