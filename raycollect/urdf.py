"""URDF files as robots ship them: `package://` and `file://` paths, joints and links.

A URDF from a ROS package or pybullet_data names its meshes `package://NAME/rest`, which the
Vuer client can only resolve with a `packages` string that fits one layout (a dict is dropped,
and `package://NAME/x` then becomes `/NAME/x`, outside the assets folder). So a render worker
resolves every path itself, the way ROS's package lookup and pybullet do:

- `package://NAME/rest`: from the URDF's own folder up to the assets root, the first folder
  that holds `NAME/rest`; or a folder that is itself called NAME and holds `rest` (the URDF's
  own package).
- `file:///abs/path`: a path inside the assets folder (as the driver saw it, or the copy a
  worker serves); anything else is outside the folder and refused.
- a relative path: next to the URDF, or else in the first folder above it (up to the assets
  root) that holds it, as pybullet looks.

and hands the page the URDF's text with every mesh and texture path rewritten relative to
the URDF (the page fetches nothing it could not fetch before, from the same folder). When the
scene gives Vuer's own `packages` prop, the paths are left as they are: the user's mapping
wins. Either way an XML declaration the browser refuses (pybullet_data's `version="0.0"`)
is made 1.0.
"""

from __future__ import annotations

import os
import re
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path, PurePosixPath

from .errors import InvalidJob

PACKAGE = "package://"
FILE = "file://"
# Joint types a value can be set for (urdf-loader's setJointValue); fixed joints take none.
MOVABLE = ("revolute", "continuous", "prismatic")
# Attributes naming a file: <mesh filename=...> and <texture filename=...>.
_FILENAME = re.compile(r"(<\s*(?:mesh|texture)\b[^>]*?\bfilename\s*=\s*)([\"'])(.*?)\2", re.S)


@dataclass(frozen=True)
class Robot:
    """What raycollect needs of a URDF: its link names, its joints and their types, and the
    files its visuals reference (as written)."""

    name: str
    links: tuple[str, ...]
    joints: dict  # name -> type
    files: tuple[str, ...]

    @property
    def movable(self) -> list[str]:
        return [j for j, t in self.joints.items() if t in MOVABLE]


@lru_cache(maxsize=64)
def _parse(path: str, mtime: float) -> Robot:
    root = ET.fromstring(_clean(Path(path).read_text(encoding="utf-8", errors="replace")))
    if root.tag != "robot":
        raise ValueError(f"{path}: the root element is <{root.tag}>, not <robot>")
    links = tuple(l.get("name") for l in root.findall("link"))
    joints = {j.get("name"): j.get("type", "fixed") for j in root.findall("joint")}
    # What the page loads: visual meshes and textures (collision geometry is not drawn, and
    # robots ship collision meshes that reference files they do not ship).
    files = tuple(dict.fromkeys(
        [m.get("filename") for v in root.iter("visual") for m in v.iter("mesh")] +
        [t.get("filename") for t in root.iter("texture")]))
    files = tuple(f for f in files if f)
    return Robot(root.get("name", ""), links, joints, files)


def parse(path: Path) -> Robot:
    """The URDF at `path` (cached while the file is unchanged); ValueError if it is not one."""
    try:
        return _parse(str(path), path.stat().st_mtime)
    except ET.ParseError as e:
        raise ValueError(f"{path.name} is not valid XML: {e}") from None
    except UnicodeDecodeError as e:
        raise ValueError(f"{path.name} is not text: {e}") from None


def resolve(ref: str, urdf: Path, root: Path, aliases: tuple[Path, ...] = ()) -> Path | None:
    """The file inside `root` that a URDF's `ref` names, or None when it names nothing there.
    `aliases` are other absolute paths of the same folder (the driver's, before it was
    shipped), for `file://` references written against them."""
    root = root.resolve()
    here = urdf.parent
    if ref.startswith(PACKAGE):
        name, _, rest = ref[len(PACKAGE):].partition("/")
        return _upwards(here, root, lambda f: (f / name / rest, f / rest if f.name == name else None))
    if ref.startswith(FILE):
        path = Path(ref[len(FILE):])
        for base in (root, *aliases):
            try:
                rel = path.relative_to(base)
            except ValueError:
                continue
            candidate = root / rel
            return candidate if candidate.is_file() and _inside(candidate, root) else None
        return None
    # A relative path: next to the URDF, or, as pybullet looks, in a folder above it (up to
    # the root): pybullet_data's racecar_differential.urdf names differential/*.stl, a folder
    # beside its own.
    return _upwards(here, root, lambda f: (f / ref,))


