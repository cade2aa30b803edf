"""A BOP-style training set: objects dropped on a textured floor in a room with random lights,
photographed from cameras on a shell; RGB, depth, instance and amodal masks, labels with
classes, exported as BOP.

    python examples/bop_generator.py --out OUT --scenes N --views V --seed S
        [--workers W] [--objects DIR] [--size WxH] [--copies C] [--shard-size N]

Each scene drops every object class (`--copies` instances of each) onto the floor with
pybullet (raycollect/physics.py), on the driver, once per scene; the resting poses go into the
scene's params, so every view of the scene, on any worker, shows the same poses. Lights,
floor and wall textures and colours are drawn from `rc.rng(params)` (raycollect/seeding.py),
cameras from `rc.sample.shell`. The same --seed gives the same frames and labels byte for
byte, whatever --workers is (tests/test_kit.py checks it); another seed, others.

Objects: pybullet_data's (8 classes: a duck, a mug, a teddy, a torus, three toys and a blob),
or every .obj / .stl file in --objects DIR (a class per file, named by its stem; metres, or
--scale). Every scene holds every class, so every frame has the same element keys in the same
order: the instance ids the queue hands out (first come, first served) are then the same in
every run, however many workers race for them.

Writes a raycollect output at OUT (its assets folder beside it, OUT-assets) and its BOP
export in OUT/bop; prints the run's rate.
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import math
import os
import shutil
import sys
import time
from pathlib import Path

from vuer.schemas import Obj, Plane, Stl

import raycollect as rc
from raycollect import physics, randomize

ROOM = 3.0  # m, side of the square room; the walls are WALL_HEIGHT high
WALL_HEIGHT = 2.0
DROP_AREA = 0.45  # m, side of the square of floor the objects are dropped onto
SUPPORT = 1.2  # m, side of the floor's square that pybullet simulates (what bounces stays on it)
FOV = 50.0
CAMERA_RADIUS = (0.45, 0.8)  # m from the centre of the drop square
CAMERA_ELEVATION = (30.0, 85.0)  # degrees above the floor
CAMERA_INPLANE = (-20.0, 20.0)  # degrees of roll, as BOP's training images have
LOOK_AT = (0.0, 0.0, 0.03)
LIGHT_INTENSITY = {"directional": (0.6, 2.5), "point": (1.0, 6.0), "spot": (2.0, 10.0)}
TEXTURE_REPEAT = (10.0, 30.0)  # tiles across the room: 10-30 cm each

# pybullet_data's objects: class -> (visual mesh, collision mesh or None, scale, concave),
# each a few centimetres to 12 cm. The files they need (MTLs, textures) are copied with them.
PYBULLET_MODELS = {
    "duck": ("duck.obj", "duck_vhacd.obj", 0.05, False),
    "mug": ("objects/mug.obj", "objects/mug_col.obj", 1.0, False),
    "teddy": ("teddy2_VHACD_CHs.obj", None, 0.1, False),
    "torus": ("torus/torus_textured.obj", None, 0.08, True),
    "toy_cube": ("toys/cube.obj", None, 1.0, False),
    "toy_cylinder": ("toys/cylinder.obj", None, 1.0, False),
    "toy_prism": ("toys/prism.obj", None, 1.0, False),
    "blob": ("random_urdfs/000/000.obj", None, 0.015, False),
}
PYBULLET_FILES = ["duck.obj", "duck.mtl", "duckCM.png", "duck_vhacd.obj", "objects/mug.obj",
                  "objects/mug_col.obj", "teddy2_VHACD_CHs.obj", "torus/torus_textured.obj",
                  "torus/torus_textured.mtl", "cube.png", "toys/cube.obj", "toys/cube.mtl",
                  "toys/cylinder.obj", "toys/cylinder.mtl", "toys/prism.obj", "toys/prism.mtl",
                  "random_urdfs/000/000.obj", "random_urdfs/000/000.mtl"]
# Floor and wall textures, pybullet_data's images.
PYBULLET_TEXTURES = ["checker_grid.jpg", "checker_blue.png", "table/table.png", "tray/tray.jpg",
                     "uvmap.png", "tex256.png", "jenga/jenga.png", "duckCM.png"]


@dataclasses.dataclass(frozen=True)
class Model:
    cls: str
    mesh: str  # path inside the assets folder
    collision: str | None
    scale: float
    concave: bool


def scene(params: dict) -> list:
    """One scene: the room (floor and four walls, textured), random lights, the objects at
    their resting poses (params["poses"]). A pure function of the params."""
    g = rc.rng(params, "looks")
    textures = params["textures"]
    floor = randomize.material(g, textures=textures, repeat=TEXTURE_REPEAT, value=(0.6, 1.0),
                               saturation=(0.0, 0.4))
    walls = randomize.material(g, textures=textures, repeat=TEXTURE_REPEAT, value=(0.5, 1.0),
                               saturation=(0.0, 0.6))
    h = ROOM / 2
    elements = [
        randomize.ambient(g, intensity=(0.2, 0.7)),
        *randomize.lights(g, count=(1, 3), intensity=LIGHT_INTENSITY, center=[0, 0, 0],
                          radius=(1.0, 1.3), elevation=(35, 85), up="z"),
        Plane(key="floor", args=[ROOM, ROOM], **floor),
        # Planes face their local +Z and are drawn from the front only: each wall is turned
        # to face the room's centre (three.js Euler angles, XYZ: R = Rx Ry Rz).
        Plane(key="wall-x0", args=[ROOM, WALL_HEIGHT], position=[-h, 0, WALL_HEIGHT / 2],
              rotation=[math.pi / 2, math.pi / 2, 0], **walls),
        Plane(key="wall-x1", args=[ROOM, WALL_HEIGHT], position=[h, 0, WALL_HEIGHT / 2],
              rotation=[math.pi / 2, -math.pi / 2, 0], **walls),
        Plane(key="wall-y0", args=[ROOM, WALL_HEIGHT], position=[0, -h, WALL_HEIGHT / 2],
              rotation=[-math.pi / 2, 0, 0], **walls),
        Plane(key="wall-y1", args=[ROOM, WALL_HEIGHT], position=[0, h, WALL_HEIGHT / 2],
              rotation=[math.pi / 2, 0, 0], **walls),
    ]
    for key, (src, scale) in params["models"].items():
        position, quaternion = params["poses"][key]
        kind = Stl if src.lower().endswith(".stl") else Obj
        elements.append(kind(key=key, src=src, position=position, quaternion=quaternion,
                             scale=[scale] * 3))
    return elements


def prepare_assets(assets: Path, objects: str | None, scale: float) -> list[Model]:
    """Copy the meshes and textures the scenes load into the assets folder; the models."""
    import pybullet_data

    pd = Path(pybullet_data.getDataPath())
    for name in PYBULLET_TEXTURES + ([] if objects else PYBULLET_FILES):
        dst = assets / "pb" / name
        if not dst.exists():
            dst.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(pd / name, dst)
    if objects is None:
        return [Model(cls, f"pb/{mesh}", coll and f"pb/{coll}", s, concave)
                for cls, (mesh, coll, s, concave) in PYBULLET_MODELS.items()]
    src = Path(objects)
    meshes = sorted(p for p in src.iterdir() if p.suffix.lower() in (".obj", ".stl"))
    if not meshes:
        sys.exit(f"--objects {objects}: no .obj or .stl files")
    dst = assets / "user"
    if not dst.exists():
        shutil.copytree(src, dst)  # with the MTLs and textures the OBJs name
    return [Model(p.stem, f"user/{p.name}", None, scale, False) for p in meshes]


def keys(models: list[Model], copies: int) -> dict[str, Model]:
    """Element key -> model: the class name, or class-0, class-1... with copies."""
    return {(m.cls if copies == 1 else f"{m.cls}-{c}"): m for m in models for c in range(copies)}


def jobs(n_scenes: int, views: int, seed: int, width: int, height: int,
         bodies: dict[str, Model], assets: Path, textures: list[str]) -> list[dict]:
    """Every scene's views. The physics runs here, once per scene."""
    out = []
    for i in range(n_scenes):
        poses = physics.drop(
            [physics.Body(k, str(assets / m.mesh), m.scale,
                          collision=m.collision and str(assets / m.collision), concave=m.concave)
             for k, m in bodies.items()],
            on=physics.Support(size=(SUPPORT, SUPPORT)), area=(DROP_AREA, DROP_AREA),
            seed={"seed": seed, "scene": i})
        params = {"scene": i, "seed": seed, "textures": textures,
                  "models": {k: [rc.asset(m.mesh), m.scale] for k, m in bodies.items()},
                  "poses": {k: [list(p.position), list(p.quaternion)] for k, p in poses.items()}}
        cams = rc.sample.shell(LOOK_AT, CAMERA_RADIUS, CAMERA_ELEVATION, inplane=CAMERA_INPLANE,
                               n=views, seed=rc.rng(params, "cameras"), up="z")
        for m in cams:
            out.append({**params, "camera": {"matrix": m.tolist(), "fov": FOV, "width": width,
                                             "height": height}})
    return out


