"""One configuration object for a run: every option and its default, in one place.

`rc.render(jobs, scene, workers=2, out="renders", depth=True)` builds a `Config` from its
keyword arguments; the driver, the pool of workers, each render worker and the browser hosts
all read the same object, so an option is defined, defaulted and documented once.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from . import constants as C

GRAB_TTL = 10.0
# The revision marker is polled until it shows the new revision; give up after this long.
SETTLE_TIMEOUT = 10.0
SESSION_WAIT_TIMEOUT = 60.0
# With no render worker left, replacements are tried this long before the run fails (a node
# may come back, or an autoscaler add one); the run never waits forever on none.
NO_WORKER_TIMEOUT = 120.0
# A scene's models and textures must have loaded within this long, or its job fails.
MODEL_LOAD_TIMEOUT = 30.0


@dataclass(frozen=True)
class Config:
    # --- where and how many
    workers: int | str = C.DEFAULT_WORKERS  # an int, or "auto": one per CPU slot
    # output directory, or an object store URL (s3://bucket/prefix, gs://...; fsspec's);
    # None: results only, nothing written
    out: str | None = None
    # for a store output: fsspec's options for the URL's filesystem (key, secret, ...), and
    # the endpoint of an S3-compatible server (else AWS_ENDPOINT_URL, as boto3 reads it)
    storage_options: dict | None = None
    endpoint_url: str | None = None
    # seconds a store output that fails is retried (with backoff) before the run stops
    store_retry: float = C.STORE_RETRY_SECONDS
    # 0: one file per pass; N: frames packed N to a WebDataset tar shard (shards/)
    shard_size: int = 0
    address: str | None = None  # Ray cluster; None: a live recorded one, else a local Ray
    browsers: str = "managed"  # "managed": raycollect starts Chromium; "external": you do
    chromium: str | None = None  # the browser binary for managed browsers [found on PATH]
    queue_name: str = C.DEFAULT_QUEUE_NAME
    # --- what each frame holds
    depth: bool = False  # metric z-depth, frames/<id>.depth.npy
    # instance ids, frames/<id>.mask.png, and labels (`objects`) in the manifest; "links":
    # every URDF link its own id (part segmentation)
    masks: bool | str = False
    # what each labelled thing is: {element key: class name} or a callable key -> name (None:
    # its own key); a URDF link without a class of its own takes its robot's. Manifest
    # objects carry "class", lines the frame's {class: id}
    classes: Any = None
    # a class-id mask per frame (frames/<id>.semantic.png), from the instance mask
    semantic: bool = False
    # each labelled thing's whole silhouette, occluded parts included (frames/<id>.amodal.npz),
    # and px_all, bbox_all (BOP's, on a canvas 3x the image) and visib_fract in its labels
    amodal: bool = False
    # per-pixel unit normals in the camera frame (frames/<id>.normals.npy, float32 H x W x 3)
    normals: bool = False
    # per-pixel position in the frame of the thing the pixel shows (its element's own object,
    # or with masks="links" its URDF link), metres (frames/<id>.coords.npy)
    coords: bool = False
    # "png" (default, the fastest encode), "png-small", "webp" (lossless) or "npy"
    # (raycollect/constants.py IMAGE_FORMATS: what each costs and writes)
    image_format: str = "png"
    up: str = "y"  # "z": cameras, placements and poses in a Z-up world (ROS, pybullet)
    assets: Any = None  # a folder served at /workspace/ (a path, or assets.Assets)
    # --- the queue
    lease_ttl: float = C.DEFAULT_LEASE_TTL
    max_attempts: int = C.DEFAULT_MAX_ATTEMPTS
    # --- rendering
    views_per_update: int = C.VIEWS_PER_UPDATE
    session_timeout: float = SESSION_WAIT_TIMEOUT
    grab_ttl: float = GRAB_TTL
    settle_timeout: float = SETTLE_TIMEOUT
    model_timeout: float = MODEL_LOAD_TIMEOUT
    # False skips the revision barrier: frames may then show an earlier job. Only for
    # measuring what the barrier costs and for the test that proves it is needed.
    barrier: bool = True
    recycle_frames: int = C.BROWSER_RECYCLE_JOBS
    # seconds with no render worker (all lost, none placeable) before the run fails
    no_worker_timeout: float = NO_WORKER_TIMEOUT
    # --- the driver
    progress: bool = True

    def __post_init__(self):
        if self.browsers not in ("managed", "external"):
            raise ValueError(f"browsers must be 'managed' or 'external', got {self.browsers!r}")
        for name in ("lease_ttl", "max_attempts", "views_per_update", "session_timeout",
                     "store_retry"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0:
                raise ValueError(f"{name} must be a positive number, got {value!r}")
        if self.masks not in C.MASKS_CHOICES:
            raise ValueError(f"masks must be True, False, {C.MASKS_LINKS!r} or "
                             f"{C.MASKS_GEOMS!r}, got {self.masks!r}")
        if isinstance(self.shard_size, bool) or not isinstance(self.shard_size, int) \
                or self.shard_size < 0:
            raise ValueError(f"shard_size must be 0 (no shards) or a positive number of frames, "
                             f"got {self.shard_size!r}")
        if self.image_format not in C.IMAGE_FORMATS:
            raise ValueError(f"image_format must be one of {', '.join(map(repr, C.IMAGE_FORMATS))}, "
                             f"got {self.image_format!r}")
        for name in ("amodal", "semantic"):
            if getattr(self, name) and not self.masks:
                raise ValueError(f"{name}=True needs the instance masks it is made from: "
                                 f"masks=True, {C.MASKS_LINKS!r} or {C.MASKS_GEOMS!r}")
        if self.classes is not None and not (callable(self.classes) or isinstance(self.classes, dict)):
            raise ValueError(f"classes must be a dict {{element key: class name}} or a callable "
                             f"key -> name, got {type(self.classes).__name__}")
        if isinstance(self.classes, dict):
            bad = [k for k, v in self.classes.items() if not isinstance(k, str) or not isinstance(v, str) or not v]
            if bad:
                raise ValueError(f"classes: key {bad[0]!r} must map a string key to a non-empty "
                                 f"class name, got {self.classes[bad[0]]!r}")
        if self.up not in C.UP_AXES:
            raise ValueError(f"up must be one of {', '.join(map(repr, C.UP_AXES))}, got {self.up!r}")
        if self.views_per_update > C.MAX_VIEWS_PER_UPDATE:
            raise ValueError(f"views_per_update must be at most {C.MAX_VIEWS_PER_UPDATE} (each "
                             f"view is a WebGL context, and Chromium keeps 16 per page, the "
                             f"revision marker's view and the page's canvas included), got "
                             f"{self.views_per_update}")

    def replace(self, **changes) -> "Config":
        names = {f.name for f in dataclasses.fields(self)}
        unknown = sorted(set(changes) - names)
        if unknown:
            raise TypeError(f"unknown option(s) {', '.join(unknown)}; options: "
                            f"{', '.join(sorted(names))}")
        return dataclasses.replace(self, **changes)

    def location(self):
        """Where the output's bytes go (raycollect/output/store.py), or None without an output."""
        from .output.store import location

        if self.out is None:
            return None
        opts = dict(self.storage_options or {})
        if self.endpoint_url:
            opts["endpoint_url"] = self.endpoint_url
        return location(self.out, opts, self.store_retry)

    @property
    def to_store(self) -> bool:
        from .output.store import is_url

        return is_url(self.out)

    @property
    def passes(self) -> tuple[str, ...]:
        """The extra passes the page renders with every grab (raycollect/render/capture_js/)."""
        return tuple(p for p, on in (("depth", self.depth), ("mask", self.masks),
                                     ("normals", self.normals), ("coords", self.coords),
                                     ("amodal", self.amodal)) if on)
