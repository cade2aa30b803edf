"""The BOP toolkit's maths, written here independently of raycollect (the toolkit is not on
PyPI): read a model PLY, compute models_info, rasterise a model in a ground-truth pose, and
the toolkit's 2D boxes. Tests check raycollect's BOP export against these
(tests/unit/test_bop.py; an end-to-end test compares `rasterise` with a real render).

Conventions are the toolkit's: models in mm, cam_K in pixels with pixel (x, y) covering
[x, x+1) x [y, y+1) (its centre at +0.5), x = fx * X / Z + cx, y = fy * Y / Z + cy in the
OpenCV camera frame (X right, Y down, Z forward); boxes [x, y, max x - x, max y - y].
"""

from __future__ import annotations

import json
import struct
from pathlib import Path

import numpy as np

# The PLY types a model may use, as struct formats and sizes.
_PLY_TYPES = {"char": "b", "uchar": "B", "int8": "b", "uint8": "B", "short": "h",
              "ushort": "H", "int16": "h", "uint16": "H", "int": "i", "uint": "I",
              "int32": "i", "uint32": "I", "float": "f", "float32": "f", "double": "d",
              "float64": "d"}
CANVAS = 3  # calc_gt_info renders on a canvas 3x the image, the image in its middle


def load_ply(path) -> dict:
    """{'pts': N x 3, 'normals': N x 3 or None, 'faces': M x 3} of an ASCII or binary
    little-endian PLY (triangles only, as the toolkit's inout.load_ply)."""
    data = Path(path).read_bytes()
    end = data.index(b"end_header\n") + len(b"end_header\n")
    header = data[:end].decode("ascii").splitlines()
    if header[0] != "ply":
        raise ValueError(f"{path}: not a PLY")
    fmt = header[1].split()[1]
    elements, current = [], None
    for line in header[2:]:
        parts = line.split()
        if parts[0] == "element":
            current = {"name": parts[1], "count": int(parts[2]), "props": []}
            elements.append(current)
        elif parts[0] == "property":
            current["props"].append(("list", parts[2], parts[3], parts[4]) if parts[1] == "list"
                                    else ("scalar", parts[1], parts[2]))
    out = {}
    if fmt == "ascii":
        tokens = data[end:].decode("ascii").split()
        pos = 0

        def read(kind):
            nonlocal pos
            pos += 1
            return float(tokens[pos - 1]) if _PLY_TYPES[kind] in "fd" else int(tokens[pos - 1])
    elif fmt == "binary_little_endian":
        pos = end

        def read(kind):
            nonlocal pos
            f = "<" + _PLY_TYPES[kind]
            (value,) = struct.unpack_from(f, data, pos)
            pos += struct.calcsize(f)
            return value
    else:
        raise ValueError(f"{path}: format {fmt} not read here")
    for el in elements:
        rows = []
        for _ in range(el["count"]):
            row = {}
            for prop in el["props"]:
                if prop[0] == "list":
                    n = read(prop[1])
                    row[prop[3]] = [read(prop[2]) for _ in range(n)]
                else:
                    row[prop[2]] = read(prop[1])
            rows.append(row)
        out[el["name"]] = rows
    verts = out.get("vertex", [])
    pts = np.array([[r["x"], r["y"], r["z"]] for r in verts], dtype=np.float64)
    normals = (np.array([[r["nx"], r["ny"], r["nz"]] for r in verts], dtype=np.float64)
               if verts and "nx" in verts[0] else None)
    faces = []
    for r in out.get("face", []):
        idx = r.get("vertex_indices", r.get("vertex_index"))
        if len(idx) != 3:
            raise ValueError(f"{path}: only triangles are supported (the toolkit's rule)")
        faces.append(idx)
    return {"pts": pts, "normals": normals, "faces": np.array(faces, dtype=np.int64).reshape(-1, 3)}


def model_info(pts: np.ndarray) -> dict:
    """calc_model_info: the box of the vertices and the largest distance between two of
    them, by brute force over every pair."""
    lo, hi = pts.min(axis=0), pts.max(axis=0)
    best = 0.0
    for i in range(len(pts)):
        best = max(best, float(np.sqrt(((pts[i] - pts[i:]) ** 2).sum(axis=1)).max()))
    return {"diameter": best, "min_x": lo[0], "min_y": lo[1], "min_z": lo[2],
            "size_x": hi[0] - lo[0], "size_y": hi[1] - lo[1], "size_z": hi[2] - lo[2]}