def render_options(bodies: dict[str, Model]) -> dict:
    """RGB, depth, instance masks with labels, amodal masks (BOP's mask/ and visib_fract), and
    each object's class (its model's name; the room's elements are their own keys)."""
    return {"depth": True, "masks": True, "amodal": True, "up": "z",
            "classes": {k: m.cls for k, m in bodies.items()}}


def main(argv=None) -> rc.Run:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", required=True)
    ap.add_argument("--scenes", type=int, default=10)
    ap.add_argument("--views", type=int, default=25)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--workers", default="2")
    ap.add_argument("--objects", default=None, help="a folder of .obj/.stl meshes, one class each")
    ap.add_argument("--scale", type=float, default=1.0, help="of the --objects meshes")
    ap.add_argument("--copies", type=int, default=1, help="instances of each class per scene")
    ap.add_argument("--size", default="640x480")
    ap.add_argument("--shard-size", type=int, default=0)
    ap.add_argument("--views-per-update", type=int, default=None,
                    help="views a worker renders per scene update [raycollect's default]")
    ap.add_argument("--assets", default=None, help="[OUT-assets]")
    ap.add_argument("--no-export", action="store_true")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    try:
        width, height = (int(v) for v in args.size.lower().split("x"))
    except ValueError:
        sys.exit(f"--size takes WxH, got {args.size!r}")
    if args.scenes < 1 or args.views < 1 or args.copies < 1:
        sys.exit("--scenes, --views and --copies must be >= 1")
    out = Path(args.out)
    assets = Path(args.assets or f"{out}-assets")
    assets.mkdir(parents=True, exist_ok=True)
    models = prepare_assets(assets, args.objects, args.scale)
    bodies = keys(models, args.copies)
    textures = randomize.textures(assets, "pb")
    t0 = time.perf_counter()
    job_list = jobs(args.scenes, args.views, args.seed, width, height, bodies, assets, textures)
    physics_s = time.perf_counter() - t0
    workers = int(args.workers) if args.workers.isdigit() else args.workers
    opts = render_options(bodies)
    if args.views_per_update:
        opts["views_per_update"] = args.views_per_update
    run = rc.render(job_list, scene=scene, workers=workers, out=str(out), assets=str(assets),
                    shard_size=args.shard_size, progress=False, **opts)
    t1 = time.perf_counter()
    with run:
        for _ in run:
            pass
    render_s = time.perf_counter() - t1
    s = run.summary
    cores = len(os.sched_getaffinity(0))
    frames = s["rendered"]
    print(f"{frames} frames ({args.scenes} scenes x {args.views} views, {width}x{height}, "
          f"rgb + depth + masks + amodal) in {render_s:.1f} s with {workers} workers on {cores} cores: "
          f"{frames / render_s:.2f} frames/s, "
          f"{cores * render_s / 3600 / max(frames, 1) * 1e6:.0f} core-hours per million frames; "
          f"physics {physics_s:.2f} s for {args.scenes} scenes; {s['failed']} failed")
    if s["failed"]:
        sys.exit(1)
    if not args.no_export:
        print(f"bop: {rc.export(str(out), 'bop')}")
    return run


if __name__ == "__main__":
    main()
