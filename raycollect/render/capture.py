"""The frames a page sends back, decoded: raw RGB, metric depth and instance ids.

Every render worker's page runs `capture.js` (this folder), which answers each grab with
this payload instead of the client's JPEG:

    b"RCF1" | uint32 LE n | n bytes of JSON header | one H*W*3 RGB buffer per pass

The header holds `w`, `h`, `passes` (the order of the buffers: "rgb" first, then "depth"
and/or "mask" when the page was asked for them), `status` (the page's asset loads and
uncaught errors), `channels` (3: bytes per pixel of every buffer), `page` (how the frame was made and the page's time for it) and, when
capturing failed, `error`. Buffers come from `readPixels`, so
their rows run bottom-up.

- rgb: the pixels the client drew for the view, untouched (no encoder on the way).
- depth: z-depth (distance to the image plane along the viewing axis) as 24-bit fixed point
  of z / far in R, G, B (most significant first); 0 where nothing was drawn. Resolution is
  far / 2^24: 1.2 um for far = 20 m, 6 um for far = 100 m.
- mask: the instance id of the top-level scene element (or, with masks="links", the URDF
  link) each pixel shows, as 24 bits in R, G, B (least significant first); 0 where none.

With the mask pass the header also has `objects`: the world matrix of every element with an
id, and of every link of a URDF robot, as the page rendered them.
"""

from __future__ import annotations

import json
import struct
from dataclasses import dataclass, field

import numpy as np

from ..errors import RenderError

MAGIC = b"RCF1"
DEPTH_LEVELS = (1 << 24) - 1


@dataclass
class Capture:
    width: int
    height: int
    rgb: np.ndarray | None = None  # H x W x 3 uint8
    depth: np.ndarray | None = None  # H x W float32, metres; needs `far` to decode
    mask: np.ndarray | None = None  # H x W uint32 instance ids
    status: dict = field(default_factory=dict)
    # What the page rendered, by element key: {"pose": 16 numbers column-major, "links":
    # {name: 16 numbers}} in the user's world (with the mask pass; raycollect/labels.py).
    objects: dict | None = None
    # Which job of its update the frame shows, when the update carried per-job joint values
    # (capture.js, "per-view state"); None otherwise.
    state: int | None = None
    # How the page made the frame: {"mode": "mrt" (every pass in one render) or "separate"
    # (a render per pass; "why" says what in the scene needed it), "draw_ms", "read_ms"}.
    page: dict = field(default_factory=dict)

    @property
    def page_ms(self) -> float:
        """The page's own time for the frame: drawing and reading back every pass."""
        return float(self.page.get("draw_ms", 0.0)) + float(self.page.get("read_ms", 0.0))


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
    channels = int(header.get("channels", 4))
    size = w * h * channels
    body = memoryview(data)[8 + n:]
    passes = header.get("passes", [])
    if len(body) != size * len(passes):
        raise RenderError(f"capture payload has {len(body)} bytes for {len(passes)} passes "
                          f"of {w}x{h}")
    cap = Capture(w, h, status=header.get("status") or {}, objects=header.get("objects"),
                  state=header.get("state"), page=header.get("page") or {})
    for i, name in enumerate(passes):
        rgba = np.frombuffer(body[i * size:(i + 1) * size], dtype=np.uint8).reshape(h, w, channels)[::-1]
        if name == "rgb":
            cap.rgb = np.ascontiguousarray(rgba[..., :3])
        elif name == "depth":
            q = (rgba[..., 0].astype(np.uint32) << 16) | (rgba[..., 1].astype(np.uint32) << 8) \
                | rgba[..., 2].astype(np.uint32)
            if far is None:
                raise RenderError("a depth pass needs the camera's far plane to decode")
            cap.depth = (q.astype(np.float64) * (far / DEPTH_LEVELS)).astype(np.float32)
        elif name == "mask":
            cap.mask = rgba[..., 0].astype(np.uint32) | (rgba[..., 1].astype(np.uint32) << 8) \
                | (rgba[..., 2].astype(np.uint32) << 16)
    return cap
