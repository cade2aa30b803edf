"""`raycollect export OUT --format bop`: OUT/bop/, a BOP dataset as the BOP toolkit reads it.

    camera.json                      cx, cy, fx, fy, width, height, depth_scale of the first
                                     frame (scene_camera.json holds every frame's own)
    models/obj_{obj_id:06d}.ply      each model's triangles, mm, with unit vertex normals
    models/models_info.json          {obj_id: {diameter, min_x/y/z, size_x/y/z}} (mm)
    obj_ids.json                     {obj_id: {model, keys, classes}}: what each id is
    <split>/job_ids.json             {scene_id: {im_id: job_id}}: each image's manifest line
    <split>/{scene_id:06d}/          split "train" unless asked otherwise; a scene per
                                     1000 frames of the manifest, as BlenderProc chunks them
      rgb/{im:06d}.png               the frames as rendered
      depth/{im:06d}.png             uint16; depth in mm = value * depth_scale
      mask/{im:06d}_{gt:06d}.png     255 on the object's whole (amodal) silhouette
      mask_visib/{im:06d}_{gt:06d}.png  255 where the object is seen
      scene_camera.json              {im: {cam_K, depth_scale, cam_R_w2c, cam_t_w2c}}
      scene_gt.json                  {im: [{obj_id, cam_R_m2c, cam_t_m2c}, ...]}
      scene_gt_info.json             {im: [{bbox_obj, bbox_visib, px_count_all,
                                       px_count_valid, px_count_visib, visib_fract}, ...]}

Frame k of manifest.jsonl is image `im` = k % 1000 of scene k // 1000 (`scene_size`): a
million frames make a thousand scene folders the toolkit reads one at a time, not one
folder of millions of files and a scene_gt.json of a million entries. `gt` is the object's
index in scene_gt[im] (the frame's objects by instance id). An `obj_id` names a model, not an instance: elements drawn
from the same asset file with the same scale, or the same primitive with the same args and
scale, share it. Ids run 1..N in the order of the models' identities (sorted JSON of tag,
args or src, and scale), so the same elements give the same ids in every export.

Poses use BOP's (OpenCV) camera axes, x right, y down, z forward, and millimetres. R is a
rotation: an element's pose is T * R * S (polar decomposition), and S, rounded to 1e-6, is
baked into its model's PLY. Primitives are meshed as the page's three.js meshes them and
asset files as they are (raycollect/output/models.py).

scene_gt_info is what the toolkit's calc_gt_info computes, from exact masks instead of its
depth test: px_count_all and bbox_obj come from the object's silhouette on a canvas three
times the image's size (the labels' px_all and bbox_all: raycollect/labels.py), px_count_valid
counts the in-image silhouette's pixels with depth, px_count_visib the instance mask's.
Boxes are the toolkit's: [x, y, max x - x, max y - y] (one less than the pixel count
across), [-1, -1, -1, -1] for both boxes of an object not seen at all.

An MJCF body (raycollect/mjcf/) is a group: its model is its geoms' shapes placed in the
body frame, one mesh (labels.model_of); with masks="geoms" each geom is an object of its own
(its model the geom's shape in the geom frame) and the body is left out.

Left out of scene_gt: URDF robots and their links (no single mesh), MJCF skins and tendons
(their shape changes from view to view), point clouds, and elements whose tag has no mesh
here (each is logged). Lights never have ids.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np

from ..assets import URL_PREFIX, local_path
from ..errors import RaycollectError
from ..labels import GROUP_TAG, LINK_SEPARATOR, PLACEMENT, SKIN_MODEL, box, link_key
from . import metadata, models
from .files import MM_PER_M, UINT16_MAX, depth_mm, png_bytes
from .manifest import finished

log = logging.getLogger(__name__)

BOP_DIR = "bop"
SCENE_SIZE = 1000  # images a scene folder (BlenderProc's frames_per_chunk)
DEFAULT_SPLIT = "train"
MASK_ON = 255
NO_BOX = [-1, -1, -1, -1]
SCALE_DECIMALS = 6  # a model's scale in its identity: frames' poses differ in float noise
# Finest first: the depth scale of an image is the finest at which its farthest pixel fits.
DEPTH_SCALES = (0.1, 1.0, 10.0, 100.0)
GL_TO_CV = np.diag([1.0, -1.0, -1.0, 1.0])  # OpenGL camera axes to OpenCV's (and back)
ROBOT_TAGS = frozenset({"Urdf"})
NEEDED_FILES = ("depth", "mask", "amodal")
NEEDED_FIELDS = ("pose", "model", "px_all", "bbox_all")
# A group's part's placement and its own scale (raycollect/labels.py model_of).
PLACED = PLACEMENT + ("scale",)


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


def split_scale(m: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """A 3x3 matrix as R @ S: R a rotation, S symmetric (the scale, in the model's frame)."""
    r = rotation(m)
    s = r.T @ m
    return r, (s + s.T) / 2


def depth_scale(depth_m: np.ndarray) -> float:
    far_mm = float(depth_m.max()) * MM_PER_M if depth_m.size else 0.0
    for s in DEPTH_SCALES:
        if far_mm / s <= UINT16_MAX:
            return s
    return DEPTH_SCALES[-1]


def bop_box(labels_box) -> list[int]:
    """A labels box [x, y, w, h] (w pixels across) as the BOP toolkit's calc_2d_bbox gives
    it: [x, y, w - 1, h - 1]."""
    if labels_box is None:
        return list(NO_BOX)
    x, y, w, h = (int(v) for v in labels_box)
    return [x, y, w - 1, h - 1]


class Catalog:
    """The models of an export: each object's model identity, and each model's mesh."""

    def __init__(self, assets: Path | None):
        self.assets = assets
        self._base: dict[str, models.Mesh] = {}
        self.uses: dict[str, dict] = {}  # identity -> {"model", "scale", "keys", "classes"}

    def identity(self, where: str, key: str, obj: dict) -> str:
        """The model identity of a labelled object (sorted JSON); raises models.Unmodelled
        for what has no mesh, RaycollectError for bad input."""
        model = obj.get("model")
        if model is None:
            if LINK_SEPARATOR in key:
                raise models.Unmodelled("a robot's link")
            raise RaycollectError(f"{where}: field 'model' is missing")
        pose = np.asarray(obj["pose"], dtype=np.float64)
        if pose.shape != (4, 4) or not np.isfinite(pose).all():
            raise RaycollectError(f"{where}: field 'pose' must be a finite 4x4 matrix")
        _, scale = split_scale(pose[:3, :3])
        scale = np.round(scale, SCALE_DECIMALS) + 0.0  # + 0.0: no -0.0 in the identity
        ident = self._ident(f"{where}: field 'model'", model)
        self._load(where, ident)  # now: what has no mesh is left out before ids are given
        ident["scale"] = scale.tolist()
        text = json.dumps(ident, sort_keys=True)
        use = self.uses.setdefault(text, {"model": ident, "scale": scale, "keys": set(),
                                          "classes": set()})
        use["keys"].add(key)
        if obj.get("class") is not None:
            use["classes"].add(str(obj["class"]))
        return text

    def _ident(self, where: str, model) -> dict:
        """A model's identity (what makes its mesh, without the top-level scale); raises
        models.Unmodelled for what has no mesh."""
        if not isinstance(model, dict) or not isinstance(model.get("tag"), str):
            raise RaycollectError(f"{where} must be {{tag, src, args, scale}}, not {model!r}")
        tag = model["tag"]
        if tag in ROBOT_TAGS:
            raise models.Unmodelled("a URDF robot (no single mesh)")
        if tag == SKIN_MODEL:
            raise models.Unmodelled("a skin or tendon (its shape changes from view to view)")
        if tag in models.PRIMITIVES:
            try:
                args = models.primitive_args(tag, model.get("args"))
            except RaycollectError as e:
                raise RaycollectError(f"{where}: {tag} {e}") from None
            return {"tag": tag, "args": [a if isinstance(a, bool) else float(a) for a in args]}
        if tag in models.ASSET_TAGS:
            src = model.get("src")
            if not isinstance(src, str) or not src.startswith(URL_PREFIX):
                raise models.Unmodelled(f"{tag} src {src!r} is not a file of the assets folder")
            return {"tag": tag, "src": src}
        if tag == GROUP_TAG:
            parts = model.get("parts")
            if not isinstance(parts, list) or not parts:
                raise models.Unmodelled("a group that draws nothing")
            out = []
            for i, part in enumerate(parts):
                ident = self._ident(f"{where}.parts[{i}]", part)
                place = {k: part[k] for k in PLACED if part.get(k) is not None}
                try:
                    models.placement(**place)
                except (TypeError, ValueError, ArithmeticError) as e:
                    raise RaycollectError(f"{where}.parts[{i}]: placement {place!r}: {e}") from None
                out.append({**ident, **place})
            return {"tag": GROUP_TAG, "parts": out}
        raise models.Unmodelled(f"no mesh for a {tag}")

    def _load(self, where: str, ident: dict) -> models.Mesh:
        """The unscaled mesh (metres) of a model identity without its scale, made once."""
        base = json.dumps({k: v for k, v in ident.items() if k != "scale"}, sort_keys=True)
        if base not in self._base:
            if ident["tag"] == GROUP_TAG:
                self._base[base] = models.combine(
                    [(self._load(where, {k: v for k, v in part.items() if k not in PLACED}),
                      models.placement(**{k: v for k, v in part.items() if k in PLACED}))
                     for part in ident["parts"]])
            elif "src" in ident:
                self._base[base] = models.load_asset(self._file(where, ident["src"]))
            else:
                try:
                    self._base[base] = models.primitive(ident["tag"], ident["args"])
                except RaycollectError as e:
                    raise RaycollectError(f"{where}: field 'model': {e}") from None
        return self._base[base]

    def mesh(self, text: str) -> tuple[models.Mesh, np.ndarray]:
        """The model of an identity in mm, scale baked in, and its vertex normals."""
        use = self.uses[text]
        return models.to_model(self._load("", use["model"]), use["scale"])

    def _file(self, where: str, src: str) -> Path:
        if self.assets is None:
            raise RaycollectError(f"{where}: its model {src} is a file of the assets folder, and "
                                  f"this output names none: pass the folder (--assets DIR)")
        path = local_path(src, self.assets)
        if path is None:
            raise RaycollectError(f"{where}: its model {src} is not in the assets folder "
                                  f"{self.assets}")
        return path


def _assets_root(assets, meta: dict) -> Path | None:
    root = assets if assets is not None else meta.get("assets")
    if root is None:
        return None
    root = Path(root)
    if not root.is_dir():
        raise RaycollectError(f"assets folder {root}: no such directory"
                              + ("" if assets is not None else " (named by dataset.json: "
                                 "pass the folder with --assets DIR)"))
    return root


def _check(out, lines: list[dict]) -> None:
    for m in lines:
        missing = [k for k in NEEDED_FILES if k not in m.get("files", {})]
        if missing or "objects" not in m:
            raise RaycollectError(
                f"{out}: frame {m.get('job_id')} has no {', '.join(missing) or 'labels'}: the bop "
                f"export needs depth, masks and labels with amodal silhouettes: render with "
                f"depth=True, masks=True, amodal=True (raycollect run --depth --masks --amodal)")
        for key, obj in m["objects"].items():
            if obj.get("pose") is None or (obj.get("model") is None and LINK_SEPARATOR in key):
                continue
            for name in NEEDED_FIELDS:
                if name not in obj:
                    raise RaycollectError(
                        f"{out}: frame {m.get('job_id')}: objects[{key!r}] has no field {name!r} "
                        f"(an output written before the bop export's labels: render it again)")


def _check_split(split: str) -> str:
    if not isinstance(split, str) or not split or split in (".", "..") or "/" in split \
            or "\\" in split:
        raise RaycollectError(f"split {split!r}: a split is a folder name such as train, val, test")
    return split


def bop(out: str | Path, storage_options: dict | None = None, split: str = DEFAULT_SPLIT,
        assets: str | Path | None = None, scene_size: int = SCENE_SIZE) -> str:
    """Write OUT/bop/ (above); returns where the split's first scene is."""
    split = _check_split(split)
    if isinstance(scene_size, bool) or not isinstance(scene_size, int) or scene_size < 1:
        raise RaycollectError(f"scene_size {scene_size!r}: the images a scene folder holds, "
                              f"a whole number >= 1")
    loc, reader, lines = finished(out, storage_options)
    _check(out, lines)
    catalog = Catalog(_assets_root(assets, metadata.read(loc)))
    # Pass 1: every frame's objects and their models, so obj_ids are known before writing.
    frames, left_out = [], {}
    for m in lines:
        chosen = []
        for key, obj in sorted(m["objects"].items(), key=lambda kv: kv[1]["id"]):
            if obj.get("pose") is None:
                continue
            where = f"frame {m['job_id']}: objects[{key!r}]"
            if any(link_key(key, part) in m["objects"] for part in obj.get("geoms") or ()):
                left_out.setdefault(key, 'its geoms are labelled one by one (masks="geoms")')
                continue
            try:
                chosen.append((obj, catalog.identity(where, key, obj)))
            except models.Unmodelled as e:
                left_out.setdefault(key, str(e))
        frames.append(chosen)
    for key, why in sorted(left_out.items()):
        log.info("bop export: %s left out of scene_gt: %s", key, why)
    obj_ids = {text: i + 1 for i, text in enumerate(sorted(catalog.uses))}
    _write_models(loc, catalog, obj_ids)
    scenes, job_ids = [], {}
    for first in range(0, len(lines), scene_size):
        scene_id = first // scene_size
        scene = f"{BOP_DIR}/{split}/{scene_id:06d}"
        cameras, gts, infos = {}, {}, {}
        for im, (m, chosen) in enumerate(zip(lines[first:first + scene_size],
                                             frames[first:first + scene_size])):
            cameras[str(im)], gts[str(im)], infos[str(im)] = _frame(loc, reader, scene, im, m,
                                                                    chosen, obj_ids)
            job_ids.setdefault(str(scene_id), {})[str(im)] = m["job_id"]
            if first == 0 and im == 0:
                _write_json(loc, f"{BOP_DIR}/camera.json",
                            _camera(m["camera"], cameras["0"]["depth_scale"]))
        for name, doc in (("scene_camera.json", cameras), ("scene_gt.json", gts),
                          ("scene_gt_info.json", infos)):
            _write_json(loc, f"{scene}/{name}", doc)
        scenes.append(scene)
    _write_json(loc, f"{BOP_DIR}/{split}/job_ids.json", job_ids)
    return f"{loc.url}/{scenes[0]}"


def _camera(cam: dict, scale: float) -> dict:
    K = np.asarray(cam["K"], dtype=np.float64)
    return {"cx": float(K[0, 2]), "cy": float(K[1, 2]), "fx": float(K[0, 0]),
            "fy": float(K[1, 1]), "width": int(cam["width"]), "height": int(cam["height"]),
            "depth_scale": scale}


def _write_models(loc, catalog: Catalog, obj_ids: dict[str, int]) -> None:
    infos, named = {}, {}
    for text, obj_id in obj_ids.items():
        mesh, normals = catalog.mesh(text)
        loc.write(f"{BOP_DIR}/models/obj_{obj_id:06d}.ply", models.ply_bytes(mesh, normals))
        infos[str(obj_id)] = models.model_info(mesh.vertices)
        use = catalog.uses[text]
        named[str(obj_id)] = {"model": use["model"], "keys": sorted(use["keys"]),
                              "classes": sorted(use["classes"])}
    _write_json(loc, f"{BOP_DIR}/models/models_info.json", infos)
    _write_json(loc, f"{BOP_DIR}/obj_ids.json", named)


def _frame(loc, reader, scene: str, im: int, m: dict, chosen: list, obj_ids: dict) -> tuple:
    cam = m["camera"]
    image = m["files"]["image"]
    if image.endswith(".png") and not m.get("shard"):
        loc.write(f"{scene}/rgb/{im:06d}.png", reader.bytes(m, "image"))
    else:  # image_format webp or npy, or a shard's member: BOP's rgb/ holds PNG files
        loc.write(f"{scene}/rgb/{im:06d}.png", png_bytes(reader.load(m, "image")))
    depth = reader.load(m, "depth")
    scale = depth_scale(depth)
    depth_png = depth_mm(depth, scale)
    loc.write(f"{scene}/depth/{im:06d}.png", png_bytes(depth_png))
    w2c = world_to_camera(cam["matrix"])
    camera = {"cam_K": np.asarray(cam["K"], dtype=float).ravel().tolist(), "depth_scale": scale,
              "cam_R_w2c": w2c[:3, :3].ravel().tolist(),
              "cam_t_w2c": (w2c[:3, 3] * MM_PER_M).tolist()}
    mask = reader.load(m, "mask")
    amodal = reader.load(m, "amodal")
    gt, info = [], []
    for k, (obj, text) in enumerate(chosen):
        m2c = w2c @ np.asarray(obj["pose"], dtype=np.float64)
        gt.append({"obj_id": obj_ids[text], "cam_R_m2c": rotation(m2c[:3, :3]).ravel().tolist(),
                   "cam_t_m2c": (m2c[:3, 3] * MM_PER_M).tolist()})
        visib = mask == obj["id"]
        whole = amodal.get(int(obj["id"]))
        whole = visib.copy() if whole is None else whole | visib  # what is seen is in it
        px_visib, px_all = int(visib.sum()), int(obj["px_all"])
        seen = px_visib > 0  # calc_gt_info gives both boxes only for an object it sees
        info.append({"bbox_obj": bop_box(obj["bbox_all"]) if seen else list(NO_BOX),
                     "bbox_visib": bop_box(box(visib)) if seen else list(NO_BOX),
                     "px_count_all": px_all,
                     "px_count_valid": int((whole & (depth_png > 0)).sum()),
                     "px_count_visib": px_visib,
                     "visib_fract": px_visib / px_all if px_all else 0.0})
        loc.write(f"{scene}/mask/{im:06d}_{k:06d}.png", png_bytes(whole.astype(np.uint8) * MASK_ON))
        loc.write(f"{scene}/mask_visib/{im:06d}_{k:06d}.png",
                  png_bytes(visib.astype(np.uint8) * MASK_ON))
    return camera, gt, info


def _write_json(loc, key: str, doc) -> None:
    loc.write(key, json.dumps(doc, indent=1).encode("utf-8"))

