"""The contact sheet: a grid of an evenly spaced sample of an output's frames, every pass
side by side, labelled objects boxed with their ids. Written to any output (a directory or an
object store) as contact_sheet.png; `raycollect status` and a run's end make it."""

from __future__ import annotations

import io
import math

import numpy as np
from PIL import Image, ImageDraw

from .. import constants as C
from .files import PASS_NAMES, SUFFIXES
from .manifest import FrameReader, as_location, read_manifest

CONTACT_SHEET_THUMB_WIDTH = 160
CONTACT_SHEET_GAP = 4
CONTACT_SHEET_TITLE_HEIGHT = 18

CONTACT_SHEET = "contact_sheet.png"


def _thumbnail(kind: str, array: np.ndarray, width: int) -> Image.Image:
    """A picture of one pass: RGB as is, depth as grey (near bright), ids as colours."""
    if kind == "depth":
        # Inverse depth between robust bounds: near detail stays visible when a ground plane
        # runs to the horizon.
        hit = array > 0
        grey = np.zeros(array.shape, np.uint8)
        if hit.any():
            inv = 1.0 / array[hit].astype(np.float64)
            lo, hi = np.percentile(inv, [2, 98])
            grey[hit] = (55 + 200 * np.clip((inv - lo) / max(hi - lo, 1e-12), 0, 1)).astype(np.uint8)
        im = Image.fromarray(grey).convert("RGB")
    elif kind in ("mask", "semantic"):
        im = Image.fromarray(_id_colours(array))
    elif kind == "amodal":  # every silhouette in its id's colour, the larger ones first
        ids = np.zeros(next(iter(array.values())).shape if array else (1, 1), np.uint32)
        for i, m in sorted(array.items(), key=lambda kv: -int(kv[1].sum())):
            ids[m] = i
        im = Image.fromarray(_id_colours(ids))
    elif kind == "normals":  # the usual picture: x, y, z from [-1, 1] to [0, 255]
        hit = np.any(array != 0, axis=-1)
        rgb = np.clip((array + 1.0) * 127.5, 0, 255).astype(np.uint8)
        rgb[~hit] = 0
        im = Image.fromarray(rgb)
    elif kind == "coords":  # each axis scaled to the frame's own range
        hit = np.any(array != 0, axis=-1)
        rgb = np.zeros(array.shape, np.uint8)
        if hit.any():
            lo, hi = array[hit].min(0), array[hit].max(0)
            rgb[hit] = (40 + 215 * (array[hit] - lo) / np.maximum(hi - lo, 1e-9)).astype(np.uint8)
        im = Image.fromarray(rgb)
    else:
        im = Image.fromarray(array)
    return im.resize((width, max(1, round(im.height * width / im.width))), Image.NEAREST)


def _id_colours(array: np.ndarray) -> np.ndarray:
    """A fixed, well-spread colour per id (coprime multipliers per channel); 0 stays black."""
    ids = array.astype(np.uint32)
    rgb = np.stack([(ids * 97) % 256, (ids * 181 + 60) % 256, (ids * 47 + 120) % 256], -1)
    rgb[ids == 0] = 0
    return rgb.astype(np.uint8)


def _draw_labels(im: Image.Image, objects: dict, scale: float) -> None:
    """Each labelled object's box and id on the RGB thumbnail (what a detector trains on)."""
    draw = ImageDraw.Draw(im)
    for obj in objects.values():
        if not obj.get("bbox"):
            continue
        x, y, w, h = (v * scale for v in obj["bbox"])
        i = obj["id"]
        colour = ((i * 97) % 256, (i * 181 + 60) % 256, (i * 47 + 120) % 256)
        draw.rectangle([x, y, x + max(w - 1, 0), y + max(h - 1, 0)], outline=colour)
        draw.text((x + 1, y + 1), str(i), fill=colour)


def contact_sheet(out, max_frames: int = C.CONTACT_SHEET_MAX_FRAMES,
                  storage_options: dict | None = None) -> str | None:
    """A grid of an evenly spaced sample of the frames, in manifest order. Each cell shows
    every pass the dataset holds side by side (RGB, depth, instance mask), under a title
    line that names them; with labels, the RGB shows each object's box and id. Returns
    where it was written (None without frames)."""
    loc = as_location(out, storage_options)
    lines = read_manifest(loc)
    if not lines:
        return None
    reader = FrameReader(loc)
    step = max(1, math.ceil(len(lines) / max_frames))
    sample = lines[::step][:max_frames]
    kinds = [k for k in SUFFIXES if k in sample[0]["files"]]
    tw = CONTACT_SHEET_THUMB_WIDTH
    cells = []
    for line in sample:
        parts = [_thumbnail(kind, reader.load(line, kind), tw)
                 for kind in kinds if kind in line["files"]]
        if line.get("objects"):
            _draw_labels(parts[0], line["objects"], tw / line["camera"]["width"])
        cell = Image.new("RGB", (tw * len(kinds), max(p.height for p in parts)), (24, 24, 24))
        for i, part in enumerate(parts):
            cell.paste(part, (i * tw, 0))
        cells.append(cell)
    cols = math.ceil(math.sqrt(len(cells) * (1 if len(kinds) == 1 else 0.5)))
    rows = math.ceil(len(cells) / cols)
    cw, ch = cells[0].width + CONTACT_SHEET_GAP, max(c.height for c in cells) + CONTACT_SHEET_GAP
    title = CONTACT_SHEET_TITLE_HEIGHT
    sheet = Image.new("RGB", (cols * cw, rows * ch + title), (24, 24, 24))
    ImageDraw.Draw(sheet).text((4, 4), f"{len(lines)} frames; passes per cell: "
                               f"{', '.join(PASS_NAMES[k] for k in kinds)}"
                               f"{' (depth: near bright)' if 'depth' in kinds else ''}",
                               fill=(230, 230, 230))
    for i, cell in enumerate(cells):
        sheet.paste(cell, ((i % cols) * cw, (i // cols) * ch + title))
    buf = io.BytesIO()
    sheet.save(buf, format="PNG")
    loc.write(CONTACT_SHEET, buf.getvalue())
    return f"{loc.url}/{CONTACT_SHEET}"
