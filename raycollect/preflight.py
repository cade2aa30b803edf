"""Before a run joins a cluster: is every node able to render? A node without raycollect,
without Chromium, or (with --browsers external) without `raycollect browsers` would
otherwise show up only as workers that fail or wait, long after the run started, and
without saying which machine to fix. Each problem is named with its node's address and
what to do there."""

from __future__ import annotations

import re
import time

import ray

from .browser import INSTALL_HINT, find_chromium
from .cluster import cpu_nodes
from .errors import NodeNotReady

# A node's probe task must answer within this long (a worker process starting on a busy
# node), and with --browsers external every node's `raycollect browsers` must have connected
# within this long (the launcher starts them in the background, seconds after Ray).
PREFLIGHT_PROBE_TIMEOUT = 60.0
PREFLIGHT_BROWSERS_WAIT = 60.0
PREFLIGHT_POLL = 0.5

# How `raycollect browsers` shows in Ray's job table: its command line.
_BROWSERS = re.compile(r"raycollect\s+(?:-v\s+|--verbose\s+)?browsers(?:\s|$)")
SETUP_HINT = "scripts/node_setup.sh installs it (the launcher's setup_commands run it)"
START_HINT = ("start it there (scripts/node_start.sh does, as the launcher's start commands), "
              "or run with --browsers managed")


def _name(node: dict) -> str:
    return f"node {node['NodeManagerAddress']} ({node['NodeID'][:8]})"


@ray.remote(num_cpus=0)
def _chromium_here() -> str | None:
    return find_chromium(required=False)


def _chromium_problems(nodes: list[dict]) -> list[str]:
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    refs = {
        _name(n): _chromium_here.options(scheduling_strategy=NodeAffinitySchedulingStrategy(
            n["NodeID"], soft=False)).remote()
        for n in nodes}
    problems = []
    for name, ref in refs.items():
        try:
            if ray.get(ref, timeout=PREFLIGHT_PROBE_TIMEOUT) is None:
                problems.append(f"{name}: no Chromium: {INSTALL_HINT}; {SETUP_HINT}")
        except ray.exceptions.GetTimeoutError:
            problems.append(f"{name}: did not answer within {PREFLIGHT_PROBE_TIMEOUT:.0f} s")
        except ray.exceptions.RayTaskError as e:
            if isinstance(e.cause, ModuleNotFoundError) or "No module named" in str(e):
                problems.append(f"{name}: raycollect is not installed there; {SETUP_HINT}")
            else:
                raise
    return problems


def _browsers_missing(nodes: list[dict]) -> list[str]:
    from ray._private import state  # Ray's job table: its drivers, with their command lines

    running = {j["DriverIPAddress"] for j in state.jobs()
               if not j["IsDead"] and _BROWSERS.search(j.get("Entrypoint") or "")}
    return [_name(n) for n in nodes if n["NodeManagerAddress"] not in running]


def check_nodes(browsers: str, wait: float = PREFLIGHT_BROWSERS_WAIT) -> None:
    """Raise NodeNotReady naming every node that cannot render. With external browsers, a
    node's `raycollect browsers` may still be starting (the launcher starts it in the
    background): it is waited for, up to `wait` seconds."""
    nodes = cpu_nodes()
    problems = _chromium_problems(nodes)
    if browsers == "external":
        deadline = time.monotonic() + wait
        while (missing := _browsers_missing(nodes)) and time.monotonic() < deadline:
            time.sleep(PREFLIGHT_POLL)
        problems += [f"{name}: no `raycollect browsers` running within {wait:.0f} s; {START_HINT}"
                     for name in missing]
    if problems:
        raise NodeNotReady("; ".join(problems))
