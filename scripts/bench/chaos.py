#!/usr/bin/env python
"""Chaos run: render N jobs while killing a random worker and a random browser every few
seconds, then check the output directory and print one line. Exits non-zero unless there are
no duplicates and nothing is missing.

  python scripts/bench/chaos.py [--jobs 300] [--interval 4] [--workers 2] [--out DIR]
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import random
import signal
import sys
import tempfile
import threading
from pathlib import Path

import ray

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
import raycollect as rc  # noqa: E402
from raycollect.jobs import content_id, to_plain  # noqa: E402
from raycollect.testing.chaos import kill_browser  # noqa: E402


class Chaos(threading.Thread):
    """Every `interval` s, alternately: kill a random worker (ray.kill or SIGKILL of its
    process, at random) or a random browser (SIGKILL of its process group)."""

    def __init__(self, run: rc.Run, interval: float, seed: int):
        super().__init__(daemon=True, name="chaos")
        self.run_, self.interval, self.rnd = run, interval, random.Random(seed)
        self.stop = threading.Event()
        self.kills = {"workers": 0, "browsers": 0}

    def run(self) -> None:
        turn = 0
        while not self.stop.wait(self.interval):
            pool = self.run_.pool
            members = list(pool.members.values()) if pool is not None else []
            if not members:
                continue
            victim = self.rnd.choice(members)
            try:
                if turn % 2 == 0:
                    if self.rnd.random() < 0.5:
                        ray.kill(victim.actor, no_restart=True)
                    else:
                        os.kill(victim.info["pid"], signal.SIGKILL)
                    self.kills["workers"] += 1
                elif kill_browser(self.run_, victim.id):
                    self.kills["browsers"] += 1
            except (ProcessLookupError, ValueError, ray.exceptions.RayError) as e:
                logging.info("chaos: %s was already gone (%s)", victim.id, e)
            turn += 1


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--jobs", type=int, default=300)
    ap.add_argument("--size", default="96x72")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--interval", type=float, default=4.0, help="seconds between kills")
    ap.add_argument("--max-attempts", type=int, default=10,
                    help="a job dies only after this many attempts; kills end attempts of "
                         "every lease their worker held, so chaos needs more than the default")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", help="output directory [a fresh temporary one]")
    args = ap.parse_args()
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    w, h = (int(v) for v in args.size.split("x"))
    out = Path(args.out or tempfile.mkdtemp(prefix="raycollect-chaos-"))
    jobs = rc.orbit(args.jobs, w, h, radius=4.5)
    expected = {content_id(to_plain(j)) for j in jobs}

    ray.init(include_dashboard=False, configure_logging=False, log_to_driver=False)
    run = rc.render(jobs, workers=args.workers, out=out, max_attempts=args.max_attempts,
                    lease_ttl=10.0, progress=True)
    chaos = Chaos(run, args.interval, args.seed)
    chaos.start()
    try:
        for _ in run:
            pass
    finally:
        chaos.stop.set()

    ids = []
    with open(out / "manifest.jsonl", encoding="utf-8") as f:
        ids = [json.loads(line)["job_id"] for line in f if line.strip()]
    frames = [p for p in (out / "frames").iterdir() if p.suffix == ".png"]
    duplicates = len(ids) - len(set(ids))
    missing = len(expected - set(ids))
    extra = len(set(ids) - expected) + len({p.stem for p in frames} - set(ids))
    s = run.summary
    print(f"chaos: jobs {len(expected)}, frames {len(frames)}, duplicates {duplicates}, "
          f"missing {missing}, extra {extra}, stale completions refused {s['stale_refused']}, "
          f"workers restarted {s['workers_restarted']}, browsers restarted "
          f"{s['browsers_restarted']} (kills: {chaos.kills['workers']} workers, "
          f"{chaos.kills['browsers']} browsers; {s['seconds']} s, out {out})")
    return 0 if duplicates == 0 and missing == 0 and extra == 0 and len(frames) == len(expected) else 1


if __name__ == "__main__":
    sys.exit(main())
