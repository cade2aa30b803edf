"""Which of a render worker's jobs share a batch: those whose scenes are one (scene.identity
of the elements the scene function returns, without what the page sets per view) and whose
optics are one. Such jobs only move cameras and joints. A scene is built once per distinct
params and kept until its jobs render (a rollout builds each job's scene once, not twice)."""

from __future__ import annotations

from collections import OrderedDict

from .. import scene as scenes
from ..errors import RaycollectError
from ..jobs import Lease

# Scene digests (what a job's scene is, for batching) a worker remembers, by params.
SCENE_DIGEST_CACHE = 4096
# Scenes (element lists) a worker keeps from batching until their jobs render, by params: a
# lease waits at most views_per_update x (1 + PREFETCH_BATCHES) leases in a worker's buffer.
BUILT_SCENE_CACHE = 64


class Batches:
    def __init__(self, scene):
        self.scene = scene
        self._digests: OrderedDict[str, str] = OrderedDict()
        self._built: OrderedDict[str, list] = OrderedDict()  # scene key -> elements

    def key(self, lease: Lease) -> tuple:
        """(what the scene is, the optics): jobs with equal keys share a batch and only move
        cameras and joints. The scene part is a digest of the elements the scene function
        returns for the job's params, but their joint values (which the page sets per view,
        raycollect/render/capture_js/view_state.js), computed once per distinct params."""
        cam = lease.params.get("camera")
        optics = None
        if isinstance(cam, dict):
            optics = tuple(repr(cam.get(k)) for k in ("fov", "width", "height", "near", "far"))
        pkey = scenes.scene_key(lease.params)
        digest = self._digests.get(pkey)
        if digest is None:
            try:
                elements = scenes.build(self.scene, lease.job_id, lease.params)
                self._built[pkey] = elements
                if len(self._built) > BUILT_SCENE_CACHE:
                    self._built.popitem(last=False)
                # Serialising every element is most of a rollout job's cost here: jobs of
                # one digest key (an MJCF world's states) share it (scene.py digest_key).
                dkey = scenes.digest_key(self.scene, lease.params)
                shared = f"static:{dkey}" if dkey != pkey else None
                digest = self._digests.get(shared) if shared else None
                if digest is None:
                    digest = scenes.identity([scenes.view_state_free(el) for el in elements])
                    if shared:
                        self._digests[shared] = digest
            except RaycollectError:  # it fails again, with its error, when it renders alone
                digest = f"unbuildable:{lease.job_id}"
            self._digests[pkey] = digest
            if len(self._digests) > SCENE_DIGEST_CACHE:
                self._digests.popitem(last=False)
        return digest, optics

    def elements(self, lease: Lease) -> list:
        """The job's scene: as batching built it, or built now."""
        return self._built.get(scenes.scene_key(lease.params)) or \
            scenes.build(self.scene, lease.job_id, lease.params)
