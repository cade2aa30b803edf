"""A run's fixed cost: `rc.render` of a few frames, start to end, on a local Ray that is
already up (as in a notebook, or the test suite's ~100 short renders). What it holds: the
queue actor's, the workers' and the browser host's processes starting, Chromium starting and
loading the Vuer client, the first scene, and the run's end.

Rounds alternate the configurations, so a busy machine slows each alike; medians.

    PYTHONPATH=. .venv/bin/python scripts/bench/bench_startup.py [--rounds 5] [--frames 2]
"""

from __future__ import annotations

import argparse
import statistics
import time

import ray

import raycollect as rc

SIZE = (160, 120)


def _jobs(frames: int, tag: str) -> list[dict]:
    cam = rc.look_at([2.0, 1.5, 2.0], [0, 0, 0]).tolist()
    return [{"camera": {"matrix": cam, "fov": 50, "width": SIZE[0], "height": SIZE[1]},
             "i": i, "tag": tag} for i in range(frames)]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--frames", type=int, default=2)
    args = ap.parse_args()
    ray.init(num_cpus=2, include_dashboard=False, configure_logging=False, log_to_driver=False)
    # workers=2 asked for; a run of a few frames starts the workers that can lease them.
    configs = {"workers=1": 1, "workers=2": 2}
    times: dict[str, list[float]] = {k: [] for k in configs}
    started: dict[str, int] = {}
    for r in range(args.rounds):
        for name, workers in configs.items():
            t0 = time.monotonic()
            run = rc.render(_jobs(args.frames, f"{name}-{r}"), workers=workers, progress=False)
            n = sum(1 for _ in run)
            times[name].append(time.monotonic() - t0)
            started[name] = run.summary.workers
            assert n == args.frames, (name, n)
            print(f"round {r} {name}: {times[name][-1]:.2f} s ({run.summary.workers} started)",
                  flush=True)
    for name, ts in times.items():
        print(f"{name:10s} {args.frames} frames: median {statistics.median(ts):.2f} s, "
              f"min {min(ts):.2f} s, workers started {started[name]}")


if __name__ == "__main__":
    main()
