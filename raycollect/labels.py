"""Labels of a frame: what each element is, where it is and which pixels show it.

With masks on, every manifest line carries `objects`, keyed by element key:

    {"id": instance id, "class": class name, "pose": 4x4 element-to-world,
     "bbox": [x, y, w, h] or None, "px": visible pixel count,
     "links": {link: 4x4 link-frame-to-world} (URDF robots, masks="links"),
     "geoms": {geom: 4x4 geom-frame-to-world} (MJCF bodies, masks="geoms"),
     "model": {"tag", "src", "args", "scale"} (what the element draws: the BOP export's model;
               a group's is {"tag": "group", "parts": [placed models]}: model_of),
     with amodal=True: "px_all", "bbox_all", "visib_fract"}

`px_all` and `bbox_all` are counted as the BOP toolkit counts them (its calc_gt_info): on a
canvas three times the image's size with the image in its middle, so a part the image's
border cuts off counts and the box is not clipped (it may start left of or above the image).
`visib_fract` is px / px_all. The silhouette in the image always holds the visible pixels.

Poses are what the page rendered: the renderer's world matrices read after the render
(raycollect/render/capture_js/), in the world the camera matrices are in (the user's Z-up world with
`up="z"`). The box and pixel count come from the frame's own mask. With `masks="links"` every
URDF link has an id of its own and an entry `"robot/link"` (its pose is the link frame); with
`masks="geoms"` every geom of an MJCF world's body, `"body/geom"` (the geom frame:
raycollect/mjcf/geoms.py).

Only elements a mask can show get an id: lights, fog, backgrounds (skyboxes among them) and
controls draw nothing.
"""

from __future__ import annotations

import numpy as np

from .crop import Crop, box, union
from .scene import RESERVED_KEY_PREFIX, skin_bones_file, skybox_faces

# vuer element tags that draw nothing into a frame (raycollect/render/stage.py wraps each element
# in a group with its id; these get id 0).
NON_DRAWING = frozenset({
    "AmbientLight", "DirectionalLight", "PointLight", "SpotLight", "HemisphereLight",
    "RectAreaLight", "AmbientLightStage", "HemisphereLightStage", "RandomizedLight",
    "AccumulativeShadows", "Fog", "SceneBackground", "BackgroundColor", "OrbitControls",
    "PointerControls", "SceneCamera", "SceneCameraControl", "CameraView", "Gamepad",
    "KeyboardMonitor"})
LINK_SEPARATOR = "/"
GROUP_TAG = "group"  # vuer's group(): an MJCF body, a geom's part
SKIN_MODEL = "Skin"  # model_of's tag for a skinned group: no one mesh
# A child's placement in its group, as three.js composes it (position, rotation, scale).
PLACEMENT = ("position", "quaternion", "rotation")
# Class ids share the queue's id registry with instance ids, under keys no element can have
# (raycollect/scene.py reserves the prefix).
CLASS_KEY_PREFIX = f"{RESERVED_KEY_PREFIX}class:"


def class_key(name: str) -> str:
    return CLASS_KEY_PREFIX + name


def draws(element) -> bool:
    """False for elements that never show in a mask (lights, skyboxes and the like)."""
    return (getattr(element, "tag", type(element).__name__) not in NON_DRAWING
            and not skybox_faces(element))


def link_key(element_key: str, link: str) -> str:
    return f"{element_key}{LINK_SEPARATOR}{link}"


def _matrix(col_major) -> list | None:
    """three.js's column-major 16 numbers as a row-major 4x4 list."""
    if col_major is None:
        return None
    return np.asarray(col_major, dtype=np.float64).reshape(4, 4).T.round(9).tolist()


def boxes(mask: np.ndarray) -> dict[int, tuple[list[int], int]]:
    """For every id in the mask but 0: ([x, y, w, h] tight on its pixels, pixel count)."""
    counts = np.bincount(mask.ravel())
    return {int(i): (box(mask == i), int(counts[i])) for i in np.flatnonzero(counts) if i}


