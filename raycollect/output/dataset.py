"""A finished output as a Ray Dataset: `rc.read("renders")`, one row per frame.

Rows are read from the files as the dataset streams (nothing is loaded up front), so a
training loop or a Ray Data sink (`write_parquet`, `write_webdataset`, `write_images`, ...)
pulls frames as it needs them. The output can be a folder, an object store URL
(`rc.read("s3://bucket/prefix")`, with `storage_options` as for rendering) and sharded or
not: each frame is read from its file or its shard's member (raycollect/output/manifest.py). On a
cluster a local output folder must be readable from the nodes that run the reads (a shared
filesystem); a store output is read from the store by every node.

Each row: job_id (str), image (H x W x 3 uint8), depth (H x W float32 metres, when the output
has the depth pass), mask (H x W uint16 instance ids, with the mask pass), K (3 x 3), matrix
(4 x 4 camera-to-world), width, height, params (the job's params as a JSON string: params
differ from job to job, which a columnar schema cannot hold as a struct), instances (JSON
string of {key: id}, with the mask pass), objects (JSON string of the frame's labels: per
element key its id, class, 4x4 pose, bbox, pixel count and URDF link poses;
raycollect/labels.py), classes (JSON string of {class name: id}, with the mask pass),
semantic (H x W uint16 class ids), normals and coords (H x W x 3 float32), amodal (n x H x W
bool, one silhouette per id of amodal_ids, uint32 n), each with its pass.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from ..errors import RaycollectError
from .manifest import MANIFEST, FrameReader, as_location, part_keys, passes, read_manifest
from .store import StoreLocation

_readers: dict = {}  # one FrameReader per output per process (its shard index cache)


def _row(out: str, storage_options: dict | None, kinds: list[str]):
    def load_row(row: dict) -> dict:
        key = (out, repr(storage_options))
        reader = _readers.get(key) or _readers.setdefault(key, FrameReader(out, storage_options))
        line = json.loads(row["text"])
        cam = line["camera"]
        out_ = {"job_id": line["job_id"],
                "K": np.asarray(cam["K"], dtype=np.float64),
                "matrix": np.asarray(cam["matrix"], dtype=np.float64),
                "width": int(cam["width"]), "height": int(cam["height"]),
                "params": json.dumps(line["params"], sort_keys=True)}
        for kind in kinds:
            value = reader.load(line, kind)
            if kind == "amodal":  # {id: mask}: a tensor and its ids, which a column can hold
                ids = sorted(value)
                out_["amodal_ids"] = np.asarray(ids, dtype=np.uint32)
                value = np.stack([value[i] for i in ids]) if ids else \
                    np.zeros((0, int(cam["height"]), int(cam["width"])), bool)
            out_[kind] = value
        if "mask" in kinds:
            out_["instances"] = json.dumps(line.get("instances", {}), sort_keys=True)
            out_["objects"] = json.dumps(line.get("objects", {}), sort_keys=True)
            out_["classes"] = json.dumps(line.get("classes", {}), sort_keys=True)
        return out_
    return load_row


def read(out: str | Path, storage_options: dict | None = None, **read_text_options):
    """The frames of a finished output as a `ray.data.Dataset` (needs `raycollect[data]`)."""
    try:
        import ray.data
    except ImportError as e:  # pragma: no cover - depends on the install
        raise RaycollectError("rc.read needs Ray Data: pip install 'raycollect[data]' "
                              f"(or 'ray[data]'): {e}") from None
    loc = as_location(out if "://" in str(out) else Path(out).resolve(), storage_options)
    if isinstance(loc, StoreLocation):
        import pyarrow.fs as pafs

        paths = [loc._path(k) for k in ([MANIFEST] if loc.exists(MANIFEST) else []) + part_keys(loc)]
        if not paths:
            raise RaycollectError(f"{out} is not a raycollect output: it has no manifest")
        read_text_options.setdefault("filesystem", pafs.PyFileSystem(pafs.FSSpecHandler(loc.fs)))
    else:
        if not loc.exists(MANIFEST):
            raise RaycollectError(f"{out} is not a raycollect output: it has no {MANIFEST}")
        paths = [str(Path(loc.url) / MANIFEST)]
    kinds = passes(read_manifest(loc))
    ds = ray.data.read_text(paths, **read_text_options)
    ds = ds.filter(lambda row: bool(row["text"].strip()))
    return ds.map(_row(loc.url, storage_options, kinds))
