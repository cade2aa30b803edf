"""`raycollect export OUT --format coco`: OUT/coco.json, COCO instances with RLE masks.

One image per manifest line (`file_name` relative to OUT, or for a sharded output the
member of the shard named by `shard`; `width`, `height`, and raycollect's `job_id`), one
annotation per labelled object that the frame shows (`objects` of a run with masks:
raycollect/labels.py): `segmentation` is compressed RLE of exactly the pixels whose
mask id is the object's, `bbox` is tight on them, `area` is their count, `iscrowd` 0.
Categories are the objects' classes (`classes=` when rendering: one category per class,
shared by its instances; without, each element key, "robot/link" keys too, is its own), or
what a mapping {key: category name} given to the export says (a link's key falls back to its
robot's key).
The file loads with pycocotools (`pip install 'raycollect[coco]'`), whose `annToMask` gives
back each frame's mask for that id, bit for bit.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from ..errors import RaycollectError
from ..labels import LINK_SEPARATOR
from .manifest import finished

COCO_FILE = "coco.json"


def rle(binary: np.ndarray) -> dict:
    """COCO's compressed RLE of a boolean H x W mask (column-major runs, starting with 0s)."""
    flat = np.asarray(binary, dtype=np.uint8).ravel(order="F")
    change = np.flatnonzero(np.diff(flat)) + 1
    runs = np.diff(np.concatenate([[0], change, [flat.size]])).tolist()
    if flat.size and flat[0] == 1:
        runs = [0] + runs
    return {"size": [int(binary.shape[0]), int(binary.shape[1])], "counts": _rle_string(runs)}


def _rle_string(counts: list[int]) -> str:
    # pycocotools' rleToString: each count (after the first two, as a difference from the
    # count two before it) in 5-bit groups, with a continuation bit, offset by 48.
    out = []
    for i, x in enumerate(counts):
        if i > 2:
            x -= counts[i - 2]
        more = True
        while more:
            c = x & 0x1F
            x >>= 5
            more = (x != -1) if (c & 0x10) else (x != 0)
            if more:
                c |= 0x20
            out.append(chr(c + 48))
    return "".join(out)


def _category(key: str, obj: dict, mapping: dict | None) -> str:
    if not mapping:
        return obj.get("class", key)
    if key in mapping:
        return str(mapping[key])
    robot = key.split(LINK_SEPARATOR, 1)[0]
    return str(mapping.get(robot, key))


def coco(out: str | Path, categories: dict | None = None,
         storage_options: dict | None = None) -> str:
    loc, reader, lines = finished(out, storage_options)
    if any("mask" not in m["files"] or "objects" not in m for m in lines):
        raise RaycollectError(f"{out}: the coco export needs masks and labels: render with "
                              f"masks=True (raycollect run --masks)")
    names: dict[str, int] = {}
    images, annotations = [], []
    for index, m in enumerate(lines):
        cam = m["camera"]
        image_id = index + 1
        images.append({"id": image_id, "file_name": m["files"]["image"], "job_id": m["job_id"],
                       "width": int(cam["width"]), "height": int(cam["height"]),
                       **({"shard": m["shard"]} if m.get("shard") else {})})
        mask = reader.load(m, "mask")
        for key, obj in sorted(m["objects"].items(), key=lambda kv: kv[1]["id"]):
            if not obj["px"]:
                continue
            name = _category(key, obj, categories)
            cat = names.setdefault(name, len(names) + 1)
            x, y, w, h = obj["bbox"]
            annotations.append({
                "id": len(annotations) + 1, "image_id": image_id, "category_id": cat,
                "segmentation": rle(mask == obj["id"]), "area": int(obj["px"]),
                "bbox": [float(x), float(y), float(w), float(h)], "iscrowd": 0,
                "instance_id": obj["id"], "key": key})
    doc = {"info": {"description": f"raycollect output {loc.url}"},
           "images": images, "annotations": annotations,
           "categories": [{"id": i, "name": n, "supercategory": n.split(LINK_SEPARATOR)[0]}
                          for n, i in names.items()]}
    loc.write(COCO_FILE, json.dumps(doc).encode("utf-8"))
    return f"{loc.url}/{COCO_FILE}"
