"""Where the time goes: counters each render worker keeps, published through
`ray.util.metrics` (so they show in Ray's dashboard and its Prometheus endpoint) and through
the queue's worker registry (so `raycollect status` and the run's summary show them).

Metrics: `raycollect_frames` (counter, per worker and node) and
`raycollect_wait_seconds` (gauge, per worker, node and what it waited on: "browser" =
settling and grabbing, "queue" = waiting for leases, "driver" = blocked handing frames over
because the driver's backlog was full).
"""

from __future__ import annotations

from ray.util.metrics import Counter, Gauge


class WorkerMetrics:
    def __init__(self, worker: str, node: str):
        self._tags = {"worker": worker, "node": node}
        self._frames = Counter("raycollect_frames", description="frames rendered",
                               tag_keys=("worker", "node"))
        self._wait = Gauge("raycollect_wait_seconds",
                           description="seconds a render worker waited, by what it waited on",
                           tag_keys=("worker", "node", "on"))

    def frames(self, n: int) -> None:
        if n > 0:
            self._frames.inc(n, tags=self._tags)

    def waits(self, seconds: dict[str, float]) -> None:
        for on, s in seconds.items():
            self._wait.set(s, tags={**self._tags, "on": on})


def per_worker(registry: dict[str, dict]) -> dict[str, dict]:
    """The summary's view of the registry: frames, frames/s and waits per worker."""
    out = {}
    for worker, info in sorted(registry.items()):
        secs = float(info.get("seconds") or 0.0)
        out[worker] = {"node": info.get("node_id", "")[:12], "frames": info.get("frames", 0),
                       "frames_per_s": round(info.get("frames", 0) / secs, 2) if secs else 0.0,
                       "scene_updates": info.get("scene_updates", 0),
                       "wait_s": info.get("wait_s", {})}
    return out


def per_node(workers: dict[str, dict]) -> dict[str, dict]:
    nodes: dict[str, dict] = {}
    for w in workers.values():
        n = nodes.setdefault(w["node"], {"workers": 0, "frames": 0, "frames_per_s": 0.0})
        n["workers"] += 1
        n["frames"] += w["frames"]
        n["frames_per_s"] = round(n["frames_per_s"] + w["frames_per_s"], 2)
    return nodes
