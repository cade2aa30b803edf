"""The assets folder: meshes, point clouds, URDFs and textures that scenes load by URL.

`rc.render(..., assets=DIR)` makes every render worker serve DIR read-only at /workspace/ on
its loopback port (raycollect/render/server.py), so a scene says `Obj(src=rc.asset("bunny.obj"))`,
which is `"/workspace/bunny.obj"`.

How DIR reaches the workers: a folder of up to ASSETS_SHIP_LIMIT bytes is zipped once by the
driver and put in Ray's object store; each node unpacks it once (keyed by the zip's digest)
and its workers serve that copy, so the same run works on one machine and on a cluster
without a shared filesystem. A larger folder is not copied: it must exist at the same path
on every node (a shared filesystem), and a worker on a node that lacks it fails at start
with an error naming the node.
"""

from __future__ import annotations

import hashlib
import io
import logging
import os
import shutil
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

from . import urdf
from .errors import AssetsError, InvalidJob
from .scene import skin_bones_file, skybox_faces

# Folders up to this size are shipped to every node through the object store; larger ones
# must exist at the same path on every node.
ASSETS_SHIP_LIMIT = 256 * 2**20

log = logging.getLogger(__name__)

URL_PREFIX = "/workspace/"


def asset(path: str) -> str:
    """The URL a scene uses for a file of the assets folder: `asset("meshes/a.obj")` is
    "/workspace/meshes/a.obj"."""
    rel = PurePosixPath(str(path).replace(os.sep, "/").lstrip("/"))
    if any(part == ".." for part in rel.parts):
        raise ValueError(f"asset path {path!r} leaves the assets folder")
    return URL_PREFIX + str(rel)


@dataclass(frozen=True)
class Assets:
    """What a worker needs to serve the folder: where it is, and how to get it."""

    path: str  # the folder as the driver saw it (absolute)
    size: int
    digest: str | None = None  # of the shipped zip; None when the folder is shared
    ref: Any = None  # ObjectRef of the zip bytes, owned by the driver

    @property
    def shipped(self) -> bool:
        return self.ref is not None


def prepare(folder: str | os.PathLike, limit: int = ASSETS_SHIP_LIMIT) -> Assets:
    """Driver side: check the folder and, when it is small enough, ship it through Ray."""
    import ray

    root = Path(folder).expanduser().resolve()
    if not root.is_dir():
        raise AssetsError(f"assets folder {folder!s} does not exist or is not a directory")
    files = _files(root)
    size = sum(p.stat().st_size for p in files)
    if size > limit:
        log.info("assets %s: %.0f MB, over the %.0f MB shipping limit: every node must have "
                 "it at that path", root, size / 2**20, limit / 2**20)
        return Assets(str(root), size)
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_STORED) as z:
        for p in files:
            z.write(p, p.relative_to(root).as_posix())
    data = buf.getvalue()
    digest = hashlib.blake2b(data, digest_size=12).hexdigest()
    log.info("assets %s: %d files, %.1f MB, shipped through the object store (%s)",
             root, len(files), size / 2**20, digest)
    return Assets(str(root), size, digest, ray.put(data))


def _files(root: Path) -> list[Path]:
    """Regular files below root, following no link that leads outside it."""
    out = []
    for dirpath, dirnames, filenames in os.walk(root):
        for name in sorted(filenames):
            p = Path(dirpath) / name
            real = p.resolve()
            if not real.is_file() or not real.is_relative_to(root):
                log.warning("assets: skipping %s (not a regular file inside %s)", p, root)
                continue
            out.append(p)
        dirnames[:] = [d for d in sorted(dirnames) if (Path(dirpath) / d).resolve().is_relative_to(root)]
    return out


async def materialize(assets: Assets, node: str) -> Path:
    """Worker side: the local folder to serve. Unpacks a shipped folder once per node."""
    if not assets.shipped:
        root = Path(assets.path)
        if not root.is_dir():
            raise AssetsError(f"assets folder {assets.path} does not exist on node {node}; "
                              f"folders over {ASSETS_SHIP_LIMIT // 2**20} MB are not copied: "
                              f"put it at that path on every node (a shared filesystem)")
        return root
    cache = Path(tempfile.gettempdir()) / "raycollect-assets" / assets.digest
    if cache.is_dir():
        return cache
    data = await assets.ref
    cache.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{assets.digest}-", dir=cache.parent))
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as z:
            z.extractall(tmp)
        os.rename(tmp, cache)  # atomic: another worker of this node may race us
    except OSError:
        if not cache.is_dir():
            raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return cache