def project(pts: np.ndarray, K, R, t) -> np.ndarray:
    """Model points (mm) to pixel coordinates (x, y) and depth Z, N x 3."""
    K, R = np.reshape(K, (3, 3)), np.reshape(R, (3, 3))
    cam = np.asarray(pts, dtype=np.float64) @ R.T + np.reshape(t, 3)
    if (cam[:, 2] <= 0).any():
        raise ValueError("a vertex is behind the camera: this rasteriser does not clip")
    return np.column_stack([K[0, 0] * cam[:, 0] / cam[:, 2] + K[0, 2],
                            K[1, 1] * cam[:, 1] / cam[:, 2] + K[1, 2], cam[:, 2]])


def rasterise_xy(xy: np.ndarray, faces: np.ndarray, width: int, height: int) -> np.ndarray:
    """Which pixel centres (+0.5) lie inside any triangle of 2D points (either winding,
    edges included): a bool height x width silhouette."""
    out = np.zeros((height, width), bool)
    for tri in xy[faces]:
        (x0, y0), (x1, y1), (x2, y2) = tri
        area = (x1 - x0) * (y2 - y0) - (x2 - x0) * (y1 - y0)
        if area == 0:
            continue
        lo_x = max(int(np.floor(tri[:, 0].min() - 0.5)), 0)
        hi_x = min(int(np.ceil(tri[:, 0].max() - 0.5)), width - 1)
        lo_y = max(int(np.floor(tri[:, 1].min() - 0.5)), 0)
        hi_y = min(int(np.ceil(tri[:, 1].max() - 0.5)), height - 1)
        if lo_x > hi_x or lo_y > hi_y:
            continue
        px, py = np.meshgrid(np.arange(lo_x, hi_x + 1) + 0.5, np.arange(lo_y, hi_y + 1) + 0.5)
        w0 = (x1 - px) * (y2 - py) - (x2 - px) * (y1 - py)
        w1 = (x2 - px) * (y0 - py) - (x0 - px) * (y2 - py)
        w2 = (x0 - px) * (y1 - py) - (x1 - px) * (y0 - py)
        s = np.sign(area)
        inside = (w0 * s >= 0) & (w1 * s >= 0) & (w2 * s >= 0)
        out[lo_y:hi_y + 1, lo_x:hi_x + 1] |= inside
    return out


def rasterise(pts: np.ndarray, faces: np.ndarray, K, R, t, width: int, height: int,
              canvas: int = 1) -> np.ndarray:
    """The silhouette of a model (mm) in pose (R, t) seen with K; with canvas=3, on
    calc_gt_info's canvas: 3 x the image's size, the image in its middle."""
    p = project(pts, K, R, t)
    shift = (canvas - 1) // 2
    xy = p[:, :2] + [shift * width, shift * height]
    return rasterise_xy(xy, faces, canvas * width, canvas * height)


def edge_distance(xy: np.ndarray, faces: np.ndarray, pixels: np.ndarray) -> np.ndarray:
    """The distance of each pixel centre (N x 2, x y) to the nearest projected edge."""
    edges = np.concatenate([faces[:, [0, 1]], faces[:, [1, 2]], faces[:, [2, 0]]])
    a, b = xy[edges[:, 0]], xy[edges[:, 1]]
    out = []
    for c in pixels + 0.5:
        t = np.clip(np.sum((c - a) * (b - a), 1) / np.maximum(np.sum((b - a) ** 2, 1), 1e-12), 0, 1)
        out.append(np.linalg.norm(a + t[:, None] * (b - a) - c, axis=1).min())
    return np.asarray(out)


def calc_2d_bbox(hit: np.ndarray, offset=(0, 0)) -> list[int]:
    """The toolkit's box of a mask's pixels, shifted by -offset (x, y)."""
    ys, xs = np.nonzero(hit)
    xs, ys = xs - offset[0], ys - offset[1]
    return [int(xs.min()), int(ys.min()), int(xs.max() - xs.min()), int(ys.max() - ys.min())]


def load_json_int_keys(path) -> dict:
    """inout.load_json(keys_to_int=True): every key that is an integer becomes one."""
    def hook(d):
        return {int(k) if k.lstrip("-").isdigit() else k: v for k, v in d.items()}

    return json.loads(Path(path).read_text(), object_hook=hook)
