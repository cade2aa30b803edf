"""MuJoCo's own renderer (`mujoco.Renderer`) as the reference for MJCF worlds.

The same state, seen by the same raycollect camera, rendered by MuJoCo offscreen (on the CPU
here: `MUJOCO_GL=egl` with Mesa's llvmpipe, or `osmesa`): per pixel the body it shows (from
MuJoCo's segmentation, which gives geom ids) and its z-depth in metres. raycollect's masks,
depth and body poses are compared with it in tests/test_mujoco.py and scripts/sweep_mjcf.py.

What makes the comparison fair:
- edge pixels: `vis.quality.offsamples = 0` turns off multisampling, so every pixel holds
  one geom's id and depth (as raycollect's passes do);
- the camera: MuJoCo keeps two eye cameras (`scene.camera[0]` and `[1]`, `ipd` apart) and a
  mono render uses their average; both are set to the raycollect camera's pose and frustum
  here, so any camera (an MJCF one or an orbit) is rendered exactly;
- skins (`<skin>`, dm_control's dog) are no geom and belong to no body: a skin's pixels
  carry `model.nbody + skin id` (`skin_id`), as raycollect's carry the skin's own instance id;
  a site's (groups 0-2 are drawn) carry its body's id, or per geom `site_id`; a tendon's
  its own (`tendon_id`);
- what raycollect does not draw is not drawn here either: the rays of rangefinder sensors
  (`mjVIS_RANGEFINDER`), a visual aid (`option`);
- round primitives: MuJoCo tessellates them with `vis.quality.numslices`/`numstacks`
  (28/16 by default, ~0.6% of a radius off the true circle); they are raised to 96/48 so
  both renderers draw close to the analytic outline.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass

import numpy as np

# The offscreen GL backend MuJoCo uses when the caller set none: EGL works on Mesa's
# llvmpipe without a display or a GPU.
DEFAULT_GL = "egl"
SLICES, STACKS = 96, 48
OBJ_GEOM = 5  # mjtObj.mjOBJ_GEOM
OBJ_SKIN = 11  # mjtObj.mjOBJ_SKIN
OBJ_SITE = 6  # mjtObj.mjOBJ_SITE
OBJ_TENDON = 18  # mjtObj.mjOBJ_TENDON
SATURATION = "saturation"  # pattern_agreement's channels for a white-on-colours pattern
HUE_MIN_SATURATION = 0.3  # face_agreement: a pixel less saturated is white or grey
HUE_TOL = 0.06  # face_agreement: the same face (the test faces' hues differ by 0.13 or more)


@dataclass
class Frame:
    seg: np.ndarray  # H x W: body id per pixel (skin_id for a skin's), -1 where none
    depth: np.ndarray  # H x W float32 z-depth in metres, 0 where none
    rgb: np.ndarray | None = None  # H x W x 3 uint8, with render(..., rgb=True)
    geom: np.ndarray | None = None  # H x W: geom id per pixel (ngeom + skin for a skin's), -1


def renderer(model, width: int, height: int):
    """A mujoco.Renderer set up for exact comparisons (see the module docstring). Sets
    MUJOCO_GL to egl when unset: it must be chosen before mujoco first makes a context."""
    os.environ.setdefault("MUJOCO_GL", DEFAULT_GL)
    import mujoco

    model.vis.quality.offsamples = 0
    model.vis.quality.numslices = max(int(model.vis.quality.numslices), SLICES)
    model.vis.quality.numstacks = max(int(model.vis.quality.numstacks), STACKS)
    model.vis.global_.offwidth = max(int(model.vis.global_.offwidth), width)
    model.vis.global_.offheight = max(int(model.vis.global_.offheight), height)
    return mujoco.Renderer(model, height, width)


def option():
    """MuJoCo's default visual options but for the aid raycollect does not draw
    (rangefinder rays)."""
    import mujoco

    opt = mujoco.MjvOption()
    opt.flags[mujoco.mjtVisFlag.mjVIS_RANGEFINDER] = 0
    return opt


def render(r, model, data, camera: dict, rgb: bool = False) -> Frame:
    """MuJoCo's view of `data` through a raycollect camera dict (matrix, fov, width, height,
    near, far; Z-up world): body segmentation and z-depth (and its colour image)."""
    m = np.asarray(camera["matrix"], dtype=float)
    near, far = float(camera["near"]), float(camera["far"])
    top = near * math.tan(math.radians(camera["fov"]) / 2)

    colour_pass = False

    def place():
        import mujoco

        r.update_scene(data, scene_option=option())
        # Colours only (rgb=True): raycollect's lights cast no shadows and its floors
        # reflect nothing.
        r.scene.flags[mujoco.mjtRndFlag.mjRND_REFLECTION] = int(not colour_pass)
        r.scene.flags[mujoco.mjtRndFlag.mjRND_SHADOW] = int(not colour_pass)
        for eye in r.scene.camera:
            eye.pos[:] = m[:3, 3]
            eye.forward[:] = -m[:3, 2]
            eye.up[:] = m[:3, 1]
            eye.frustum_near, eye.frustum_far = near, far
            eye.frustum_top, eye.frustum_bottom = top, -top
            eye.frustum_center = 0.0
            eye.frustum_width = top * camera["width"] / camera["height"]
            eye.orthographic = 0

    place()
    r.enable_segmentation_rendering()
    seg = r.render().copy()
    r.disable_segmentation_rendering()
    place()
    r.enable_depth_rendering()
    z = r.render().copy()
    r.disable_depth_rendering()
    colour = None
    if rgb:  # colours without the shadows and reflections raycollect's lights do not cast
        colour_pass = True
        place()
        colour = r.render().copy()
    geom = np.where(seg[..., 1] == OBJ_GEOM, seg[..., 0], -1)
    body = np.where(geom >= 0, np.asarray(model.geom_bodyid)[np.clip(geom, 0, None)], -1)
    if model.nsite:
        site = seg[..., 1] == OBJ_SITE
        site_body = np.asarray(model.site_bodyid)[np.clip(seg[..., 0], 0, model.nsite - 1)]
        body = np.where(site, site_body, body)
        geom = np.where(site, site_id(model, seg[..., 0]), geom)
    tendon = seg[..., 1] == OBJ_TENDON
    body = np.where(tendon, tendon_id(model, seg[..., 0]), body)
    geom = np.where(tendon, tendon_id(model, seg[..., 0], geoms=True), geom)
    skin = seg[..., 1] == OBJ_SKIN
    body = np.where(skin, skin_id(model, seg[..., 0]), body)
    geom = np.where(skin, skin_id(model, seg[..., 0], geoms=True), geom)
    return Frame(body.astype(np.int64), np.where(body >= 0, z, 0.0).astype(np.float32), colour,
                 geom.astype(np.int64))


def keys(world, geoms: bool = False) -> dict[int, str]:
    """{id in Frame.seg (Frame.geom with `geoms`): raycollect's instance key} of an MJCF
    world (raycollect/mjcf/world.py): its bodies (its geoms, "body/geom", as masks="geoms"
    keys them) and its skins."""
    from raycollect.labels import link_key
    from raycollect.mjcf import geoms as mj_geoms

    model = world.model
    if geoms:
        out = {g: link_key(world.body_key(int(model.geom_bodyid[g])), mj_geoms.part_name(model, g))
               for g in range(model.ngeom)}
        out.update({site_id(model, s): link_key(world.body_key(int(model.site_bodyid[s])),
                                                mj_geoms.site_part_name(model, s))
                    for s in range(model.nsite)})
    else:
        out = {b: world.body_key(b) for b in range(model.nbody)}
    out.update({skin_id(model, s, geoms): k for s, k in world.skin_keys().items()})
    out.update({tendon_id(model, t, geoms): k for t, k in world.tendon_keys().items()})
    return out


def tendon_id(model, tendon, geoms: bool = False):
    """The id a tendon's pixels carry in Frame.seg (Frame.geom): after the skins' (sites')."""
    return (int(model.ngeom + model.nskin + model.nsite) if geoms
            else int(model.nbody + model.nskin)) + tendon


def site_id(model, site):
    """The id a site's pixels carry in Frame.geom: after every geom's and skin's."""
    return int(model.ngeom + model.nskin) + site


def skin_id(model, skin, geoms: bool = False):
    """The id a skin's pixels carry in Frame.seg (Frame.geom): after every body's (geom's)."""
    return int(model.ngeom if geoms else model.nbody) + skin


def compare(mask: np.ndarray, depth: np.ndarray, ref: Frame, ids: dict[int, int],
            geoms: bool = False) -> dict:
    """Per body ({body id: raycollect instance id}): mask IoU with MuJoCo's, pixel counts,
    and the median and 99th percentile of |z-depth difference| (metres) on the pixels both
    call that body; plus `near`: the share of pixels where only one renderer shows the body
    that lie within one pixel of the other's outline (tessellation, not misplacement); and
    `depth_shift_px`: the median of the depth difference over MuJoCo's depth gradient
    (`depth_gradient`), the shift across the image that would make it: on a surface seen at
    a grazing angle a millimetre of depth is a hundredth of a pixel or less, below what
    either rasteriser places exactly.
    With `geoms`, per geom ({geom id: instance id}, masks="geoms") against Frame.geom."""
    out = {}
    seg = ref.geom if geoms else ref.seg
    for body, rid in ids.items():
        ours, theirs = mask == rid, seg == body
        union = int((ours | theirs).sum())
        both = ours & theirs
        err = np.abs(depth[both].astype(np.float64) - ref.depth[both])
        slope = depth_gradient(ref.depth, theirs)[both]
        shift = err[slope > 0] / slope[slope > 0]
        diff = ours ^ theirs
        near = (diff & (grow(ours) & grow(theirs))).sum() / diff.sum() if diff.any() else 1.0
        out[body] = {"iou": float(both.sum() / union) if union else 1.0,
                     "px": int(ours.sum()), "ref_px": int(theirs.sum()), "near": float(near),
                     "depth_median": float(np.median(err)) if err.size else float("nan"),
                     "depth_p99": float(np.percentile(err, 99)) if err.size else float("nan"),
                     "depth_shift_px": float(np.median(shift)) if shift.size else 0.0}
    return out


def depth_gradient(depth: np.ndarray, same: np.ndarray) -> np.ndarray:
    """Per pixel of `same`, the largest |z-depth step| (metres) to a 4-neighbour also in
    `same`: how much the depth changes over one pixel there (0 where no neighbour is)."""
    d = depth.astype(np.float64)
    out = np.zeros_like(d)
    for axis in (0, 1):
        step = np.abs(np.diff(d, axis=axis))
        ok = np.logical_and(*(np.moveaxis(same, axis, 0)[s] for s in (slice(None, -1), slice(1, None))))
        step = np.where(np.moveaxis(ok, 0, axis), step, 0.0)
        lo = [slice(None)] * 2
        hi = [slice(None)] * 2
        lo[axis], hi[axis] = slice(None, -1), slice(1, None)
        out[tuple(lo)] = np.maximum(out[tuple(lo)], step)
        out[tuple(hi)] = np.maximum(out[tuple(hi)], step)
    return np.where(same, out, 0.0)


def pattern_agreement(ours: np.ndarray, theirs: np.ndarray, where: np.ndarray,
                      channels=(0, 1, 2)) -> tuple[float, int]:
    """How much two renderings of a two-colour pattern agree, lights aside: on the pixels
    `where`, each image's pixels are split in two halfway between their own 5th and 95th
    percentile of the `channels`' mean (or, given two, the first minus the second), and the
    share of pixels both put on the same side is returned, with the count compared
    (`channels=SATURATION`: white or grey against colour, each pixel's largest channel minus
    its smallest over its largest against HUE_MIN_SATURATION, however bright each face is
    lit and whether or not the view shows any white). Pixels next to an edge of MuJoCo's
    pattern are left out (sampling, not mapping)."""
    def side(img):
        img = img.astype(np.float64)
        if channels == SATURATION:
            top = img[..., :3].max(axis=-1)
            return (top - img[..., :3].min(axis=-1)) / np.maximum(top, 1.0) > HUE_MIN_SATURATION
        else:
            v = (img[..., channels[0]] - img[..., channels[1]] if len(channels) == 2
                 else img[..., list(channels)].mean(axis=-1))
        if not where.any():
            return np.zeros(where.shape, bool)
        lo, hi = np.percentile(v[where], [5, 95])
        return v > (lo + hi) / 2

    a, b = side(ours), side(theirs)
    inner = where & ~grow(~where)
    steady = inner & ~(grow(b) & grow(~b))  # away from MuJoCo's pattern edges
    n = int(steady.sum())
    return (float((a[steady] == b[steady]).mean()) if n else 0.0), n


def face_agreement(ours: np.ndarray, theirs: np.ndarray, where: np.ndarray) -> tuple[float, int]:
    """How much two renderings of a pattern of saturated colours of distinct hues (a cube
    texture's faces) agree on which colour each pixel shows, lights aside: on the pixels
    `where` that both images show saturated (white and grey left out), the share whose hues
    differ by less than HUE_TOL turns, with the count compared. The lights shift a colour's
    hue in both renderers alike (a red face in shadow turns orange), so hues are compared
    with each other, not with a palette. Pixels next to a change of hue in MuJoCo's image
    are left out (sampling, not mapping)."""
    def hue(img):
        img = img[..., :3].astype(np.float64)
        top, low = img.max(axis=-1), img.min(axis=-1)
        return _hue(img), (top - low) / np.maximum(top, 1.0) > HUE_MIN_SATURATION

    (a, sa), (b, sb) = hue(ours), hue(theirs)
    steady = where & ~grow(~where) & sa & sb
    h, w = b.shape
    pad, ok = np.pad(b, 1, mode="edge"), np.pad(sb, 1, mode="edge")
    for dy in (0, 1, 2):
        for dx in (0, 1, 2):
            steady &= ok[dy:dy + h, dx:dx + w] & (_turns(pad[dy:dy + h, dx:dx + w], b) < HUE_TOL)
    n = int(steady.sum())
    return (float((_turns(a, b)[steady] < HUE_TOL).mean()) if n else 0.0), n


def _turns(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Circular distance of hues in turns."""
    return np.abs((a - b + 0.5) % 1.0 - 0.5)


def _hue(rgb: np.ndarray) -> np.ndarray:
    """Hue in turns (0..1) of RGB values (..., 3)."""
    r, g, b = rgb[..., 0], rgb[..., 1], rgb[..., 2]
    return (np.arctan2(np.sqrt(3.0) * (g - b), 2 * r - g - b) / (2 * np.pi)) % 1.0


def edges(img: np.ndarray, tol: int) -> np.ndarray:
    """Pixels whose colour differs from a 4-neighbour's by more than `tol` on some channel."""
    img = img.astype(np.int64)
    out = np.zeros(img.shape[:2], bool)
    dy = (np.abs(np.diff(img, axis=0)) > tol).any(axis=2)
    dx = (np.abs(np.diff(img, axis=1)) > tol).any(axis=2)
    out[1:] |= dy
    out[:-1] |= dy
    out[:, 1:] |= dx
    out[:, :-1] |= dx
    return out


def grow(a: np.ndarray) -> np.ndarray:
    """The mask with every pixel's 8 neighbours added."""
    p = np.pad(a, 1)
    h, w = a.shape
    return np.any([p[1 + dy:1 + dy + h, 1 + dx:1 + dx + w]
                   for dy in (-1, 0, 1) for dx in (-1, 0, 1)], axis=0)


# Geom groups MuJoCo's renderer shows by default (raycollect/mjcf/geoms.py VISIBLE_GROUPS).
RAY_GROUPS = np.array([1, 1, 1, 0, 0, 0], dtype=np.uint8)


def raycast(model, data, camera: dict, ys: np.ndarray, xs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """A third computation, apart from both renderers: MuJoCo's own ray casting (`mj_ray`,
    exact for primitives, the mesh's triangles for meshes) through the centres of the pixels
    (ys, xs) of a raycollect camera: the body each ray hits first (-1 for none) and its
    z-depth in metres (0 for none). No tessellation and no depth buffer: where the renderers
    disagree, it says which one drew the model."""
    import mujoco

    m = np.asarray(camera["matrix"], dtype=float)
    w, h = int(camera["width"]), int(camera["height"])
    f = h / 2 / math.tan(math.radians(camera["fov"]) / 2)
    origin = m[:3, 3].copy()
    bodies = np.full(len(ys), -1, dtype=np.int64)
    depth = np.zeros(len(ys), dtype=np.float64)
    hit = np.zeros(1, dtype=np.int32)
    far = float(camera["far"])
    for i, (y, x) in enumerate(zip(ys, xs)):
        d_cam = np.array([(x + 0.5 - w / 2) / f, -(y + 0.5 - h / 2) / f, -1.0])
        dist = mujoco.mj_ray(model, data, origin, m[:3, :3] @ d_cam, RAY_GROUPS, 1, -1, hit)
        if dist >= 0 and hit[0] >= 0 and dist <= far:  # |d_cam.z| = 1: dist is z-depth
            bodies[i] = int(model.geom_bodyid[hit[0]])
            depth[i] = dist
    return bodies, depth


def arbitrate(model, data, camera: dict, mask: np.ndarray, depth: np.ndarray, ref: Frame,
              body: int, rid: int, limit: int = 2000, seed: int = 0) -> dict:
    """Where raycollect and MuJoCo's renderer disagree about one body, what the ray cast
    says (`raycast`): of the pixels only one renderer gives the body (up to `limit`, drawn at
    random), the share where the ray cast sides with raycollect and with MuJoCo; of the
    pixels both give it, the median |z-depth error| of each against the ray cast (metres)."""
    rng = np.random.default_rng(seed)
    ours, theirs = mask == rid, ref.seg == body

    def sample(sel):
        ys, xs = np.nonzero(sel)
        if len(ys) > limit:
            pick = rng.choice(len(ys), limit, replace=False)
            ys, xs = ys[pick], xs[pick]
        return ys, xs

    ys, xs = sample(ours ^ theirs)
    out = {"differ": int((ours ^ theirs).sum())}
    if len(ys):
        hit, _ = raycast(model, data, camera, ys, xs)
        truth = hit == body
        out["ray_sides_with_raycollect"] = float((ours[ys, xs] == truth).mean())
        out["ray_sides_with_mujoco"] = float((theirs[ys, xs] == truth).mean())
    ys, xs = sample(ours & theirs)
    if len(ys):
        hit, z = raycast(model, data, camera, ys, xs)
        ok = hit == body
        if ok.any():
            out["raycollect_depth_vs_ray"] = float(np.median(np.abs(depth[ys, xs][ok] - z[ok])))
            out["mujoco_depth_vs_ray"] = float(np.median(np.abs(ref.depth[ys, xs][ok] - z[ok])))
    return out


# Where the true outline passes near a pixel: rays this far from its centre (pixels), in
# these directions (outline_distance).
TIE_DISTANCES = (0.01, 0.02, 0.05, 0.1, 0.2, 0.3, 0.5)
TIE_DIRECTIONS = [(math.cos(a), math.sin(a)) for a in np.linspace(0, 2 * math.pi, 16, endpoint=False)]


def outline_distance(model, data, camera: dict, body: int, y: int, x: int) -> float | None:
    """The smallest of TIE_DISTANCES at which a ray near pixel (y, x) lands on the other side
    of `body`'s true outline (by `raycast`: no tessellation, occluders included) than the ray
    through its centre; None when farther than all. A pixel the two renderers give
    differently, with the true outline this close to its centre, is a tie that the polygons'
    chords and the rasterisers' arithmetic decide either way."""
    def hits(ys, xs):
        return raycast(model, data, camera, np.asarray(ys, float), np.asarray(xs, float))[0] == body

    inside = hits([y], [x])[0]
    for d in TIE_DISTANCES:
        around = hits([y + d * dy for _, dy in TIE_DIRECTIONS], [x + d * dx for dx, _ in TIE_DIRECTIONS])
        if (around != inside).any():
            return d
    return None


def ties(model, data, camera: dict, mask: np.ndarray, ref: Frame, body: int, rid: int,
         limit: int = 200, seed: int = 0) -> float:
    """The largest outline_distance over the pixels only one renderer gives `body` (up to
    `limit` of them, drawn at random); inf when the true outline is not within 0.5 px of one."""
    rng = np.random.default_rng(seed)
    ys, xs = np.nonzero((mask == rid) ^ (ref.seg == body))
    if len(ys) > limit:
        pick = rng.choice(len(ys), limit, replace=False)
        ys, xs = ys[pick], xs[pick]
    worst = 0.0
    for y, x in zip(ys, xs):
        d = outline_distance(model, data, camera, body, int(y), int(x))
        if d is None:
            return float("inf")
        worst = max(worst, d)
    return worst
