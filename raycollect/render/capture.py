"""The frames a page sends back, decoded: raw RGB, metric depth, instance ids, normals,
object coordinates and amodal silhouettes.

Every render worker's page runs the capture script (capture_js/ in this folder), which
answers each grab with this payload instead of the client's JPEG:

    b"RCF1" | uint32 LE n | n bytes of JSON header | the header's blocks, in order

The header holds `w`, `h`, `passes` (the image passes: "rgb" first, then those the page was
asked for), `blocks` (what follows the header: {name, type, bytes}, and for packed
silhouettes w, h and ids), `status` (the page's asset loads and uncaught errors), `page` (how
the frame was made and the page's time for it) and, when capturing failed, `error`. Image
blocks come from `readPixels`, so their rows run bottom-up. The header is padded with
spaces so the blocks start at a multiple of 4 bytes.

- rgb ("u8x3"): the pixels the client drew for the view, untouched (no encoder on the way).
- depth_id ("d24i8", 4 bytes a pixel): z-depth (distance to the image plane along the
  viewing axis) as 24-bit fixed point of z / far in R, G, B (least significant first), and
  in A the low byte of the instance id; 0 where nothing was drawn. Resolution is far / 2^24:
  1.2 um for far = 20 m, 6 um for far = 100 m. The page draws every pass in one render:
  this block holds the depth and, for a frame whose ids are all below 256, the mask.
- depth ("u8x3"): the same 24 bits most significant first, from a separate depth pass (a
  scene the one render cannot take).
- mask ("u8x3"): the instance id of the top-level scene element (or, with masks="links", the
  URDF link) each pixel shows, as 24 bits in R, G, B (least significant first); 0 where
  none. Sent when a frame has ids above 255, or from a separate pass.
- normals ("f32x3"): the unit shading normal in the camera frame (x right, y up, z towards
  the viewer), float32; 0 where nothing was drawn.
- coords ("f32x3"): where the surface is in the frame of the thing its id names (the
  element's own object, or with masks="links" the URDF link), float32, model units; 0 where
  nothing was drawn.
- amodal / amodal_outer ("bits"): silhouettes of the listed ids as if nothing hid them,
  packed by the page: ceil(n / 4) planes of `rows` rows (bottom-up, from GL row `y`) of
  `cols` RGBA pixels (from byte column `x8`): the part of the w x h canvas the ids' meshes
  can reach; channel c of plane a for id a * 4 + c, bit b of byte x for pixel x * 8 + b. "amodal" is
  the image; "amodal_outer" the ids whose silhouette reaches the border, on a canvas three
  times the image's size with the image in its middle.

With the mask pass the header also has `objects`: the world matrix of every element with an
id, and of every link of a URDF robot, as the page rendered them.
"""

from __future__ import annotations

import json
import struct
from dataclasses import dataclass, field

import numpy as np

from ..errors import RenderError
from ..crop import Crop

MAGIC = b"RCF1"
DEPTH_LEVELS = (1 << 24) - 1
UPLOAD_STUB_MAX = 512  # an answer naming an upload is a header of a few dozen bytes


@dataclass
class Capture:
    width: int
    height: int
    rgb: np.ndarray | None = None  # H x W x 3 uint8
    depth: np.ndarray | None = None  # H x W float32, metres; needs `far` to decode
    mask: np.ndarray | None = None  # H x W uint32 instance ids
    normals: np.ndarray | None = None  # H x W x 3 float32, camera frame
    coords: np.ndarray | None = None  # H x W x 3 float32, the frame of each pixel's id
    # {id: Crop}: silhouettes in the image, and on the 3x canvas for those the image's
    # border cuts (raycollect/labels.py turns them into counts and boxes)
    amodal: dict = field(default_factory=dict)
    amodal_outer: dict = field(default_factory=dict)
    status: dict = field(default_factory=dict)
    # What the page rendered, by element key: {"pose": 16 numbers column-major, "links":
    # {name: 16 numbers}} in the user's world (with the mask pass; raycollect/labels.py).
    objects: dict | None = None
    # Which job of its update the frame shows, when the update carried per-job joint values
    # (capture_js/view_state.js); None otherwise.
    state: int | None = None
    # How the page made the frame: {"mode": "mrt" (every pass in one render) or "separate"
    # (a render per pass; "why" says what in the scene needed it), "draw_ms", "read_ms"}.
    page: dict = field(default_factory=dict)

    @property
    def page_ms(self) -> float:
        """The page's own time for the frame: drawing and reading back every pass."""
        return float(self.page.get("draw_ms", 0.0)) + float(self.page.get("read_ms", 0.0))


