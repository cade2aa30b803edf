"""A 2,000-frame soak (scripts/soak.py runs 20,000): every process of the run sampled, and
nothing creeps. Frames/s is printed, never asserted (shared, noisy machines)."""

from __future__ import annotations

import pytest

from raycollect import soak

pytestmark = pytest.mark.browser

RSS_GROWTH = 0.10  # last quarter against first, per role
FD_SLACK = 8  # a socket or a log file opened and closed between two samples
THREAD_SLACK = 4


def test_a_2000_frame_soak_creeps_nowhere(ray_local, chromium, tmp_out):
    rep, run = soak.run(2000, (64, 48), recycle=500, out=tmp_out, period=1.0)
    print("\n".join(rep.lines()))
    assert run.summary["failed"] == 0 and run.summary["browsers_recycled"] >= 2
    for role in ("driver", "queue", "workers", "browser hosts", "chromium"):
        (rss0, rss1, growth) = rep.roles[role]["rss"]
        assert growth <= RSS_GROWTH, (role, rep.lines())
        assert rep.roles[role]["fds"][1] <= rep.roles[role]["fds"][0] + FD_SLACK, (role, rep.lines())
        assert rep.roles[role]["threads"][1] <= rep.roles[role]["threads"][0] + THREAD_SLACK, \
            (role, rep.lines())
    assert rep.temp_after == rep.temp_before, rep.lines()
