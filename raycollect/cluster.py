"""Which Ray cluster a run joins, decided before `ray.init` so that it can never hang.

With no address, `ray.init()` follows the record an earlier `ray start --head` left in Ray's
temp dir (`<RAY_TMPDIR or /tmp>/ray/ray_current_cluster`). When that cluster is gone (killed,
crashed, a reboot without `ray stop`), Ray retries "Failed to connect to GCS" forever. Here a
recorded or given GCS address is probed with a plain TCP connect first: no address and a
dead record means a new local Ray; an address the user gave (or `auto`) that does not answer
is an error naming it and saying what to do.
"""

from __future__ import annotations

import logging
import os
import socket
from pathlib import Path

from .errors import ClusterUnreachable

# A Ray cluster's GCS port that does not accept a TCP connection within this long is dead.
CLUSTER_PROBE_TIMEOUT = 5.0

log = logging.getLogger(__name__)

FIX = ("run `ray stop` to clear a stale record, start the cluster, or pass --address local "
       "to start a local Ray for this run")


def record_file() -> Path:
    """Where `ray start` records the cluster it started (what `ray.init()` follows)."""
    base = os.environ.get("RAY_TMPDIR") or os.environ.get("TMPDIR") or "/tmp"
    return Path(base) / "ray" / "ray_current_cluster"


def recorded_address() -> str | None:
    try:
        text = record_file().read_text().strip()
    except OSError:
        return None
    return text or None


def reachable(address: str, timeout: float = CLUSTER_PROBE_TIMEOUT) -> bool:
    host, _, port = address.rpartition(":")
    try:
        with socket.create_connection((host or "127.0.0.1", int(port)), timeout=timeout):
            return True
    except (OSError, ValueError):
        return False


def resolve(address: str | None) -> str | None:
    """The address to give `ray.init`: None (start a local Ray), "local", or a live one."""
    # RAY_ADDRESS wins, as in Ray itself: a driver under `ray job submit` gets its cluster
    # there, whatever --address says.
    given = os.environ.get("RAY_ADDRESS") or address or None
    if given == "local" or (given and "://" in given):
        return given  # a new local Ray; or a Ray client / dashboard URL, checked by Ray
    if given in (None, "auto"):
        recorded = recorded_address()
        if recorded is None:
            return given  # None: a local Ray; "auto": Ray looks for one, and says if none
        if reachable(recorded):
            return recorded
        if given is None:
            log.warning("the Ray cluster recorded in %s (%s) does not answer; starting a local "
                        "Ray instead (`ray stop` clears the record)", record_file(), recorded)
            return "local"
        raise ClusterUnreachable(f"the Ray cluster recorded in {record_file()} ({recorded}) does "
                                 f"not answer: {FIX}")
    if not reachable(given):
        raise ClusterUnreachable(f"the Ray cluster at {given} does not answer: {FIX}")
    return given


def init(address: str | None, **kwargs) -> None:
    """`ray.init` with the address resolved first (no-op when Ray is initialised already)."""
    import ray

    if not ray.is_initialized():
        target = resolve(address)
        try:
            ray.init(address=target, **kwargs)
        except ConnectionError as e:  # "auto" and no cluster running: Ray says so at once
            raise ClusterUnreachable(f"no Ray cluster at {target!r}: {e}") from None


def cpu_nodes() -> list[dict]:
    """The live nodes that can take a render worker (they have CPUs), as `ray.nodes()`
    describes them."""
    import ray

    return [n for n in ray.nodes() if n.get("Alive") and n.get("Resources", {}).get("CPU", 0) > 0]