# Texture images a primitive's `material` names (vuer's client loads them with three.js's
# TextureLoader: `map`, and the height material's normal and displacement maps).
MATERIAL_MAPS = ("map", "normalMap", "displacementMap")


def _material_maps(element) -> list[str]:
    material = getattr(element, "material", None)
    if not isinstance(material, dict):
        return []
    return [material[p] for p in MATERIAL_MAPS if isinstance(material.get(p), str)]


def sources(element) -> list[str]:
    """Every asset URL an element and its children name (src and mtl props, material maps,
    a skybox's faces, a skin's bones file)."""
    out = []
    for value in [getattr(element, "src", None), getattr(element, "mtl", None),
                  *_material_maps(element), *skybox_faces(element), *skin_bones_file(element)]:
        if isinstance(value, str) and value.startswith(URL_PREFIX):
            out.append(value)
    for child in getattr(element, "children", None) or []:
        out += sources(child)
    return out


def is_model(element) -> bool:
    """True if the element or a child loads something (a src, model data inline, a texture
    image in its material, a skybox's faces): the worker then waits until it has loaded
    before any grab, so no frame shows a primitive whose texture is still on its way."""
    if any(isinstance(getattr(element, p, None), (str, bytes)) for p in ("src", "text", "buff")):
        return True
    if _material_maps(element) or skybox_faces(element):
        return True
    return any(is_model(c) for c in getattr(element, "children", None) or [])


def check_sources(job_id: str, elements: list, root: Path | None,
                  aliases: tuple[Path, ...] = ()) -> dict:
    """Fail a job whose scene names an asset that is not in the folder, or a URDF or OBJ that
    references a file the folder lacks, before any browser time is spent on it. Returns the
    robots of the scene's URDFs by element key (raycollect/urdf.py)."""
    robots = {}
    for i, el in enumerate(elements):
        for url in sources(el):
            if root is None:
                raise InvalidJob(job_id, f"scene[{i}].src", f"{url} needs an assets folder "
                                 f"(rc.render(..., assets=DIR), raycollect run --assets DIR)")
            path = local_path(url, root)
            if path is None:
                raise InvalidJob(job_id, f"scene[{i}].src", f"{url}: no file "
                                 f"{url[len(URL_PREFIX):].split('?', 1)[0]!r} in the assets folder")
            suffix = path.suffix.lower()
            if suffix == ".urdf" and getattr(el, "tag", "") == "Urdf" and url == getattr(el, "src", None):
                robots[str(el.key)] = urdf.check(job_id, f"scene[{i}].src", path, root, aliases)
            elif suffix == ".mtl":
                _check_mtl(job_id, f"scene[{i}].mtl", path, root)
    return robots


def local_path(url: str, root: Path) -> Path | None:
    """The file of the assets folder that a /workspace/ URL names, or None."""
    rel = url[len(URL_PREFIX):].split("?", 1)[0]
    path = (root / rel).resolve()
    return path if path.is_relative_to(root.resolve()) and path.is_file() else None


# MTL statements that name a texture file (its last token; options may come before it).
_MTL_MAPS = ("map_ka", "map_kd", "map_ks", "map_ke", "map_ns", "map_d", "map_bump", "bump",
             "disp", "decal", "norm", "map_pr", "map_pm", "map_ps", "refl")


def mtl_textures(path: Path) -> list[str]:
    """The texture files an MTL names, as written (relative to the MTL)."""
    refs = []
    with open(path, encoding="utf-8", errors="replace") as f:
        for line in f:
            head, _, rest = line.strip().partition(" ")
            if head.lower() in _MTL_MAPS and rest.split():
                refs.append(rest.split()[-1])
    return refs


def _check_mtl(job_id: str, field: str, path: Path, root: Path) -> None:
    """Every texture of an MTL the page loads (an Obj's `mtl`) must be in the folder. An
    OBJ's own `mtllib` lines are not checked: three.js's OBJLoader, which the client uses
    for Obj elements and URDF meshes alike, never reads them (pybullet_data's Panda ships
    OBJs whose mtllib names files it does not ship, and renders)."""
    path, root = path.resolve(), root.resolve()
    for ref in mtl_textures(path):
        target = (path.parent / ref.replace("\\", "/")).resolve()
        if not target.is_relative_to(root) or not target.is_file():
            raise InvalidJob(job_id, field, f"{path.relative_to(root)} references {ref!r}, which "
                             f"is not a file in the assets folder")
