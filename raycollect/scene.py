"""Scenes: plain functions `scene(params) -> list of vuer elements`, and the built-in demo.

raycollect owns the camera; a scene only says what is in the world. Because a scene is a pure
function of the params, two jobs whose params differ only in "camera" show the same scene,
and the worker sends nothing but the new camera poses between them.
"""

from __future__ import annotations

import hashlib
import importlib
import math
import os
import sys
from typing import Callable, Collection

from vuer.schemas import (AmbientLight, Box, Cone, DirectionalLight, Element, Plane, Sphere,
                          Torus, TorusKnot, group)

from .errors import InvalidJob, SceneError
from .jobs import canonical_json

SceneFn = Callable[[dict], list]
# Keys of the elements raycollect adds to every scene (camera views, the revision marker).
RESERVED_KEY_PREFIX = "rc-"
# A scene function may refuse a param with InvalidJob(UNNAMED_JOB, field, message): it does
# not know the job's id, which build() fills in.
UNNAMED_JOB = ""
# An element marked `moving` is placed per view: jobs that differ only in its position and
# quaternion share one scene update, and the page sets each view's placements just before
# that view renders (raycollect/render/capture_js/, as URDF joint values). The mark is a
# private attribute, which vuer never sends to the page.
MOVING_ATTR = "_rc_moving"
MOVING_PROPS = ("position", "quaternion")
# The key of the per-view placements in a job's view state ({element key: [x, y, z, qx, qy,
# qz, qw]}), beside its robots' joint values.
POSES_KEY = f"{RESERVED_KEY_PREFIX}poses"
# A skinned element (a MuJoCo skin, raycollect/mjcf/skins.py) has its vertices moved per view
# by its bones: the job's bone transforms ride in the view state under SKINS_KEY ({element
# key: [tx, ty, tz, qx, qy, qz, qw] per bone}), and the element's group names the file of
# its weights in its userData under SKIN_DATA (raycollect/render/capture_js/skin.js).
SKIN_ATTR = "_rc_skin"
SKINS_KEY = f"{RESERVED_KEY_PREFIX}skins"
SKIN_DATA = "rcSkin"


# A skybox's group carries its six image URLs under this userData key;
# raycollect/render/capture_js/skybox.js makes them the scene's background.
SKYBOX_DATA = "rcSkybox"
SKYBOX_FACES = 6


def skybox(faces: list[str], key: str = "skybox") -> Element:
    """A background of six images, one per face of a cube around the camera: what a frame
    shows where nothing is drawn, by view direction (never in depth or masks; it replaces a
    BackgroundColor). `faces` are asset URLs (`rc.asset(...)`) in three.js's cube-texture
    order, +X, -X, +Y, -Y, +Z, -Z of the page's Y-up world, each image as seen from inside
    the cube; with up="z" the page's +Y is the world's +Z and its +Z the world's -Y, so the
    order is the Z-up world's +X, -X, +Z, -Z, -Y, +Y. The worker waits until all six have
    loaded before it grabs a view."""
    if (not isinstance(faces, (list, tuple)) or len(faces) != SKYBOX_FACES
            or not all(isinstance(f, str) and f for f in faces)):
        raise ValueError(f"skybox {key!r}: faces must be {SKYBOX_FACES} image URLs "
                         f"(+X, -X, +Y, -Y, +Z, -Z), got {faces!r}")
    return group(key=key, userData={SKYBOX_DATA: list(faces)})


def skybox_faces(element) -> list[str]:
    """The face URLs of a skybox element (skybox()), or []."""
    data = getattr(element, "userData", None)
    faces = data.get(SKYBOX_DATA) if isinstance(data, dict) else None
    return [f for f in faces if isinstance(f, str)] if isinstance(faces, (list, tuple)) else []


def moving(element: Element) -> Element:
    """Mark a top-level element as placed per view by its `position` and `quaternion`
    ((x, y, z, w), three.js order); it must not be placed by `rotation` or `matrix`."""
    for prop in ("rotation", "matrix"):
        if getattr(element, prop, None) is not None:
            raise ValueError(f"element {getattr(element, 'key', None)!r}: a moving element is "
                             f"placed by position and quaternion, not {prop}")
    setattr(element, MOVING_ATTR, True)
    return element


