"""A frame's files: their names, and how they are encoded (on the render worker) and read back.

    frames/<job_id>.png          RGB, 8 bits per channel, exactly the pixels the browser drew
                                 (.webp or .npy with image_format="webp" / "npy")
    frames/<job_id>.depth.npy    float32 H x W, metres of z-depth, 0 where nothing was hit
    frames/<job_id>.mask.png     16-bit greyscale H x W, instance id per pixel, 0 where none
    frames/<job_id>.semantic.png 16-bit greyscale H x W, class id per pixel, 0 where none
    frames/<job_id>.normals.npy  float32 H x W x 3, unit normals in the camera frame
    frames/<job_id>.coords.npy   float32 H x W x 3, position in the frame of the pixel's id
    frames/<job_id>.amodal.npz   `ids` (uint32 n), `size` (H, W), `boxes` (n x 4: x, y, w, h)
                                 and `bits`: each id's whole silhouette cropped to its box,
                                 rows packed 8 pixels a byte (numpy's packbits, little bit
                                 order), the crops one after another

Workers encode, so the driver only writes bytes and the cost of encoding grows with the
cluster instead of limiting it. It still runs on the cores the browser renders with, so the
default image format is the cheapest PNG there is: rows filtered with PNG's "up" filter and
deflated at zlib's fastest level with its run-length strategy (written here with numpy and
zlib: PIL's encoder tries every filter on every row, which is most of its cost). Every
format is lossless. Readers tell the formats apart by their bytes, not by the name, so
every reader reads every format (`decode`).
"""

from __future__ import annotations

import struct
import zlib
from io import BytesIO

import numpy as np
from PIL import Image

from .. import constants as C
from ..crop import Crop

# zlib level of the default PNGs: the fastest. image_format="png-small"
# writes PIL's PNG at PIL's default level instead.
PNG_ZLIB_LEVEL = 1
PNG_SMALL_LEVEL = 6

# The suffix of each kind of file, for the default formats; `suffix` names the others.
SUFFIXES = {"image": ".png", "depth": ".depth.npy", "mask": ".mask.png",
            "semantic": ".semantic.png", "normals": ".normals.npy", "coords": ".coords.npy",
            "amodal": ".amodal.npz"}
PASS_NAMES = {"image": "rgb", "depth": "depth", "mask": "mask", "semantic": "semantic",
              "normals": "normals", "coords": "coords", "amodal": "amodal"}  # users' names


# Depth images of the exports (nerfstudio's, BOP's) are 16-bit PNGs of millimetres.
MM_PER_M = 1000.0
UINT16_MAX = 65535
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
NPY_MAGIC = b"\x93NUMPY"
ZIP_MAGIC = b"PK\x03\x04"
PNG_FILTER_UP = 2
# PNG colour types: greyscale, RGB.
_PNG_GREY, _PNG_RGB = 0, 2


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def fast_png(pixels: np.ndarray) -> bytes:
    """A PNG of H x W x 3 uint8 (RGB) or H x W uint16 (greyscale, 16 bits) pixels: every
    row with the "up" filter (the difference to the row above, which turns a rendered
    scene's smooth areas into runs of zeros), deflated with zlib level 1 and Z_RLE."""
    if pixels.dtype == np.uint16:
        rows = pixels.astype(">u2").view(np.uint8).reshape(pixels.shape[0], -1)
        depth, colour = 16, _PNG_GREY
    else:
        rows = np.ascontiguousarray(pixels, dtype=np.uint8).reshape(pixels.shape[0], -1)
        depth, colour = 8, _PNG_RGB
    h, w = pixels.shape[:2]
    raw = np.empty((h, rows.shape[1] + 1), np.uint8)
    raw[:, 0] = PNG_FILTER_UP
    raw[0, 1:] = rows[0]
    np.subtract(rows[1:], rows[:-1], out=raw[1:, 1:])  # uint8 wraps, as the filter says
    z = zlib.compressobj(PNG_ZLIB_LEVEL, zlib.DEFLATED, 15, 9, zlib.Z_RLE)
    data = z.compress(raw.data) + z.flush()
    return (PNG_MAGIC + _chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, depth, colour, 0, 0, 0))
            + _chunk(b"IDAT", data) + _chunk(b"IEND", b""))


def encode_image(rgb: np.ndarray, fmt: str = "png") -> bytes:
    if fmt == "png":
        return fast_png(rgb)
    if fmt == "npy":
        return _npy(rgb)
    buf = BytesIO()
    if fmt == "png-small":
        Image.fromarray(rgb, "RGB").save(buf, format="PNG", compress_level=PNG_SMALL_LEVEL)
    elif fmt == "webp":
        Image.fromarray(rgb, "RGB").save(buf, format="WEBP", lossless=True, method=0, quality=0)
    else:
        raise ValueError(f"unknown image format {fmt!r} (one of: {', '.join(C.IMAGE_FORMATS)})")
    return buf.getvalue()


