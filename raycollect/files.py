"""A frame's files: their names, and how they are encoded (on the render worker) and read back.

    frames/<job_id>.png          RGB, 8 bits per channel, exactly the pixels the browser drew
    frames/<job_id>.depth.npy    float32 H x W, metres of z-depth, 0 where nothing was hit
    frames/<job_id>.mask.png     16-bit greyscale H x W, instance id per pixel, 0 where none

Workers encode, so the driver only writes bytes and the cost of encoding grows with the
cluster instead of limiting it.
"""

from __future__ import annotations

from io import BytesIO

import numpy as np
from PIL import Image

from . import constants as C

SUFFIXES = {"image": ".png", "depth": ".depth.npy", "mask": ".mask.png"}
PASS_NAMES = {"image": "rgb", "depth": "depth", "mask": "mask"}  # what users call each kind


def encode_image(rgb: np.ndarray) -> bytes:
    buf = BytesIO()
    Image.fromarray(rgb, "RGB").save(buf, format="PNG", compress_level=C.PNG_COMPRESS_LEVEL)
    return buf.getvalue()


def encode_depth(depth: np.ndarray) -> bytes:
    buf = BytesIO()
    np.save(buf, np.ascontiguousarray(depth, dtype=np.float32), allow_pickle=False)
    return buf.getvalue()


def encode_mask(ids: np.ndarray) -> bytes:
    if ids.size and int(ids.max()) > C.MAX_INSTANCES:
        raise ValueError(f"instance id {int(ids.max())} does not fit a 16-bit mask")
    buf = BytesIO()
    Image.fromarray(ids.astype(np.uint16)).save(buf, format="PNG",
                                                compress_level=C.PNG_COMPRESS_LEVEL)
    return buf.getvalue()


def decode(kind: str, data: bytes) -> np.ndarray:
    """The array a file holds: image HxWx3 uint8, depth HxW float32, mask HxW uint16."""
    if kind == "depth":
        return np.load(BytesIO(data), allow_pickle=False)
    with Image.open(BytesIO(data)) as im:
        return np.asarray(im.convert("RGB")) if kind == "image" else np.asarray(im).astype(np.uint16)


def load(path, kind: str) -> np.ndarray:
    with open(path, "rb") as f:
        return decode(kind, f.read())
