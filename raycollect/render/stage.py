"""What a render worker keeps on its browser page, and how it knows the page is up to date.

The page holds the job's scene, K camera views and a revision marker: a small unlit box far
outside any job camera's far plane, watched by an 8x8 view of its own. Each change of the page
is sent with the marker recoloured to a new revision, in the same event, so it commits in the
same React render. The worker polls the marker view until it shows the new revision before it
grabs any job view: a frame can then not show what an earlier job left on screen (measured:
23 of 24 immediate grabs stale without such a barrier; see the README).
"""

from __future__ import annotations

import copy
import hashlib
from dataclasses import dataclass

import numpy as np
from vuer.schemas import Box, CameraView, Scene, group

from ..assets import is_model
from ..camera import Z_UP_EULER, to_page
from ..scene import RESERVED_KEY_PREFIX, identity

MARKER_VIEW_SIZE = 8

# Marker colours: every mix of 0/128/255 per channel except black (the background) and
# mid-grey; neighbours in the cycle differ in at least one channel by 128 or more.
PALETTE = [(r, g, b) for r in (0, 128, 255) for g in (0, 128, 255) for b in (0, 128, 255)
           if (r, g, b) not in ((0, 0, 0), (128, 128, 128))]
MARKER_KEY = f"{RESERVED_KEY_PREFIX}marker"
_D = 1e6  # the revision marker's place: beyond camera.MAX_FAR, no job camera sees it
# The page's own canvas is never drawn: every frame comes from a grab, which renders the
# view itself. With "demand" each update also redrew the full-window canvas (shadows and
# all) and each grab rendered the scene twice; "never" measured 1.7x the frames/s.
FRAMELOOP = "never"


def _hex(rgb: tuple[int, int, int]) -> str:
    return "#%02x%02x%02x" % rgb


def marker(revision: int) -> Box:
    return Box(key=MARKER_KEY, args=[50, 50, 1], position=[_D, _D, _D], materialType="basic",
               material={"color": _hex(PALETTE[revision % len(PALETTE)])},
               castShadow=False, receiveShadow=False)


def marker_view(key: str) -> CameraView:
    m = np.eye(4)
    m[:3, 3] = [_D, _D, _D + 5]  # looking down -Z at the marker, 4.5 units away
    return _view(key, m, fov=30, width=MARKER_VIEW_SIZE,
                 height=MARKER_VIEW_SIZE, near=1.0, far=10.0)


def marker_revision_matches(image: np.ndarray, revision: int) -> bool:
    """True if the marker view's RGB frame shows `revision`'s colour (nearest palette entry)."""
    rgb = np.asarray(image, dtype=float).reshape(-1, 3).mean(0)
    nearest = int(np.argmin(((np.asarray(PALETTE, dtype=float) - rgb) ** 2).sum(1)))
    return nearest == revision % len(PALETTE)


# Props that place or pose a model rather than say what it is: changing them moves the loaded
# model (a URDF's joint values are set on the loaded robot, raycollect/urdf.py).
_PLACEMENT_PROPS = ("position", "rotation", "quaternion", "scale", "matrix", "key", "jointValues")
WORLD_KEY = f"{RESERVED_KEY_PREFIX}world"
STATES_KEY = f"{RESERVED_KEY_PREFIX}states"


def states(revision: int, jobs: list[dict]):
    """The per-job joint values of one update, in order of the views (raycollect/render/capture_js/
    sets them before each view renders): [{robot key: {joint: value}}, ...]."""
    return group(key=STATES_KEY, userData={"rcStates": {"rev": revision, "jobs": jobs}})


# Keys the Vuer client gives its own scene containers (its CONTAINER_NODE_KEYS): an element
# keyed so (a MuJoCo body named "root", as in dm_control's humanoid_CMU) took the
# container's place and the page never showed a revision again. Such an element goes to the
# page under another key; its labels keep its own (the instance group's rcKey).
CLIENT_KEYS = frozenset({"root", "bgChildren"})
CLIENT_KEY_PREFIX = f"{RESERVED_KEY_PREFIX}key-"


def page_safe(el):
    """`el` as the page may hold it: itself, or a copy of it (and of the children on the way)
    with every key the client keeps for itself renamed (CLIENT_KEYS)."""
    children = getattr(el, "children", None) or []
    safe = [page_safe(c) for c in children]
    renamed = str(getattr(el, "key", None)) in CLIENT_KEYS
    if not renamed and all(a is b for a, b in zip(safe, children)):
        return el
    out = copy.copy(el)
    if renamed:
        out.key = f"{CLIENT_KEY_PREFIX}{el.key}"
    if children:
        out.children = safe
    return out


def instance_groups(elements: list, ids: list[int], links: dict | None = None) -> list:
    """Each top-level element inside a group that carries its instance id (the page's mask
    pass gives every mesh below it that id, raycollect/render/capture_js/) and whether it loads a
    model. A model's group is keyed by what the model is (src, materials, ...), so a job that
    loads another model remounts it from scratch and can never show the previous one while
    the new one loads; a model that only moves keeps its group and is not loaded again.
    `links` ({element key: {link or part name: id}}, masks="links" or "geoms") gives a
    robot's links, or an element's parts, ids of their own."""
    out = []
    for el, i in zip(elements, ids):
        model = is_model(el)
        key = f"{RESERVED_KEY_PREFIX}inst-{el.key}"
        if model:
            key += f"-{identity(el._serialize(), _PLACEMENT_PROPS, 6)}"
        data = {"rcId": i, "rcKey": str(el.key), "rcModel": model}
        if links and str(el.key) in links:
            data["rcLinks"] = links[str(el.key)]
        out.append(group(page_safe(el), key=key, userData=data))
    return out


