#!/usr/bin/env python
"""What a loaded model costs: frames/s of the example scene with its OBJ sphere (a few MB,
loaded once per browser from the assets folder) against the same scene with a Sphere
primitive of the same tessellation, camera-only jobs, 1 worker, measured in alternating
rounds in one run. Also prints how many asset files each run's browser fetched.

Usage: python scripts/bench/bench_assets.py [--frames 200] [--size 160x120] [--rounds 2]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time

import ray

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "examples"))
import raycollect as rc  # noqa: E402
import meshgen  # noqa: E402


def run(jobs: list[dict], assets: str) -> tuple[float, int]:
    """(steady-state frames/s, asset requests the worker served)."""
    times, requests = [], 0
    with rc.render(jobs, scene="raycollect.testing.scenes:example_scene", workers=1, assets=assets,
                   progress=False, queue_name=f"bench-assets-{time.time()}") as r:
        for _ in r:
            times.append(time.perf_counter())
            if len(times) == len(jobs) - 1:  # the registry is refreshed every second
                requests = sum(w.get("asset_requests", 0) for w in r.queue.workers().values())
    return (len(times) - 1) / (times[-1] - times[0]), requests


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--frames", type=int, default=200)
    ap.add_argument("--size", default="160x120")
    ap.add_argument("--rounds", type=int, default=2)
    args = ap.parse_args()
    size = tuple(int(v) for v in args.size.split("x"))
    with tempfile.TemporaryDirectory(prefix="rc-bench-assets-") as folder:
        files = meshgen.write_example(folder)
        obj_mb = files[0].stat().st_size / 2**20
        ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
        model, prim, reqs = [], [], []
        for r in range(args.rounds):
            fps, n = run(rc.orbit(args.frames, *size, radius=4.0 + 0.01 * r), folder)
            model.append(fps)
            reqs.append(n)
            prim.append(run(rc.orbit(args.frames, *size, radius=4.5 + 0.01 * r,
                                     primitive=True), folder)[0])
            print(f"round {r + 1}: OBJ model {model[-1]:.1f}, primitive {prim[-1]:.1f} frames/s, "
                  f"{n} asset requests", flush=True)
    m, p = statistics.median(model), statistics.median(prim)
    print(f"\nraycollect assets benchmark: {args.frames} camera-only jobs at {args.size}, 1 worker")
    print(f"  model vs primitive   {m / p:.2f}  {m:.1f} fps with the {obj_mb:.1f} MB OBJ sphere / "
          f"{p:.1f} fps with a Sphere primitive")
    print(f"  asset requests       {max(reqs)} per run of {args.frames} frames (5 files: OBJ, PLY, "
          f"URDF, 2 STL; each fetched once)")


if __name__ == "__main__":
    main()
