"""A soak: one long run with every process of it sampled, to show nothing creeps.

`scripts/bench/soak.py` (20,000 frames by default) and a 2,000-frame test use it. While the run
renders, a sampler reads every few seconds, from /proc through psutil, each process of the
run: the driver, and every process below it (a local Ray's GCS and raylets, the queue actor,
the render workers, the browser hosts and every Chromium process), grouped by role. For each
role it keeps RSS, open file descriptors and threads (summed over the role's processes, so a
recycled browser's replacement counts as the same role), the files in the temp folder, and
the frames done. The report compares the last quarter of the run with the first.
Only temp-folder entries that a run makes are counted (TEMP_PREFIXES).
"""

from __future__ import annotations

import os
import statistics
import tempfile
import threading
import time
from dataclasses import dataclass, field

import psutil

# Roles by what a process runs (Ray names its actor processes "ray::ClassName").
ROLES = (("queue", "ray::_QueueActor"), ("workers", "ray::_RenderWorker"),
         ("browser hosts", "ray::_BrowserHost"), ("chromium", "raycollect-chromium-"))
SAMPLE_PERIOD = 3.0
# Entries of the temp folder that a run's processes make (Chromium's, raycollect's own):
# only these are counted, so other programs' files do not move the figure.
TEMP_PREFIXES = ("raycollect-", "org.chromium.", ".org.chromium.", "scoped_dir")


def temp_entries() -> int:
    return sum(1 for name in os.listdir(tempfile.gettempdir()) if name.startswith(TEMP_PREFIXES))


def role_of(proc: psutil.Process) -> str | None:
    try:
        cmd = " ".join(proc.cmdline())
    except psutil.Error:
        return None
    for role, marker in ROLES:
        if marker in cmd:
            return role
    return None


@dataclass
class Sample:
    t: float
    frames: int
    temp_files: int
    rss: dict = field(default_factory=dict)  # role -> bytes
    fds: dict = field(default_factory=dict)
    threads: dict = field(default_factory=dict)
    procs: dict = field(default_factory=dict)


def sample(frames: int) -> Sample:
    me = psutil.Process()
    s = Sample(time.monotonic(), frames, temp_entries())
    for proc in [me, *me.children(recursive=True)]:
        role = "driver" if proc.pid == me.pid else role_of(proc)
        if role is None:
            continue
        try:
            with proc.oneshot():
                rss, fds, threads = proc.memory_info().rss, proc.num_fds(), proc.num_threads()
        except psutil.Error:  # gone meanwhile (a recycled browser)
            continue
        for store, value in ((s.rss, rss), (s.fds, fds), (s.threads, threads), (s.procs, 1)):
            store[role] = store.get(role, 0) + value
    return s


class Sampler(threading.Thread):
    """Samples every `period` seconds until stopped; `frames` is read from a callable."""

    def __init__(self, frames, period: float = SAMPLE_PERIOD):
        super().__init__(name="raycollect-soak-sampler", daemon=True)
        self.frames, self.period = frames, period
        self.samples: list[Sample] = []
        self._halt = threading.Event()

    def run(self) -> None:
        while not self._halt.wait(self.period):
            self.samples.append(sample(self.frames()))

    def stop(self) -> list[Sample]:
        self._halt.set()
        self.join()
        return self.samples


@dataclass
class Report:
    roles: dict  # role -> {"rss": (first, last, growth), "fds": (...), "threads": (...)}
    fps: tuple  # (first quarter, last quarter, ratio)
    temp_before: int
    temp_after: int

    def lines(self) -> list[str]:
        out = []
        for role, r in self.roles.items():
            rss0, rss1, g = r["rss"]
            out.append(f"  {role:<14} RSS {rss0 / 2**20:7.1f} -> {rss1 / 2**20:7.1f} MB "
                       f"({g:+.1%})  fds {r['fds'][0]:.0f} -> {r['fds'][1]:.0f}  threads "
                       f"{r['threads'][0]:.0f} -> {r['threads'][1]:.0f}")
        out.append(f"  frames/s       {self.fps[0]:.1f} -> {self.fps[1]:.1f} ({self.fps[2]:.2f})")
        out.append(f"  temp folder    {self.temp_before} entries before, {self.temp_after} after")
        return out


def report(samples: list[Sample], temp_before: int, temp_after: int) -> Report:
    """First quarter against last quarter of the samples from the first frame on (start-up
    is not the run): medians per role, frames/s."""
    samples = [s for s in samples if s.frames > 0]
    n = len(samples)
    if n < 8:
        raise ValueError(f"{n} samples: a soak needs a run long enough for 8 or more")
    q = n // 4
    first, last = samples[:q], samples[-q:]
    roles = {}
    for role in sorted({r for s in samples for r in s.rss}):
        r = {}
        for name in ("rss", "fds", "threads"):
            a = statistics.median(getattr(s, name).get(role, 0) for s in first)
            b = statistics.median(getattr(s, name).get(role, 0) for s in last)
            r[name] = (a, b, (b - a) / a if a else 0.0)
        roles[role] = r

    def fps(part: list[Sample]) -> float:
        dt = part[-1].t - part[0].t
        return (part[-1].frames - part[0].frames) / dt if dt > 0 else 0.0

    f0, f1 = fps(first), fps(last)
    return Report(roles, (f0, f1, f1 / f0 if f0 else 0.0), temp_before, temp_after)


def run(frames: int, size: tuple[int, int], recycle: int, out, period: float = SAMPLE_PERIOD,
        workers: int = 2):
    """Render `frames` orbit views into `out`, sampled: (Report, the finished Run). Ray must
    be initialised (the processes sampled are this process's descendants)."""
    import raycollect as rc

    temp_before = temp_entries()
    done = [0]
    sampler = Sampler(lambda: done[0], period)
    with rc.render(rc.orbit(frames, *size), out=out, workers=workers, recycle_frames=recycle,
                   progress=False) as r:
        sampler.start()
        for _ in r:
            done[0] += 1
    return report(sampler.stop(), temp_before, temp_entries()), r