def _upwards(here: Path, root: Path, candidates) -> Path | None:
    """The first file of `candidates(folder)` that exists, for `here` and each folder above it
    up to `root` (never outside it)."""
    folder = here.resolve()
    while True:
        for candidate in candidates(folder):
            if candidate is not None and candidate.is_file() and _inside(candidate, root):
                return candidate
        if folder == root or root not in folder.parents:
            return None
        folder = folder.parent


def _inside(path: Path, root: Path) -> bool:
    return path.resolve().is_relative_to(root)


def references(urdf: Path, root: Path, aliases: tuple[Path, ...] = ()) -> dict[str, Path | None]:
    """Every file the URDF references (meshes and textures), resolved: ref -> path or None."""
    return {ref: resolve(ref, urdf, root, aliases) for ref in parse(urdf).files}


# What pybullet reads and a browser's XML parser (or three's URDF loader) does not, all seen
# in pybullet_data: an XML declaration of version "0.0", blank lines before the declaration,
# a NUL byte after </robot>, and commas between the numbers of an xyz ("0.07, 0, -0.69",
# which the page would read as 0 0 -0.69).
_BAD_DECLARATION = re.compile(r"^<\?xml\s+version\s*=\s*([\"'])(?!1\.[01]\1)[^\"']*\1")
_TUPLE = re.compile(r"\b(xyz|rpy|scale|size)\s*=\s*([\"'])([^\"']*,[^\"']*)\2")


def _clean(text: str) -> str:
    text = text.strip().strip("\x00").strip()
    text = _BAD_DECLARATION.sub('<?xml version="1.0"', text, count=1)
    return _TUPLE.sub(lambda m: f"{m.group(1)}={m.group(2)}{m.group(3).replace(',', ' ')}"
                                f"{m.group(2)}", text)


def page_text(urdf: Path) -> str:
    """The URDF's text as pybullet reads it and the page can parse it (see _clean)."""
    return _clean(urdf.read_text(encoding="utf-8", errors="replace"))


def resolved_text(urdf: Path, root: Path, aliases: tuple[Path, ...] = ()) -> str:
    """`page_text` with every mesh and texture path made relative to the URDF itself, so the
    page needs no package mapping. Call after `check` (an unresolved path is kept)."""
    text = page_text(urdf)
    here = urdf.parent.resolve()

    def sub(m: re.Match) -> str:
        path = resolve(m.group(3), urdf, root, aliases)
        if path is None:
            return m.group(0)
        rel = PurePosixPath(os.path.relpath(path.resolve(), here).replace(os.sep, "/"))
        return f"{m.group(1)}{m.group(2)}{rel}{m.group(2)}"

    return _FILENAME.sub(sub, text)


def check(job_id: str, field: str, urdf: Path, root: Path,
          aliases: tuple[Path, ...] = ()) -> Robot:
    """The robot, or InvalidJob naming the URDF and the first file it references that is not
    in the assets folder."""
    try:
        robot = parse(urdf)
    except (OSError, ValueError) as e:
        raise InvalidJob(job_id, field, f"{urdf.name}: cannot read the URDF: {e}") from None
    for ref, path in references(urdf, root, aliases).items():
        if path is None:
            raise InvalidJob(job_id, field, f"{urdf.relative_to(root)} references {ref!r}, "
                             f"which is not a file in the assets folder")
    return robot


def joint_values(job_id: str, field: str, robot: Robot, given) -> dict:
    """A complete set of joint values for one job: every movable joint, 0 where the job names
    none, so a frame never depends on what the page showed before. Unknown names and values
    that are not numbers fail the job naming them."""
    if given is None:
        given = {}
    if not isinstance(given, dict):
        raise InvalidJob(job_id, field, f"must be a dict of joint name -> value, got "
                         f"{type(given).__name__}")
    unknown = sorted(set(given) - set(robot.joints))
    if unknown:
        raise InvalidJob(job_id, field, f"unknown joint(s) {', '.join(map(repr, unknown))} for "
                         f"robot {robot.name!r}; its joints: {', '.join(robot.joints)}")
    out = {j: 0.0 for j in robot.movable}
    for name, value in given.items():
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise InvalidJob(job_id, f"{field}[{name!r}]", f"must be a number, got {value!r}")
        if name in out:
            out[name] = float(value)
    return out