def silhouettes(inner: dict[int, Crop], outer: dict[int, Crop], mask: np.ndarray,
                seen: dict[int, tuple] | None = None) -> tuple[dict[int, Crop], dict[int, tuple]]:
    """Each id's amodal silhouette in the image (the page's, with the id's visible pixels
    added: things with no silhouette of their own, points and lines, are what they show),
    and its (px_all, bbox_all) on BOP's 3x canvas. `outer` holds the 3x canvas of the ids
    the image's border cuts (raycollect/render/capture.py); `seen` is boxes(mask), passed when
    the caller has it. Works on each id's box only, not on whole frames."""
    h, w = mask.shape
    seen = boxes(mask) if seen is None else seen
    masks, stats = {}, {}
    for i in set(inner) | set(seen):
        parts = []
        if i in inner:
            parts.append(tuple(inner[i]))
        if i in seen and seen[i][0] is not None:
            x, y, bw, bh = seen[i][0]
            parts.append((x, y, mask[y:y + bh, x:x + bw] == i))
        m = masks[i] = union(parts)
        big = outer.get(i)
        if big is None:
            stats[i] = (int(m.bits.sum()), m.box)
            continue
        whole = union([tuple(big), (m.x + w, m.y + h, m.bits)])
        b = whole.box
        stats[i] = (int(whole.bits.sum()), None if b is None else [b[0] - w, b[1] - h, b[2], b[3]])
    return masks, stats


def objects(rendered: dict, mask: np.ndarray, instances: dict[str, int],
            classes: dict[str, str] | None = None, models: dict[str, dict] | None = None,
            amodal: dict[int, tuple] | None = None,
            seen: dict[int, tuple] | None = None) -> dict:
    """The manifest's `objects` for one frame: what the page reported (`rendered`, by element
    key, column-major matrices) with the boxes and counts of the frame's mask; each thing's
    class (by key), its model (by element key) and, with `amodal` ({id: (px_all,
    bbox_all)}, silhouettes()), its whole silhouette's count and box. `seen` is boxes(mask)
    when the caller has it."""
    seen = boxes(mask) if seen is None else seen

    def entry(key: str, pose) -> dict:
        i = instances[key]
        bbox, px = seen.get(i, (None, 0))
        e = {"id": i, "pose": pose, "bbox": bbox, "px": px}
        if classes is not None:
            e["class"] = classes.get(key, key)
        if models and key in models:
            e["model"] = models[key]
        if amodal is not None:
            px_all, bbox_all = amodal.get(i, (px, bbox))
            e.update(px_all=px_all, bbox_all=bbox_all,
                     visib_fract=round(px / px_all, 6) if px_all else 0.0)
        return e

    out = {}
    for key, rec in rendered.items():
        if key not in instances:
            continue
        field = "links" if rec.get("links") else "geoms"  # a URDF's links, an MJCF body's geoms
        links = {name: _matrix(m) for name, m in (rec.get("links") or rec.get("parts") or {}).items()}
        e = entry(key, _matrix(rec.get("pose")))
        if links:
            e[field] = links
            for name, pose in links.items():
                lk = link_key(key, name)
                if lk in instances:
                    out[lk] = entry(lk, pose)
        out[key] = e
    return out


def class_of(key: str, classes) -> str:
    """A labelled thing's class: the user's (a dict or a callable key -> name), else a URDF
    link's robot's, else its own key."""
    def named(k: str):
        if classes is None:
            return None
        return classes(k) if callable(classes) else classes.get(k)

    name = named(key)
    if name is None and LINK_SEPARATOR in key:
        robot = key.split(LINK_SEPARATOR, 1)[0]
        name = named(robot) or robot
    name = key if name is None else name
    if not isinstance(name, str) or not name:
        raise ValueError(f"classes gave {name!r} for {key!r}: a class is a non-empty string")
    return name


def model_of(element) -> dict:
    """What an element draws, as the BOP export names a model: its tag, file, args, scale;
    a group's (an MJCF body, a geom's part) is its drawing children, each placed in the
    group's frame ("position", "quaternion" or "rotation", and its own "scale"); a skinned
    group (an MJCF skin or tendon) changes shape from view to view and is tagged SKIN_MODEL."""
    from .jobs import to_plain

    return to_plain(_model(element), f"{element.key}")


def _model(element) -> dict:
    tag = getattr(element, "tag", type(element).__name__)
    if tag == GROUP_TAG:
        if skin_bones_file(element):
            return {"tag": SKIN_MODEL}
        return {"tag": GROUP_TAG,
                "parts": [{**_model(c), **{k: getattr(c, k, None) for k in PLACEMENT}}
                          for c in getattr(element, "children", None) or [] if draws(c)]}
    return {"tag": tag, **{k: getattr(element, k, None) for k in ("src", "args", "scale")}}
