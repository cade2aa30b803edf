"""Export a finished output for other tools: `raycollect export OUT --format nerfstudio`
(below), `--format coco` (raycollect/output/coco.py) and `--format bop` (raycollect/output/bop.py).

nerfstudio / instant-ngp read `transforms.json`: per frame `file_path` (relative to the file),
`transform_matrix` (camera-to-world in the OpenGL convention, which is raycollect's own),
intrinsics `fl_x, fl_y, cx, cy, w, h` (at the top level when every frame shares them, per
frame otherwise), and optionally `depth_file_path` (16-bit PNG in millimetres, nerfstudio's
default depth unit) and `mask_path` (255 where an element is seen, 0 elsewhere; nerfstudio
ignores pixels where the mask is 0). Depth and mask images are written beside the frames,
under `nerfstudio/`.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np

from .. import constants as C
from ..errors import RaycollectError
from .files import depth_mm, png_bytes
from .manifest import finished
from .store import is_url

NERFSTUDIO_DIR = "nerfstudio"


def _intrinsics(cam: dict) -> dict:
    K = cam["K"]
    return {"fl_x": K[0][0], "fl_y": K[1][1], "cx": K[0][2], "cy": K[1][2],
            "w": int(cam["width"]), "h": int(cam["height"])}


def nerfstudio(out: str | Path, storage_options: dict | None = None) -> str:
    """Write OUT/transforms.json (and depth/mask PNGs when the output has those passes)."""
    loc, reader, lines = finished(out, storage_options)
    intr = [_intrinsics(m["camera"]) for m in lines]
    shared = all(i == intr[0] for i in intr)
    frames = []
    for m, k in zip(lines, intr):
        image = m["files"]["image"]
        # Image loaders read PNG and WebP files, not npy, and not a shard's member.
        if m.get("shard") or image.endswith(C.IMAGE_FORMATS["npy"][0]):
            image = _write(loc, m["job_id"], "images", reader.load(m, "image"))
        frame = {"file_path": image, "transform_matrix": m["camera"]["matrix"]}
        if not shared:
            frame.update(k)
        if "depth" in m["files"]:
            frame["depth_file_path"] = _write(loc, m["job_id"], "depth",
                                              depth_mm(reader.load(m, "depth")))
        if "mask" in m["files"]:
            seen = reader.load(m, "mask") > 0
            frame["mask_path"] = _write(loc, m["job_id"], "mask", seen.astype(np.uint8) * 255)
        frames.append(frame)
    doc = {"camera_model": "OPENCV", **(intr[0] if shared else {}), "frames": frames}
    loc.write("transforms.json", json.dumps(doc, indent=1).encode("utf-8"))
    return f"{loc.url}/transforms.json"


def _write(loc, job_id: str, kind: str, array: np.ndarray) -> str:
    key = f"{NERFSTUDIO_DIR}/{kind}/{job_id}.png"
    loc.write(key, png_bytes(array))
    return key


def export(out: str | Path, fmt: str, categories: str | dict | None = None,
           storage_options: dict | None = None, split: str | None = None,
           assets: str | Path | None = None, scene_size: int | None = None) -> str | Path:
    """Write OUT in `fmt` (nerfstudio, coco: raycollect/output/coco.py, bop: raycollect/output/bop.py),
    into OUT itself (a folder or a store URL); returns what it wrote (a Path in a folder, a
    URL in a store). `categories` (coco): {element key: category name}, or the path of a
    JSON file of it. `split` (bop): the split folder [train]; `assets` (bop): the assets
    folder the scenes' model files are in [the one dataset.json names]; `scene_size` (bop):
    images a scene folder [1000]."""
    from .bop import DEFAULT_SPLIT, SCENE_SIZE, bop
    from .coco import coco

    if fmt not in C.EXPORT_FORMATS:
        raise RaycollectError(f"unknown export format {fmt!r} (one of: {', '.join(C.EXPORT_FORMATS)})")
    if not is_url(out) and not Path(out).is_dir():
        raise RaycollectError(f"{out}: no such output directory")
    if isinstance(categories, (str, os.PathLike)):
        try:
            categories = json.loads(Path(categories).read_text(encoding="utf-8"))
        except (OSError, ValueError) as e:
            raise RaycollectError(f"--categories {categories}: {e}") from None
        if not isinstance(categories, dict):
            raise RaycollectError("--categories must hold a JSON object {element key: name}")
    if fmt == "coco":
        written = coco(out, categories, storage_options)
    elif fmt == "bop":
        written = bop(out, storage_options, split=split or DEFAULT_SPLIT, assets=assets,
                      scene_size=SCENE_SIZE if scene_size is None else scene_size)
    else:
        written = nerfstudio(out, storage_options)
    return written if is_url(out) else Path(written)