# Elements that set a property of the three.js scene itself (`<color attach="background">`):
# inside the world group they would attach it to that group, where nothing reads it, so they
# go beside the world, unwrapped.
SCENE_LEVEL_TAGS = frozenset({"BackgroundColor"})


def _scene_level(g) -> bool:
    return len(g.children) == 1 and getattr(g.children[0], "tag", "") in SCENE_LEVEL_TAGS


def structure(groups: list) -> tuple:
    """What a scene is made of as far as the page is concerned: its groups' keys (a model's
    key says which model it is). Two scenes of one structure differ only in placements and
    joint values, which the page applies to what it has loaded."""
    return tuple(g.key for g in groups)


def _view(key: str, matrix: np.ndarray, fov: float, width: int, height: int, near: float,
          far: float) -> CameraView:
    # three.js reads matrices column-major: pass the transpose, flattened.
    return CameraView(key=key, matrix=np.asarray(matrix, dtype=float).T.flatten().tolist(),
                      fov=fov, width=width, height=height, near=near, far=far,
                      downsample=1,  # the client's default of 2 would halve the image
                      stream="ondemand", monitor=False, showCamera=False, showFrustum=False,
                      movable=False)


@dataclass(frozen=True)
class Optics:
    """What a view's component is created with. The client reads fov, size, near and far
    through UI controls that keep their first value, so views are keyed by their optics and
    new optics mean new views rather than changed ones."""

    fov: float
    width: int
    height: int
    near: float
    far: float

    @classmethod
    def of(cls, cam: dict) -> "Optics":
        return cls(cam["fov"], cam["width"], cam["height"], cam["near"], cam["far"])

    @property
    def tag(self) -> str:
        return hashlib.blake2b(repr(self).encode(), digest_size=4).hexdigest()


class Stage:
    """The worker's model of its page: which scene and optics it shows, and the revision."""

    def __init__(self, views_per_update: int, up: str = "y"):
        self.k = views_per_update
        self.up = up
        self.structure: tuple | None = None
        self.revision = 0
        self.scene_key: str | None = None
        self.optics: Optics | None = None
        self.n_views = 0

    def reset(self) -> None:
        """A new page is empty: the next batch must send everything."""
        self.scene_key, self.optics, self.n_views, self.structure = None, None, 0, None

    def view_key(self, i: int) -> str:
        return f"{RESERVED_KEY_PREFIX}view-{i}-{self.optics.tag}"

    @property
    def marker_view_key(self) -> str:
        # Every view owns a WebGL context, and Chromium drops the OLDEST context of a page
        # past its limit (16). Views of earlier optics are never freed by the client, so the
        # marker view is renewed with the job views: it is never among the oldest.
        return f"{RESERVED_KEY_PREFIX}marker-view-{self.optics.tag}"

    def needs_scene(self, scene_key: str, optics: Optics, n: int) -> bool:
        return scene_key != self.scene_key or optics != self.optics or n > self.n_views

    def _views(self, matrices: list[np.ndarray]) -> list[CameraView]:
        o = self.optics
        return [_view(self.view_key(i), to_page(m, self.up), o.fov, o.width, o.height, o.near,
                      o.far) for i, m in enumerate(matrices)]

    def full_scene(self, scene_key: str, optics: Optics, groups: list,
                   matrices: list[np.ndarray], jobs: list[dict] | None = None) -> Scene:
        """The whole page for a new scene or new optics, with the marker at a new revision.
        A full batch gets all K views, which later batches of the same scene only move; a
        short one (optics that change from job to job) only the views it needs, since each
        view costs a WebGL context."""
        kept = self.n_views if optics == self.optics else 0
        self.scene_key, self.optics, self.structure = scene_key, optics, structure(groups)
        self.n_views = max(len(matrices), kept)
        self.revision += 1
        padded = list(matrices) + [matrices[0]] * (self.n_views - len(matrices))
        # A non-empty bgChildren replaces the page's default staging (grid, lights, orbit
        # camera), which would otherwise show in every frame.
        # The user's world, as one group: turned Y-up for up="z", and the frame of reference
        # of every pose the page reports (raycollect/render/capture_js/).
        scene_level = [g.children[0] for g in groups if _scene_level(g)]
        world = group(*[g for g in groups if not _scene_level(g)], key=WORLD_KEY,
                      userData={"rcWorld": True},
                      rotation=list(Z_UP_EULER) if self.up == "z" else [0, 0, 0])
        return Scene(world, *scene_level, states(self.revision, jobs or []), marker(self.revision), marker_view(self.marker_view_key),
                     *self._views(padded),
                     bgChildren=[group(key=f"{RESERVED_KEY_PREFIX}staging")],
                     up=[0, 1, 0], frameloop=FRAMELOOP)

    def camera_update(self, matrices: list[np.ndarray], jobs: list[dict] | None = None) -> list:
        """Only the moved views, the jobs' joint values and the marker at a new revision, as
        one update event."""
        self.revision += 1
        return [*self._views(matrices), states(self.revision, jobs or []), marker(self.revision)]

    def marker_update(self) -> list:
        self.revision += 1
        return [marker(self.revision)]
