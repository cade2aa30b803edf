"""Soak: one long run (20,000 small frames by default, 2 workers, browsers recycled), every
process of it sampled every few seconds (raycollect/testing/soak.py), the last quarter against the
first: RSS growth <= 10% per role, open files and threads flat, the temp folder as it was,
frames/s in the last quarter >= 0.9 of the first.

    .venv/bin/python scripts/bench/soak.py [--frames 20000] [--size 64x48] [--recycle 2000]
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time

import ray

from raycollect.testing import soak


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--frames", type=int, default=20_000)
    ap.add_argument("--size", default="64x48")
    ap.add_argument("--recycle", type=int, default=2_000, help="frames per browser")
    args = ap.parse_args()
    size = tuple(int(v) for v in args.size.split("x"))
    out = tempfile.mkdtemp(prefix="raycollect-soak-")
    ray.init(num_cpus=2, include_dashboard=False, configure_logging=False, log_to_driver=False)
    t0 = time.time()
    try:
        rep, run = soak.run(args.frames, size, args.recycle, out)
    finally:
        ray.shutdown()
        shutil.rmtree(out, ignore_errors=True)
    print(f"raycollect soak: {args.frames:,} frames at {args.size}, 2 workers, browsers "
          f"recycled every {args.recycle:,} frames, {time.time() - t0:.0f} s; "
          f"{run.summary['browsers_recycled']} recycles, {run.summary['failed']} failed; last "
          f"quarter vs first (medians of samples every 3 s):")
    print("\n".join(rep.lines()))


if __name__ == "__main__":
    main()