def _npy(array: np.ndarray) -> bytes:
    buf = BytesIO()
    np.save(buf, np.ascontiguousarray(array), allow_pickle=False)
    return buf.getvalue()


def encode_depth(depth: np.ndarray) -> bytes:
    return _npy(np.asarray(depth, dtype=np.float32))


def encode_mask(ids: np.ndarray) -> bytes:
    if ids.size and int(ids.max()) > C.MAX_INSTANCES:
        raise ValueError(f"instance id {int(ids.max())} does not fit a 16-bit mask")
    return fast_png(ids.astype(np.uint16))


def encode_amodal(masks: dict, size: tuple[int, int] | None = None) -> bytes:
    """{id: bool H x W, or a labels.Crop of a frame of `size` (H, W)} as an .npz: each
    silhouette cropped to its box (`boxes`: x, y, w, h per id) with its rows packed 8 pixels a
    byte (`bits`: every crop's bytes, one after another). An object costs an eighth of a byte
    a pixel of its box, and numpy alone reads it back."""
    ids = sorted(masks)
    crops = {i: m if isinstance(m, Crop) else Crop.of(np.asarray(m, bool)) for i, m in masks.items()}
    if size is None:
        first = next(iter(masks.values()), None)
        size = (0, 0) if first is None else np.shape(first)
    boxes, parts = [], []
    for i in ids:
        c = crops[i]
        if c.box is None:
            boxes.append((0, 0, 0, 0))
            continue
        boxes.append(tuple(c.box))
        parts.append(np.packbits(c.bits, axis=-1, bitorder="little").ravel())
    buf = BytesIO()
    np.savez(buf, ids=np.asarray(ids, dtype=np.uint32), size=np.asarray(size[:2]),
             boxes=np.asarray(boxes, dtype=np.int32).reshape(-1, 4),
             bits=np.concatenate(parts) if parts else np.zeros(0, np.uint8))
    return buf.getvalue()


def decode_amodal(data: bytes) -> dict[int, np.ndarray]:
    with np.load(BytesIO(data), allow_pickle=False) as z:
        h, w = (int(v) for v in z["size"])
        bits, at, out = z["bits"], 0, {}
        for i, (x, y, bw, bh) in zip(z["ids"], z["boxes"]):
            m = np.zeros((h, w), bool)
            if bw:
                n = bh * -(-bw // 8)
                crop = bits[at:at + n].reshape(bh, -1)
                m[y:y + bh, x:x + bw] = np.unpackbits(crop, axis=-1, bitorder="little")[:, :bw]
                at += n
            out[int(i)] = m
        return out


def encode(kind: str, array, config) -> bytes:
    """A pass's file as the run's Config asks for it."""
    if kind == "image":
        return encode_image(array, config.image_format)
    if kind in ("mask", "semantic"):
        return encode_mask(array)
    if kind == "amodal":  # (crops, (H, W)) from the worker, or {id: bool H x W}
        return encode_amodal(*array) if isinstance(array, tuple) else encode_amodal(array)
    return encode_depth(array) if kind == "depth" else _npy(np.asarray(array, dtype=np.float32))


def suffix(kind: str, data: bytes) -> str:
    """The file name suffix for a frame's encoded file of `kind`."""
    if kind != "image":
        return SUFFIXES[kind]
    if data[:6] == NPY_MAGIC:
        return C.IMAGE_FORMATS["npy"][0]
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return C.IMAGE_FORMATS["webp"][0]
    return SUFFIXES["image"]


def decode(kind: str, data: bytes) -> np.ndarray:
    """The array a file holds, whatever its format: image HxWx3 uint8, depth HxW float32,
    mask and semantic HxW uint16, normals and coords HxWx3 float32; amodal: {id: bool HxW}."""
    if data[:4] == ZIP_MAGIC:
        return decode_amodal(data)
    if data[:6] == NPY_MAGIC:
        return np.load(BytesIO(data), allow_pickle=False)
    with Image.open(BytesIO(data)) as im:
        return np.asarray(im.convert("RGB")) if kind == "image" else np.asarray(im).astype(np.uint16)


def depth_mm(depth: np.ndarray, scale: float = 1.0) -> np.ndarray:
    """Metres of depth as 16-bit values of `scale` millimetres each, as the exports' depth
    PNGs hold them: 0 stays 0 (no depth), beyond the range saturates."""
    return np.clip(np.rint(depth.astype(np.float64) * MM_PER_M / scale), 0,
                   UINT16_MAX).astype(np.uint16)


def png_bytes(array: np.ndarray) -> bytes:
    """Any 8- or 16-bit image array as PIL writes it (exports, the contact sheet)."""
    buf = BytesIO()
    Image.fromarray(array).save(buf, format="PNG")
    return buf.getvalue()


def load(path, kind: str) -> np.ndarray:
    with open(path, "rb") as f:
        return decode(kind, f.read())
