"""A 2,000-frame soak (scripts/bench/soak.py runs 20,000): every process of the run sampled, and
nothing creeps. Frames/s is printed, never asserted (shared, noisy machines)."""

from __future__ import annotations

import pytest

from raycollect.testing import soak

pytestmark = pytest.mark.browser

RSS_GROWTH = 0.10  # last quarter against first, per role
# Flat, give or take what comes and goes between two samples (a socket, a log file, a
# browser's worker threads around a recycle): 5% and a few.
FLAT = 0.05
FD_SLACK = 8
THREAD_SLACK = 4


def test_a_2000_frame_soak_creeps_nowhere(ray_local, chromium, tmp_out):
    rep, run = soak.run(2000, (64, 48), recycle=500, out=tmp_out, period=1.0)
    print("\n".join(rep.lines()))
    assert run.summary["failed"] == 0 and run.summary["browsers_recycled"] >= 2
    for role in ("driver", "queue", "workers", "browser hosts", "chromium"):
        (rss0, rss1, growth) = rep.roles[role]["rss"]
        assert growth <= RSS_GROWTH, (role, rep.lines())
        fds, threads = rep.roles[role]["fds"], rep.roles[role]["threads"]
        assert fds[1] <= fds[0] * (1 + FLAT) + FD_SLACK, (role, rep.lines())
        assert threads[1] <= threads[0] * (1 + FLAT) + THREAD_SLACK, (role, rep.lines())
    assert rep.temp_after == rep.temp_before, rep.lines()
