"""Optical flow between two frames of one scene, computed exactly from what raycollect drew.

`rc.flow(a, b)`: for every pixel of frame `a` that shows a labelled thing, where the same
point of that thing's surface lands in frame `b`. The point is `a`'s object coordinates at the
pixel (coords=True: its place in the frame of the thing its mask id names), carried into the
world by that thing's pose in `b` (its element pose, or with masks="links" its URDF link's)
and projected with `b`'s camera. So a camera move, a moved object and a robot's joints all
give their flow, with no estimate involved. A pixel is valid (still visible) when its point
lands inside `b`'s image, in front of its camera, on a pixel of `b` that shows the same thing
and, when `b` has depth, at that pixel's depth (within DEPTH_TOLERANCE): otherwise something
hides it in `b` (another object, or another part of itself).

Flow is in pixels, x right and y down: the point's projection in `b` less its projection in
`a` (within a hundredth of a pixel of the pixel's centre: the rasteriser interpolates the
coordinates there in float32; measuring from the point itself, still geometry under a still
camera flows exactly 0). It is given for every pixel that shows a labelled thing, hidden in
`b` or not (`valid` says); 0 elsewhere.
"""

from __future__ import annotations

import numpy as np

from .labels import LINK_SEPARATOR

# How far a point's depth in b may be from b's depth at the pixel it lands on and still be
# the surface b shows there: the landing pixel's centre is up to half a pixel from the point,
# so a slanted surface's depth differs by its slope times that.
DEPTH_TOLERANCE_M = 0.005
DEPTH_TOLERANCE_REL = 0.01
POSE_TOLERANCE = 1e-6


def _get(frame, name: str):
    value = frame.get(name) if isinstance(frame, dict) else getattr(frame, name, None)
    return value


def _poses(frame) -> dict[int, np.ndarray]:
    """{id: 4x4 pose of the frame its coordinates are in} of a frame's labels."""
    out = {}
    for obj in (_get(frame, "objects") or {}).values():
        if obj.get("pose") is not None:
            out[int(obj["id"])] = np.asarray(obj["pose"], dtype=np.float64)
    return out


def _check_links(a, b) -> None:
    """A robot labelled as one thing has its coordinates in its root's frame: its links'
    own motion between the frames cannot be followed then."""
    ia = _get(a, "instances") or {}
    ob = _get(b, "objects") or {}
    for key, obj in (_get(a, "objects") or {}).items():
        links = obj.get("links")
        if not links or LINK_SEPARATOR in key or key not in ob:
            continue
        if any(f"{key}{LINK_SEPARATOR}{name}" in ia for name in links):
            continue  # masks="links": each link is followed on its own
        pa, pb = np.asarray(obj["pose"]), np.asarray(ob[key]["pose"])
        for name, la in links.items():
            lb = (ob[key].get("links") or {}).get(name)
            if lb is None:
                continue
            ra = np.linalg.solve(pa, np.asarray(la))
            rb = np.linalg.solve(pb, np.asarray(lb))
            if not np.allclose(ra, rb, atol=POSE_TOLERANCE):
                raise ValueError(f"robot {key!r} moved its joints between the frames: render "
                                 f"with masks='links' so each link's pixels follow that link")


def _project(world: np.ndarray, camera: dict) -> tuple:
    """Homogeneous world points (N x 4) to (u, v, z-depth) through a raycollect camera."""
    cam = world @ np.linalg.inv(np.asarray(camera["matrix"], dtype=np.float64)).T
    K = np.asarray(camera["K"], dtype=np.float64)
    z = -cam[:, 2]  # the camera looks down its -Z
    zs = np.where(z > 0, z, 1.0)
    return K[0, 0] * cam[:, 0] / zs + K[0, 2], K[1, 2] - K[1, 1] * cam[:, 1] / zs, z


def flow(a, b) -> tuple[np.ndarray, np.ndarray]:
    """Forward flow from frame `a` to frame `b` (Results, or rc.read rows) of one scene:
    (H x W x 2 float32 pixels, x right and y down; H x W bool, a's pixels still visible in
    b). `a` needs coords and masks; `b` needs masks (and depth, for occlusion within a
    thing). Raises ValueError naming what is missing."""
    coords, mask = _get(a, "coords"), _get(a, "mask")
    if coords is None or mask is None:
        raise ValueError("rc.flow needs frame a's coords and mask: render with coords=True "
                         "and masks=True")
    mask_b, depth_b = _get(b, "mask"), _get(b, "depth")
    if mask_b is None:
        raise ValueError("rc.flow needs frame b's mask: render with masks=True")
    cam_b = _get(b, "camera")
    _check_links(a, b)
    h, w = mask.shape
    hb, wb = mask_b.shape
    poses = _poses(b)
    out = np.zeros((h, w, 2), np.float32)
    valid = np.zeros((h, w), bool)
    v, u = np.nonzero(mask)
    ids = mask[v, u].astype(np.int64)
    known = np.array([i in poses for i in ids], bool) if ids.size else np.zeros(0, bool)
    v, u, ids = v[known], u[known], ids[known]
    if ids.size == 0:
        return out, valid
    local = np.c_[coords[v, u].astype(np.float64), np.ones(len(ids))]
    world = np.empty((len(ids), 4))
    for i in np.unique(ids):
        sel = ids == i
        world[sel] = local[sel] @ poses[int(i)].T
    ub, vb, z = _project(world, cam_b)
    front = z > 0
    # Where a's own camera saw the point: the poses of a that put it in the world.
    world_a = np.empty_like(world)
    poses_a = _poses(a)
    for i in np.unique(ids):
        sel = ids == i
        world_a[sel] = local[sel] @ poses_a.get(int(i), poses[int(i)]).T
    ua, va, _ = _project(world_a, _get(a, "camera"))
    out[v, u, 0] = ub - ua
    out[v, u, 1] = vb - va
    iu, iv = np.floor(ub).astype(np.int64), np.floor(vb).astype(np.int64)
    inside = front & (iu >= 0) & (iu < wb) & (iv >= 0) & (iv < hb)
    ok = inside.copy()
    iu_c, iv_c = np.clip(iu, 0, wb - 1), np.clip(iv, 0, hb - 1)
    ok &= mask_b[iv_c, iu_c] == ids
    if depth_b is not None:
        d = depth_b[iv_c, iu_c].astype(np.float64)
        ok &= np.abs(d - z) <= DEPTH_TOLERANCE_M + DEPTH_TOLERANCE_REL * z
    valid[v, u] = ok
    return out, valid
