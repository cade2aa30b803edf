"""robosuite's robots and arenas as one MJCF file, without robosuite's Python package.

robosuite composes its scenes in Python (an arena, robots mounted in it, objects) from MJCF
files its wheel ships under `robosuite/models/assets`. Its package cannot be installed beside
raycollect's environment here: its requirements (numba, mink, qpsolvers, opencv-python,
pynput) make pip replace numpy 2.x with 1.26.4 (docs/mjcf-sweep.md). Its MJCF files load in
MuJoCo as they are, so this module mounts a robot in an arena with MuJoCo's own model editing
(`mujoco.MjSpec`: `attach_body` at a frame, names prefixed `robot0_` as robosuite does) and
writes the result as one file for `rc.mjcf`:

    assets = robosuite.assets_dir()   # an installed robosuite, or $RAYCOLLECT_ROBOSUITE_ASSETS
    world = rc.mjcf(robosuite.scene(assets, robot="panda", arena="table_arena"))

Files the two MJCFs name are made absolute (each is relative to its own file's folder), so the
written file loads from anywhere; it is keyed by a digest of its text, under the system temp
dir, and written once.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import tempfile
from pathlib import Path

ENV = "RAYCOLLECT_ROBOSUITE_ASSETS"
# Where robosuite's own table arena mounts a robot's base (its TableArena, for a table
# 0.8 m away and 0.912 m high with the default table offset), and the name prefix it gives.
MOUNT = {"table_arena": (-0.56, 0.0, 0.912), "empty_arena": (0.0, 0.0, 0.0)}
PREFIX = "robot0_"
ROOT_NAME = "raycollect-robosuite"


def assets_dir() -> Path | None:
    """robosuite's `models/assets` folder: $RAYCOLLECT_ROBOSUITE_ASSETS, or the installed
    package's (found without importing it), or None."""
    if os.environ.get(ENV):
        return Path(os.environ[ENV])
    spec = importlib.util.find_spec("robosuite")
    if spec and spec.submodule_search_locations:
        path = Path(list(spec.submodule_search_locations)[0]) / "models" / "assets"
        if path.is_dir():
            return path
    return None


def _absolute(items, folder: Path) -> None:
    for item in items:
        if item.file and not os.path.isabs(item.file):
            item.file = str((folder / item.file).resolve())


def scene(assets: str | os.PathLike, robot: str = "panda", arena: str = "table_arena",
          mount: tuple[float, float, float] | None = None) -> Path:
    """The MJCF file of `robot` (robots/<robot>/robot.xml) mounted in `arena`
    (arenas/<arena>.xml) at `mount` (robosuite's place for that arena by default)."""
    import mujoco

    assets = Path(assets)
    arena_file = assets / "arenas" / f"{arena}.xml"
    robot_file = assets / "robots" / robot / "robot.xml"
    world = mujoco.MjSpec.from_file(str(arena_file))
    arm = mujoco.MjSpec.from_file(str(robot_file))
    for spec, path in ((world, arena_file), (arm, robot_file)):
        folder = path.parent
        _absolute(spec.meshes, folder / (spec.meshdir or ""))
        _absolute(spec.textures, folder / (spec.texturedir or ""))
        _absolute(spec.hfields, folder)
    where = mount if mount is not None else MOUNT.get(arena, (0.0, 0.0, 0.0))
    frame = world.worldbody.add_frame(pos=list(where))
    frame.attach_body(arm.worldbody.bodies[0], PREFIX, "")
    world.compile()  # fails here, with MuJoCo's message, if the two do not fit together
    text = world.to_xml()
    digest = hashlib.blake2b(text.encode(), digest_size=10).hexdigest()
    out = Path(tempfile.gettempdir()) / ROOT_NAME / f"{robot}-{arena}-{digest}.xml"
    if not out.exists():
        out.parent.mkdir(parents=True, exist_ok=True)
        tmp = out.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_text(text)
        os.replace(tmp, out)
    return out
