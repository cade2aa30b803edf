"""Where the time goes: counters each render worker keeps, published through
`ray.util.metrics` (so they show in Ray's dashboard and its Prometheus endpoint) and through
the queue's worker registry (so `raycollect status` and the run's summary show them).

Metrics: `raycollect_frames` (counter, per worker and node) and
`raycollect_wait_seconds` (gauge, per worker, node and what it waited on: "browser" =
settling and grabbing, "queue" = waiting for leases, "driver" = blocked handing frames over
because the driver's backlog was full).

Each worker also keeps where a frame's time goes, stage by stage (`STAGES`, a `StageClock`);
the summary and `raycollect status` show it per frame, so a user sees which stage limits
their run.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ray.util.metrics import Counter, Gauge

# The stages of a frame on a render worker, in the order a batch goes through them.
STAGES = {
    "update": "building the scene and sending the update (or the moved cameras) to the page",
    "settle": "the revision barrier: grabbing the marker view until the page shows the update "
              "(and waiting for a new scene's models)",
    "page": "the page drawing the view and reading its pixels back (every pass)",
    "transfer": "the grab's round trip less the page's own time: the socket and Vuer",
    "decode": "decoding the page's raw pixels (and the labels)",
    "encode": "encoding the frame's files",
    "store": "writing the frame's files (or its shard) to an object store output",
    "driver": "blocked handing frames to the driver (its backlog was full)",
    "queue": "nothing to render: waiting for leases",
}


@dataclass
class StageClock:
    """Seconds spent in each of STAGES, and how many frames took the one-render (MRT) path
    of the page and how many the separate passes (raycollect/render/capture_js/)."""

    seconds: dict = field(default_factory=lambda: dict.fromkeys(STAGES, 0.0))
    modes: dict = field(default_factory=dict)

    def add(self, stage: str, s: float) -> None:
        self.seconds[stage] += s

    def mode(self, name: str | None, why: str | None = None) -> None:
        """Count a frame's page mode; a separate-passes frame is counted by its reason."""
        if name:
            key = f"{name}: {why}" if why else name
            self.modes[key] = self.modes.get(key, 0) + 1

    def snapshot(self) -> dict:
        return {"stages_s": {k: round(v, 4) for k, v in self.seconds.items()},
                "pass_modes": dict(self.modes)}


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
    """The summary's view of the registry: frames, frames/s, waits and, per frame, the time
    of each stage (STAGES) and the stage that took most ("limit")."""
    out = {}
    for worker, info in sorted(registry.items()):
        secs = float(info.get("seconds") or 0.0)
        out[worker] = {"node": info.get("node_id", "")[:12], "frames": info.get("frames", 0),
                       "frames_per_s": round(info.get("frames", 0) / secs, 2) if secs else 0.0,
                       "scene_updates": info.get("scene_updates", 0),
                       "wait_s": info.get("wait_s", {})}
        stages = info.get("stages_s") or {}
        frames = info.get("frames", 0)
        if stages and frames:
            per = {k: round(1000 * v / frames, 2) for k, v in stages.items()}
            out[worker]["stage_ms_per_frame"] = per
            out[worker]["limit"] = max(per, key=per.get)
            out[worker]["pass_modes"] = info.get("pass_modes", {})
    return out


def per_node(workers: dict[str, dict]) -> dict[str, dict]:
    nodes: dict[str, dict] = {}
    for w in workers.values():
        n = nodes.setdefault(w["node"], {"workers": 0, "frames": 0, "frames_per_s": 0.0})
        n["workers"] += 1
        n["frames"] += w["frames"]
        n["frames_per_s"] = round(n["frames_per_s"] + w["frames_per_s"], 2)
    return nodes