def is_moving(element) -> bool:
    return bool(getattr(element, MOVING_ATTR, False))


def poses(elements: list) -> dict:
    """{key: [x, y, z, qx, qy, qz, qw]} of the moving elements among `elements`."""
    out = {}
    for el in elements:
        if is_moving(el):
            pos = list(getattr(el, "position", None) or (0.0, 0.0, 0.0))
            quat = list(getattr(el, "quaternion", None) or (0.0, 0.0, 0.0, 1.0))
            out[str(el.key)] = [float(v) for v in pos + quat]
    return out


# A part of an element (an MJCF geom, raycollect/mjcf/geoms.py): a group below it whose
# userData names the part under PART_DATA. With masks="geoms" each part gets an id of its own,
# as a URDF link does with masks="links", and the labels report the part group's frame.
PART_DATA = "rcPart"


def parts(element) -> dict:
    """The parts (PART_DATA groups) at or below an element, by name."""
    out = {}
    data = getattr(element, "userData", None)
    if isinstance(data, dict) and isinstance(data.get(PART_DATA), str):
        out[data[PART_DATA]] = element
    for child in getattr(element, "children", None) or []:
        out.update(parts(child))
    return out


def part_names(element) -> list[str]:
    """The names of the parts (PART_DATA groups) at or below an element, in tree order."""
    return list(parts(element))


def skinned(element: Element, bones: list[float]) -> Element:
    """Mark a top-level group (userData[SKIN_DATA]: its bones file) as skinned per view by
    `bones` (7 numbers a bone); like a placement, the bones are no part of the element sent."""
    setattr(element, SKIN_ATTR, list(bones))
    return element


def is_skinned(element) -> bool:
    return getattr(element, SKIN_ATTR, None) is not None


def skin_bones_file(element) -> list[str]:
    """[the bones file URL] of a skinned group (its userData[SKIN_DATA]), or []."""
    data = getattr(element, "userData", None)
    url = data.get(SKIN_DATA) if isinstance(data, dict) else None
    return [url] if isinstance(url, str) else []


def skins(elements: list) -> dict:
    """{key: bones} of the skinned elements among `elements`."""
    return {str(el.key): getattr(el, SKIN_ATTR) for el in elements if is_skinned(el)}


def view_state_free(element: Element) -> dict:
    """The element serialised without what the page sets per view (a moving element's
    placement): what decides whether two jobs share a scene update."""
    out = element._serialize()
    if is_moving(element):
        for prop in MOVING_PROPS:
            out.pop(prop, None)
    return out


def demo_scene(params: dict) -> list:
    """A few lit, colourful primitives on a ground plane, around the origin.

    Optional params: "box_color" (CSS colour of the box), "sphere_height" (metres)."""
    box_color = params.get("box_color", "#e63946")
    sphere_y = float(params.get("sphere_height", 0.45))
    return [
        AmbientLight(key="ambient", intensity=0.6),
        DirectionalLight(key="sun", position=[3, 6, 4], intensity=2.0),
        Plane(key="ground", args=[40, 40], rotation=[-math.pi / 2, 0, 0],
              materialType="standard", material={"color": "#8d99ae"}),
        Box(key="box", args=[0.6, 0.6, 0.6], position=[-0.9, 0.3, 0.0],
            rotation=[0, 0.5, 0], materialType="standard", material={"color": box_color}),
        Sphere(key="sphere", args=[0.45, 32, 16], position=[0.9, sphere_y, -0.2],
               materialType="standard", material={"color": "#2a9d8f"}),
        TorusKnot(key="knot", args=[0.3, 0.1, 96, 12], position=[0.0, 0.7, 0.9],
                  materialType="standard", material={"color": "#f4a261"}),
        Cone(key="cone", args=[0.35, 0.9, 24], position=[0.2, 0.45, -1.1],
             materialType="standard", material={"color": "#457b9d"}),
        Torus(key="ring", args=[0.35, 0.08, 12, 48], position=[-0.6, 0.08, -0.9],
              rotation=[-math.pi / 2, 0, 0], materialType="standard",
              material={"color": "#ffbe0b"}),
    ]


