"""dataset.json: what a whole output is, beside its manifest.

    {"classes": {class name: class id}   every class any frame's labels name (the ids the
                                         semantic masks hold, stable across runs)
     "passes": [...],                    the passes its frames hold (rgb, depth, mask, ...)
     "up": "y" | "z",                    the world's up axis of its cameras and poses
     "assets": "/abs/path" | null}       the assets folder its scenes' files came from (the
                                         BOP export reads the models there)

Written at the end of every run from the whole manifest, so a rerun that adds frames (or
classes) rewrites it; the manifest stays the record of what is done.
"""

from __future__ import annotations

import json
from pathlib import Path

from .files import PASS_NAMES
from .manifest import as_location, passes, read_manifest

DATASET = "dataset.json"


def classes(lines: list[dict]) -> dict[str, int]:
    out: dict[str, int] = {}
    for line in lines:
        out.update(line.get("classes") or {})
    return dict(sorted(out.items(), key=lambda kv: kv[1]))


def write(out, config, storage_options: dict | None = None) -> dict:
    loc = as_location(out, storage_options)
    lines = read_manifest(loc)
    assets = getattr(config.assets, "path", config.assets)
    doc = {"classes": classes(lines), "passes": [PASS_NAMES[k] for k in passes(lines)],
           "up": config.up, "assets": None if assets is None else str(Path(assets).resolve())}
    loc.write(DATASET, json.dumps(doc, indent=1).encode("utf-8"))
    return doc


def read(out, storage_options: dict | None = None) -> dict:
    """The output's dataset.json ({} for an output written before it existed)."""
    text = as_location(out, storage_options).read_text(DATASET)
    return json.loads(text) if text else {}
