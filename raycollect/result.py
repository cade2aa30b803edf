"""What a rendered job gives back to the caller: `Result`, a job plus its frame, camera and
labels. Its arrays are decoded from the frame's files on first use (read from the store for an
object-store output), so it lives on the output side of the queue's vocabulary (jobs.py)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from .jobs import Job, Lease
from .output.files import decode


class _Pass:
    """A pass of a Result's frame as an array (its name is the pass's), decoded on first
    use."""

    def __set_name__(self, owner, name: str):
        self.kind = name

    def __get__(self, result, owner=None):
        return self if result is None else result._array(self.kind)


@dataclass
class Result(Job):
    """A rendered job: what the job was, plus its frame and camera data.

    image: HxWx3 uint8 RGB, exactly the pixels the browser drew. depth: HxW float32 metres of
    z-depth (0 where nothing was hit), or None without the depth pass. mask: HxW uint16
    instance ids (see `instances`), or None without the mask pass. The arrays are decoded
    from the encoded files on first use, so code that only writes files never pays for it.
    camera: {"matrix" (4x4 camera-to-world), "K" (3x3, pixels), "width", "height", "fov",
    "near", "far"}. instances: {scene element key: id} of the frame's drawn elements (and
    "robot/link" keys with masks="links"). objects: the frame's labels by element key (id,
    class, pose, bbox, px, links, model; with amodal px_all, bbox_all, visib_fract;
    raycollect/labels.py), with the mask pass. classes: {class name: class id} of the
    frame's scene (the ids `semantic` holds). semantic: HxW uint16 class ids (semantic=True).
    amodal: {key: bool HxW} each labelled thing's whole silhouette (amodal=True). normals:
    HxWx3 float32 unit normals in the camera frame (x right, y up, z towards the viewer), 0
    where nothing is hit (normals=True). coords: HxWx3 float32, where each pixel's surface is
    in the frame of the thing its mask id names, metres (coords=True; rc.flow uses them).
    path: the PNG written, when rendering to an output directory. With an object store
    output the frame's bytes stay in the store (only `keys`, and `shard`, come back to the
    driver): the arrays are read from the store on first use."""

    camera: dict | None = None
    worker: str = ""
    attempt: int = 0
    timings: dict | None = None
    path: str | None = None
    node: str = ""
    instances: dict | None = None
    objects: dict | None = None
    classes: dict | None = None
    files: dict = field(default_factory=dict, repr=False)  # kind -> encoded bytes
    # A store output: kind -> the object's key (or the shard's member), the shard, the store.
    keys: dict | None = None
    shard: str | None = None
    location: Any = field(default=None, repr=False)
    # From the render worker to the driver: the lease the driver completes (raycollect/
    # render/worker.py makes the Result, the driver records it and hands it to you).
    lease: Lease | None = field(default=None, repr=False)
    _arrays: dict = field(default_factory=dict, repr=False)

    def _array(self, kind: str):
        if kind not in self._arrays:
            data = self.files.get(kind)
            if data is None and self.keys and kind in self.keys and self.location is not None:
                from .output.manifest import FrameReader

                data = FrameReader(self.location).bytes(
                    {"files": self.keys, "shard": self.shard}, kind)
            self._arrays[kind] = None if data is None else decode(kind, data)
        return self._arrays[kind]

    image = _Pass()
    depth = _Pass()
    mask = _Pass()
    semantic = _Pass()
    normals = _Pass()
    coords = _Pass()

    @property
    def amodal(self) -> dict | None:
        """{key: bool HxW}: each labelled thing's silhouette, occluded parts included."""
        by_id = self._array("amodal")
        if by_id is None:
            return None
        keys = {i: k for k, i in (self.instances or {}).items()}
        return {keys.get(i, str(i)): m for i, m in by_id.items()}