def load_scene(spec: str | SceneFn | None) -> SceneFn:
    """A scene function from a callable, "module:function", or None (the demo)."""
    if spec is None:
        return demo_scene
    if callable(spec):
        return spec
    module_name, sep, attr = str(spec).partition(":")
    if not sep or not module_name or not attr:
        raise ValueError(f"--scene takes module:function, got {spec!r}")
    # Like `python -m`, look in the current directory too: the `raycollect` script's own
    # folder is what Python puts first on sys.path, not the user's.
    if os.getcwd() not in sys.path:
        sys.path.append(os.getcwd())
    try:
        fn = getattr(importlib.import_module(module_name), attr)
    except (ImportError, AttributeError) as e:
        raise ValueError(f"cannot load scene {spec!r}: {e}") from None
    if not callable(fn):
        raise ValueError(f"scene {spec!r} is not callable")
    return fn


def identity(node, leave_out: Collection[str] = ("jointValues",), size: int = 16) -> str:
    """What a scene, or one of its elements, is: a digest of its serialised elements with
    the props `leave_out` names left out at every level. Jobs whose scenes (without what the
    page sets per view, view_state_free) have one identity share a scene update and only move
    cameras and joints (raycollect/render/worker.py); a model whose identity changes is
    loaded anew (raycollect/render/stage.py)."""
    return hashlib.blake2b(repr(_without(node, frozenset(leave_out))).encode(),
                           digest_size=size).hexdigest()


def _without(node, props: frozenset):
    if isinstance(node, dict):
        return {k: _without(v, props) for k, v in node.items() if k not in props}
    if isinstance(node, list):
        return [_without(v, props) for v in node]
    return node


def scene_key(params: dict) -> str:
    """What identifies a job's scene: every param except the camera."""
    return canonical_json({k: v for k, v in params.items() if k != "camera"})


def digest_key(scene, params: dict) -> str:
    """What a job's scene is, but what the page sets per view: scene_key(params), or less for
    a scene that says which params its view-state-free elements depend on
    (`scene.static_params(params)`; an MJCF world's state only moves its bodies, so none do).
    Jobs with one digest key share one digest of their elements, computed once."""
    narrow = getattr(scene, "static_params", None)
    return scene_key(narrow(params) if callable(narrow) else params)


def build(scene: SceneFn, job_id: str, params: dict) -> list[Element]:
    """Call the scene function and check what it returned, giving each element a key."""
    try:
        elements = scene({k: v for k, v in params.items() if k != "camera"})
    except InvalidJob as e:
        if e.job == UNNAMED_JOB:
            raise InvalidJob(job_id, e.field, e.message) from None
        raise
    except Exception as e:  # the user's code: any failure is that job's scene error
        raise SceneError(f"job {job_id}: field 'scene': the scene function raised "
                         f"{type(e).__name__}: {e}") from e
    if isinstance(elements, Element):
        elements = [elements]
    if not isinstance(elements, (list, tuple)):
        raise SceneError(f"job {job_id}: field 'scene': the scene function returned "
                         f"{type(elements).__name__}, expected a list of vuer elements")
    for i, el in enumerate(elements):
        if not isinstance(el, Element):
            raise SceneError(f"job {job_id}: field 'scene[{i}]': {type(el).__name__} is not a "
                             f"vuer element (vuer.schemas)")
        key = getattr(el, "key", None)
        if key is None:
            el.key = f"{RESERVED_KEY_PREFIX}el-{i}"
        elif str(key).startswith(RESERVED_KEY_PREFIX):
            raise SceneError(f"job {job_id}: field 'scene[{i}].key': keys starting with "
                             f"{RESERVED_KEY_PREFIX!r} are raycollect's own")
    return list(elements)


def orbit(views: int, width: int, height: int, radius: float = 4.0, height_m: float = 1.8,
          target=(0.0, 0.4, 0.0), fov: float = 50.0, **scene_params) -> list[dict]:
    """Jobs for `views` cameras evenly spaced on a circle around `target`, looking at it."""
    from .camera import look_at

    jobs = []
    for i in range(views):
        a = 2 * math.pi * i / views
        eye = [target[0] + radius * math.cos(a), height_m, target[2] + radius * math.sin(a)]
        jobs.append({**scene_params, "camera": {"matrix": look_at(eye, target).tolist(),
                                                "fov": fov, "width": width, "height": height}})
    return jobs
