"""The ids of the scene on a render worker's page, with masks: each drawn element's instance
id (and each robot link's, with masks="links"), its class and model, the class ids, and the
instance -> class table the semantic pass is made with. Made once per scene; every frame of
the scene is labelled with them (raycollect/labels.py)."""

from __future__ import annotations

import numpy as np

from .. import labels, scene as scenes
from .. import constants as C
from ..errors import InvalidJob, RenderError
from . import stage as stages


class SceneIds:
    def __init__(self, instances: dict, classes: dict | None = None,
                 class_ids: dict | None = None, models: dict | None = None,
                 semantic_lut: np.ndarray | None = None, links: dict | None = None):
        self.instances = instances  # element key (or "robot/link") -> instance id
        self.classes = classes or {}  # key -> class name
        self.class_ids = class_ids or {}  # class name -> class id
        self.models = models or {}  # element key -> its model (raycollect/labels.py)
        self.semantic_lut = semantic_lut  # instance id -> class id
        self.links = links or {}  # robot key -> {link name: id} (or element key -> {part: id})

    @classmethod
    async def assign(cls, queue, elements: list, robots: dict, config, job_id: str) -> "SceneIds":
        """Give what the scene draws its ids (0 for everything without masks); with
        masks="links" every URDF link its own, with masks="geoms" every part (an MJCF
        geom, raycollect/scene.py `part_names`)."""
        keys = [str(el.key) for el in elements]
        if not config.masks:
            return cls({k: 0 for k in keys})
        drawn = [k for k, el in zip(keys, elements) if labels.draws(el)]
        named: dict[str, list[str]] = {}  # element key -> its parts' names
        if config.masks == C.MASKS_LINKS:
            named = {k: list(r.links) for k, r in robots.items() if k in drawn}
        elif config.masks == C.MASKS_GEOMS:
            named = {k: p for k, el in zip(keys, elements) if k in drawn
                     and (p := scenes.part_names(el))}
        parts = [labels.link_key(k, p) for k, names in named.items() for p in names]
        try:
            classes = {k: labels.class_of(k, config.classes) for k in drawn + parts}
        except ValueError as e:
            raise InvalidJob(job_id, "classes", str(e)) from None
        names = sorted(set(classes.values()))
        # Class ids come from the queue's journaled registry, as instance ids do (under a
        # reserved prefix no element key can have): stable for the whole output, on every
        # worker and after a rerun or a repair.
        class_keys = [labels.class_key(n) for n in names]
        ids = await queue.ainstance_ids(drawn + parts + class_keys)
        got = dict(zip(drawn + parts, ids))
        class_ids = dict(zip(names, ids[len(drawn) + len(parts):]))
        models = {k: labels.model_of(el) for k, el in zip(keys, elements) if k in got}
        for k, el in zip(keys, elements):  # a part's model is its group's, in the part frame
            if k in named:
                models.update((labels.link_key(k, name), labels.model_of(part))
                              for name, part in scenes.parts(el).items())
        lut = np.zeros(max(got.values(), default=0) + 1, np.uint32)
        for k, i in got.items():
            lut[i] = class_ids[classes[k]]
        links = {k: {p: got[labels.link_key(k, p)] for p in names} for k, names in named.items()}
        return cls(got, classes, class_ids, models, lut, links)

    def groups(self, elements: list) -> list:
        """Each element in its instance group (raycollect/render/stage.py)."""
        return stages.instance_groups(elements, [self.instances.get(str(el.key), 0)
                                                 for el in elements], self.links)

    def label(self, cap, config, job_id: str, arrays: dict) -> tuple[dict, dict]:
        """A frame's objects and the scene's {class: id}; its amodal and semantic passes go
        into `arrays`."""
        if cap.objects is None or cap.mask is None:
            raise RenderError(f"job {job_id}: the page returned no labels")
        stats, seen = None, labels.boxes(cap.mask)
        if config.amodal:
            crops, stats = labels.silhouettes(cap.amodal, cap.amodal_outer, cap.mask, seen)
            arrays["amodal"] = (crops, cap.mask.shape)
        objects = labels.objects(cap.objects, cap.mask, self.instances, self.classes,
                                 self.models, stats, seen)
        if config.semantic:
            lut = self.semantic_lut
            arrays["semantic"] = lut[np.minimum(cap.mask, len(lut) - 1)]
        return objects, self.class_ids