def upload_key(data: bytes) -> str | None:
    """The key of the payload the page POSTed instead (capture_js/grab.js), when `data` is
    the small answer that names it; None for a payload that is the frame itself."""
    if len(data) > UPLOAD_STUB_MAX or data[:4] != MAGIC:
        return None
    (n,) = struct.unpack_from("<I", data, 4)
    return json.loads(data[8:8 + n]).get("upload")


def unpack_bits(block: dict, data) -> dict[int, Crop]:
    """A packed silhouette block as {id: Crop, rows top-down} (see the docstring). The block
    covers the part of the canvas its meshes can reach: `rows` rows from GL row `y` (rows
    count bottom-up there) of `cols` bytes from byte column `x8`; the whole canvas when
    those are absent. Only each id's box is unpacked: its rows and bytes are found on the
    packed plane, an eighth of the pixels."""
    w, h, ids = int(block["w"]), int(block["h"]), [int(i) for i in block["ids"]]
    x8, y0 = int(block.get("x8", 0)), int(block.get("y", 0))
    cols, rows = int(block.get("cols", -(-w // 8))), int(block.get("rows", h))
    empty = Crop.of(np.zeros((0, 0), bool))
    if not cols or not rows:
        return {i: empty for i in ids}
    planes = np.frombuffer(data, dtype=np.uint8).reshape(-1, rows, cols, 4)
    out = {}
    for j, i in enumerate(ids):
        plane = planes[j // 4, :, :, j % 4]  # rows bottom-up, as WebGL reads them
        hit = np.flatnonzero(plane.any(axis=1))
        if hit.size == 0:
            out[i] = empty
            continue
        r0, r1 = int(hit[0]), int(hit[-1]) + 1
        used = np.flatnonzero(plane[r0:r1].any(axis=0))
        c0, c1 = int(used[0]), int(used[-1]) + 1
        bits = np.unpackbits(plane[r0:r1, c0:c1], axis=1, bitorder="little")[::-1]
        x = 8 * (x8 + c0)
        bits = bits[:, :max(0, w - x)].astype(bool)  # the last byte's padding
        out[i] = Crop.of(bits, x, h - (y0 + r1))
    return out


def decode(data: bytes, far: float | None = None) -> Capture:
    """Decode a payload; raises RenderError if it is not one or the page reports an error."""
    if len(data) < 8 or data[:4] != MAGIC:
        raise RenderError("the page answered with a frame raycollect's capture script did not "
                          "make (is the Vuer client newer than the range raycollect supports?)")
    (n,) = struct.unpack_from("<I", data, 4)
    header = json.loads(data[8:8 + n])
    if header.get("error"):
        raise RenderError(header["error"])
    w, h = int(header["w"]), int(header["h"])
    body = memoryview(data)[8 + n:]
    blocks = header.get("blocks", [])
    if len(body) != sum(int(b["bytes"]) for b in blocks):
        raise RenderError(f"capture payload has {len(body)} bytes for blocks of "
                          f"{sum(int(b['bytes']) for b in blocks)}")
    cap = Capture(w, h, status=header.get("status") or {}, objects=header.get("objects"),
                  state=header.get("state"), page=header.get("page") or {})
    passes = header.get("passes", ())
    mask_block = any(b["name"] == "mask" for b in blocks)
    at = 0
    for block in blocks:
        size = int(block["bytes"])
        chunk, at = body[at:at + size], at + size
        name, kind = block["name"], block["type"]
        if kind == "bits":
            target = cap.amodal if name == "amodal" else cap.amodal_outer
            target.update(unpack_bits(block, chunk))
            continue
        if kind == "d24i8":
            v = np.frombuffer(chunk, dtype="<u4").reshape(h, w)[::-1]
            if "depth" in passes:
                cap.depth = _depth(v & 0xFFFFFF, far)
            if "mask" in passes and not mask_block:
                cap.mask = v >> 24
            continue
        dtype = np.float32 if kind == "f32x3" else np.uint8
        px = np.frombuffer(chunk, dtype=dtype).reshape(h, w, 3)[::-1]
        if name == "rgb":
            cap.rgb = np.ascontiguousarray(px)
        elif name == "depth":
            q = (px[..., 0].astype(np.uint32) << 16) | (px[..., 1].astype(np.uint32) << 8) \
                | px[..., 2].astype(np.uint32)
            cap.depth = _depth(q, far)
        elif name == "mask":
            cap.mask = px[..., 0].astype(np.uint32) | (px[..., 1].astype(np.uint32) << 8) \
                | (px[..., 2].astype(np.uint32) << 16)
        elif name in ("normals", "coords"):
            setattr(cap, name, np.ascontiguousarray(px))
    return cap


def _depth(q: np.ndarray, far: float | None) -> np.ndarray:
    """24-bit fixed-point depth as metres."""
    if far is None:
        raise RenderError("a depth pass needs the camera's far plane to decode")
    return (q.astype(np.float64) * (far / DEPTH_LEVELS)).astype(np.float32)
