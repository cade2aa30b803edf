"""Labels of a frame: what each element is, where it is and which pixels show it.

With masks on, every manifest line carries `objects`, keyed by element key:

    {"id": instance id, "pose": 4x4 element-to-world, "bbox": [x, y, w, h] or None,
     "px": visible pixel count, "links": {link: 4x4 link-frame-to-world} (URDF robots)}

Poses are what the page rendered: the renderer's world matrices read after the render
(raycollect/render/capture.js), in the world the camera matrices are in (the user's Z-up world with
`up="z"`). The box and pixel count come from the frame's own mask. With `masks="links"` every
URDF link has an id of its own and an entry `"robot/link"` (its pose is the link frame).

Only elements a mask can show get an id: lights, fog, backgrounds and controls draw nothing.
"""

from __future__ import annotations

import numpy as np

# vuer element tags that draw nothing into a frame (raycollect/render/stage.py wraps each element
# in a group with its id; these get id 0).
NON_DRAWING = frozenset({
    "AmbientLight", "DirectionalLight", "PointLight", "SpotLight", "HemisphereLight",
    "RectAreaLight", "AmbientLightStage", "HemisphereLightStage", "RandomizedLight",
    "AccumulativeShadows", "Fog", "SceneBackground", "BackgroundColor", "OrbitControls",
    "PointerControls", "SceneCamera", "SceneCameraControl", "CameraView", "Gamepad",
    "KeyboardMonitor"})
LINK_SEPARATOR = "/"


def draws(element) -> bool:
    """False for elements that never show in a mask (lights and the like)."""
    return getattr(element, "tag", type(element).__name__) not in NON_DRAWING


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
    out = {}
    for i in np.flatnonzero(counts):
        if i == 0:
            continue
        hit = mask == i
        rows = np.flatnonzero(hit.any(axis=1))
        cols = np.flatnonzero(hit.any(axis=0))
        out[int(i)] = ([int(cols[0]), int(rows[0]), int(cols[-1] - cols[0] + 1),
                        int(rows[-1] - rows[0] + 1)], int(counts[i]))
    return out


def objects(rendered: dict, mask: np.ndarray, instances: dict[str, int]) -> dict:
    """The manifest's `objects` for one frame: what the page reported (`rendered`, by element
    key, column-major matrices) with the boxes and counts of the frame's mask."""
    seen = boxes(mask)
    out = {}
    for key, rec in rendered.items():
        if key not in instances:
            continue
        links = {name: _matrix(m) for name, m in (rec.get("links") or {}).items()}
        entry = _entry(instances[key], _matrix(rec.get("pose")), seen)
        if links:
            entry["links"] = links
            for name, pose in links.items():
                lk = link_key(key, name)
                if lk in instances:
                    out[lk] = _entry(instances[lk], pose, seen)
        out[key] = entry
    return out


def _entry(i: int, pose, seen: dict) -> dict:
    bbox, px = seen.get(i, (None, 0))
    return {"id": i, "pose": pose, "bbox": bbox, "px": px}
