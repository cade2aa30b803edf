"""Faults on demand, for tests and scripts/bench/chaos.py: kill a run's browser as a crash
would. The runtime has no hook for this; it reaches the browser from outside, by the pid its
node's browser host reports, on that node."""

from __future__ import annotations

import os
import signal

import ray
from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy


@ray.remote(num_cpus=0)  # never waits for a CPU slot the workers hold
def _kill_group(pid: int) -> int | None:
    try:
        os.killpg(pid, signal.SIGKILL)  # a managed browser leads its own process group
    except ProcessLookupError:  # gone already (recycled, or crashed by itself)
        return None
    return pid


def kill_browser(run, worker_id: str) -> int | None:
    """Kill the browser of one of `run`'s workers (SIGKILL to its process group): its pid, or
    None when that worker has no live browser."""
    member = run.pool.members.get(worker_id)
    host = None if member is None else run.pool.browsers.hosts.get(member.info["node_id"])
    if host is None:
        return None
    pid = ray.get(host.status.remote())["browsers"].get(worker_id)
    if pid is None:
        return None
    return ray.get(_kill_group.options(scheduling_strategy=NodeAffinitySchedulingStrategy(
        member.info["node_id"], soft=False)).remote(pid))
