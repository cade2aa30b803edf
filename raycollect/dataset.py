"""A finished output as a Ray Dataset: `rc.read("renders")`, one row per frame.

Rows are read from the files as the dataset streams (nothing is loaded up front), so a
training loop or a Ray Data sink (`write_parquet`, `write_webdataset`, `write_images`, ...)
pulls frames as it needs them. On a cluster the output folder must be readable from the
nodes that run the reads (a shared filesystem).

Each row: job_id (str), image (H x W x 3 uint8), depth (H x W float32 metres, when the output
has the depth pass), mask (H x W uint16 instance ids, with the mask pass), K (3 x 3), matrix
(4 x 4 camera-to-world), width, height, params (the job's params as a JSON string: params
differ from job to job, which a columnar schema cannot hold as a struct), instances (JSON
string of {key: id}, with the mask pass), objects (JSON string of the frame's labels: per
element key its id, 4x4 pose, bbox, pixel count and URDF link poses; raycollect/labels.py).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from .errors import RaycollectError
from .files import load
from .writer import MANIFEST, passes, read_manifest


def _row(root: str, kinds: list[str]):
    def load_row(row: dict) -> dict:
        line = json.loads(row["text"])
        cam = line["camera"]
        out = {"job_id": line["job_id"],
               "K": np.asarray(cam["K"], dtype=np.float64),
               "matrix": np.asarray(cam["matrix"], dtype=np.float64),
               "width": int(cam["width"]), "height": int(cam["height"]),
               "params": json.dumps(line["params"], sort_keys=True)}
        for kind in kinds:
            out[kind] = load(Path(root) / line["files"][kind], kind)
        if "mask" in kinds:
            out["instances"] = json.dumps(line.get("instances", {}), sort_keys=True)
            out["objects"] = json.dumps(line.get("objects", {}), sort_keys=True)
        return out
    return load_row


def read(out: str | Path, **read_text_options):
    """The frames of a finished output as a `ray.data.Dataset` (needs `raycollect[data]`)."""
    try:
        import ray.data
    except ImportError as e:  # pragma: no cover - depends on the install
        raise RaycollectError("rc.read needs Ray Data: pip install 'raycollect[data]' "
                              f"(or 'ray[data]'): {e}") from None
    root = Path(out).resolve()
    manifest = root / MANIFEST
    if not manifest.is_file():
        raise RaycollectError(f"{out} is not a raycollect output: it has no {MANIFEST}")
    kinds = passes(read_manifest(root))
    ds = ray.data.read_text(str(manifest), **read_text_options)
    ds = ds.filter(lambda row: bool(row["text"].strip()))
    return ds.map(_row(str(root), kinds))
