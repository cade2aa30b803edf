"""Managed browsers: one small actor per node that has render workers runs a BrowserManager
(raycollect/browser.py) for them, so a browser always sits on its worker's node and talks
to it over loopback. `BrowserHosts` is the driver's side: it starts a host for each node a
worker lands on, reads their counts, and stops them."""

from __future__ import annotations

import logging

import ray
from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

from .browser import BrowserManager, undo_ray_niceness
from .config import Config
from .errors import BrowserError, unwrap
from .queue import JobQueue

HOST_STATUS_TIMEOUT = 30.0  # a browser host's status

log = logging.getLogger(__name__)


class _BrowserHost:
    """Runs a BrowserManager for the workers of the node it is placed on."""

    def __init__(self, queue: JobQueue, node_id: str, binary: str | None,
                 recycle_frames: int):
        undo_ray_niceness()  # before any browser starts: they inherit it
        self.manager = BrowserManager(queue, node_id=node_id, binary=binary,
                                      recycle_frames=recycle_frames).start()

    def status(self) -> dict:
        m = self.manager
        return {"restarts": m.restarts, "recycles": m.recycles, "errors": list(m.errors),
                "fatal": m.fatal,
                "browsers": {w: s.browser.pid for w, s in m.slots.items() if s.browser}}

    def stop(self) -> None:
        self.manager.stop()


BrowserHost = ray.remote(num_cpus=0, max_restarts=0)(_BrowserHost)




class BrowserHosts:
    """The driver's browser hosts, by node id."""

    def __init__(self, queue: JobQueue, config: Config):
        self.queue, self.config = queue, config
        self.hosts: dict[str, object] = {}  # node id -> BrowserHost
        self._restarts: dict[str, int] = {}  # node id -> browser restarts, as last read

    def ensure(self, node_id: str) -> None:
        """A host on this node, started if there is none (managed browsers only)."""
        if self.config.browsers != "managed" or node_id in self.hosts:
            return
        self.hosts[node_id] = BrowserHost.options(
            scheduling_strategy=NodeAffinitySchedulingStrategy(node_id, soft=False)).remote(
            self.queue, node_id, self.config.chromium, self.config.recycle_frames)

    def status(self) -> dict:
        """Restarts and recycles over every host (of lost nodes too), and their errors.
        Raises BrowserError when a host failed or gave up on its browsers."""
        lost = sum(n for node, n in self._restarts.items() if node not in self.hosts)
        out = {"restarts": lost, "recycles": 0, "errors": []}
        for node_id, host in list(self.hosts.items()):
            try:
                s = ray.get(host.status.remote(), timeout=HOST_STATUS_TIMEOUT)
            except ray.exceptions.RayActorError as e:
                # Its node is gone (its workers died with it and are being replaced).
                log.warning("browser host of node %s is gone: %s", node_id[:8], unwrap(e))
                del self.hosts[node_id]
                continue
            except (ray.exceptions.RayError, TimeoutError) as e:
                raise BrowserError(f"browser host on node {node_id[:8]} failed: {unwrap(e)}") from None
            if s.get("fatal"):
                raise BrowserError(f"browsers on node {node_id[:8]}: {s['fatal']}")
            out["restarts"] += s["restarts"]
            out["recycles"] += s["recycles"]
            out["errors"] += s["errors"]
            self._restarts[node_id] = s["restarts"]
        return out

    def close(self, grace: float) -> None:
        for host in self.hosts.values():
            try:
                ray.get(host.stop.remote(), timeout=grace)
            except (ray.exceptions.RayError, TimeoutError):  # gone with its node
                pass
            try:
                ray.kill(host, no_restart=True)
            except Exception:  # already gone
                pass
        self.hosts.clear()
