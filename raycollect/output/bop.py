"""`raycollect export OUT --format bop`: OUT/bop/000000/, the BOP-scenewise layout.

    rgb/{im:06d}.png                 the frames as rendered
    depth/{im:06d}.png               uint16; depth in mm = value * depth_scale
    mask_visib/{im:06d}_{k:06d}.png  255 where object k of the image is seen
    scene_camera.json                {im: {cam_K, depth_scale, cam_R_w2c, cam_t_w2c}}
    scene_gt.json                    {im: [{obj_id, cam_R_m2c, cam_t_m2c}, ...]}
    scene_gt_info.json               {im: [{bbox_visib, px_count_visib}, ...]}

`im` is the frame's index in manifest.jsonl; `obj_id` is the element's instance id; k runs
over the frame's labelled objects in the order of scene_gt. Poses use BOP's (OpenCV) camera
axes, x right, y down, z forward, and millimetres. R is a rotation: an element's scale stays
in its model (the scale is taken out of the element-to-world matrix by polar decomposition).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from ..errors import RaycollectError
from .files import png_bytes
from .manifest import finished

BOP_DIR = "bop/000000"
MM_PER_M = 1000.0
UINT16_MAX = 65535
# Finest first: the depth scale of an image is the finest at which its farthest pixel fits.
DEPTH_SCALES = (0.1, 1.0, 10.0, 100.0)
GL_TO_CV = np.diag([1.0, -1.0, -1.0, 1.0])  # OpenGL camera axes to OpenCV's (and back)


def world_to_camera(c2w_gl) -> np.ndarray:
    """The 4x4 world-to-camera matrix in OpenCV axes, metres, of a camera-to-world matrix in
    raycollect's (OpenGL) convention."""
    return np.linalg.inv(np.asarray(c2w_gl, dtype=np.float64) @ GL_TO_CV)


def rotation(m: np.ndarray) -> np.ndarray:
    """The rotation of a 3x3 matrix that may hold a scale (its polar decomposition)."""
    u, _, vt = np.linalg.svd(m)
    r = u @ vt
    if np.linalg.det(r) < 0:
        u[:, -1] *= -1
        r = u @ vt
    return r


def depth_scale(depth_m: np.ndarray) -> float:
    far_mm = float(depth_m.max()) * MM_PER_M if depth_m.size else 0.0
    for s in DEPTH_SCALES:
        if far_mm / s <= UINT16_MAX:
            return s
    return DEPTH_SCALES[-1]


def bop(out: str | Path, storage_options: dict | None = None) -> str:
    loc, reader, lines = finished(out, storage_options)
    if any(k not in m["files"] for m in lines for k in ("mask", "depth")) or \
            any("objects" not in m for m in lines):
        raise RaycollectError(f"{out}: the bop export needs depth, masks and labels: render "
                              f"with depth=True, masks=True (raycollect run --depth --masks)")
    scene = BOP_DIR
    cameras, gts, infos = {}, {}, {}
    for im, m in enumerate(lines):
        cam = m["camera"]
        image = m["files"]["image"]
        if image.endswith(".png") and not m.get("shard"):
            loc.write(f"{scene}/rgb/{im:06d}.png", reader.bytes(m, "image"))
        else:  # image_format webp or npy, or a shard's member: BOP's rgb/ holds PNG files
            loc.write(f"{scene}/rgb/{im:06d}.png", png_bytes(reader.load(m, "image")))
        depth = reader.load(m, "depth")
        scale = depth_scale(depth)
        loc.write(f"{scene}/depth/{im:06d}.png", png_bytes(
            np.clip(np.rint(depth.astype(np.float64) * MM_PER_M / scale), 0,
                    UINT16_MAX).astype(np.uint16)))
        w2c = world_to_camera(cam["matrix"])
        cameras[str(im)] = {"cam_K": np.asarray(cam["K"], dtype=float).ravel().tolist(),
                            "depth_scale": scale,
                            "cam_R_w2c": w2c[:3, :3].ravel().tolist(),
                            "cam_t_w2c": (w2c[:3, 3] * MM_PER_M).tolist()}
        mask = reader.load(m, "mask")
        gt, info = [], []
        objs = [o for o in m["objects"].values() if o.get("pose") is not None]
        for k, obj in enumerate(sorted(objs, key=lambda o: o["id"])):
            m2c = w2c @ np.asarray(obj["pose"], dtype=np.float64)
            gt.append({"obj_id": int(obj["id"]), "cam_R_m2c": rotation(m2c[:3, :3]).ravel().tolist(),
                       "cam_t_m2c": (m2c[:3, 3] * MM_PER_M).tolist()})
            info.append({"bbox_visib": obj["bbox"] or [-1, -1, -1, -1],
                         "px_count_visib": int(obj["px"])})
            loc.write(f"{scene}/mask_visib/{im:06d}_{k:06d}.png",
                      png_bytes(((mask == obj["id"]) * 255).astype(np.uint8)))
        gts[str(im)], infos[str(im)] = gt, info
    for name, doc in (("scene_camera.json", cameras), ("scene_gt.json", gts),
                      ("scene_gt_info.json", infos)):
        loc.write(f"{scene}/{name}", json.dumps(doc, indent=1).encode("utf-8"))
    return f"{loc.url}/{scene}"
