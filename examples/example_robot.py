"""The real example: pybullet_data's Franka Panda, as it ships (package:// meshes), at a table
with objects from pybullet_data, in its own Z-up world; the arm moves every job. Renders RGB,
depth and masks with labels, then exports COCO and BOP.

    .venv/bin/python examples/example_robot.py [--out renders-robot] [--frames 48]
"""

from __future__ import annotations

import argparse
import logging
import math
import shutil
from pathlib import Path

import pybullet_data
from vuer.schemas import AmbientLight, DirectionalLight, Urdf

import raycollect as rc
from raycollect.output.export import export

PD = Path(pybullet_data.getDataPath())
# What the scene loads, copied from pybullet_data unchanged.
FILES = ["franka_panda", "table", "tray", "lego", "duck_vhacd.urdf", "duck.obj",
         "duckCM.png", "duck.mtl", "cube_small.urdf", "cube.obj", "cube.png"]
TABLE_TOP = 0.625  # table.urdf's top, metres above the floor


def scene(params: dict) -> list:
    """The Panda on the floor beside a table that holds a tray, a duck, a brick and a cube."""
    top = TABLE_TOP
    return [
        AmbientLight(key="ambient", intensity=0.7),
        DirectionalLight(key="sun", position=[1.5, -2.0, 4.0], intensity=2.0),
        Urdf(key="panda", src=rc.asset("franka_panda/panda.urdf"), position=[-0.45, 0, 0],
             jointValues=params["joints"]),
        Urdf(key="table", src=rc.asset("table/table.urdf"), position=[0.55, 0, 0]),
        Urdf(key="tray", src=rc.asset("tray/traybox.urdf"), position=[0.6, 0.15, top]),
        Urdf(key="duck", src=rc.asset("duck_vhacd.urdf"), position=[0.3, -0.25, top],
             rotation=[0, 0, 0.6]),
        Urdf(key="brick", src=rc.asset("lego/lego.urdf"), position=[0.35, 0.3, top + 0.01]),
        Urdf(key="cube", src=rc.asset("cube_small.urdf"), position=[0.25, 0.05, top + 0.025]),
    ]


def jobs(frames: int) -> list[dict]:
    """The arm sweeps and bends while the camera circles the scene slowly."""
    out = []
    for i in range(frames):
        t = i / max(frames - 1, 1)
        joints = {"panda_joint1": 1.2 * math.sin(2 * math.pi * t), "panda_joint2": 0.3 + 0.4 * t,
                  "panda_joint4": -2.2 + 0.8 * math.sin(math.pi * t), "panda_joint6": 1.8,
                  "panda_finger_joint1": 0.04, "panda_finger_joint2": 0.04}
        a = -2.3 + 1.0 * t
        eye = [0.1 + 2.2 * math.cos(a), 2.2 * math.sin(a), 1.5]
        out.append({"frame": i, "joints": joints,
                    "camera": {"matrix": rc.look_at(eye, [0.1, 0, 0.45], up=(0, 0, 1)).tolist(),
                               "fov": 50, "width": 320, "height": 240}})
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", default="renders-robot")
    ap.add_argument("--assets", default="robot_assets")
    ap.add_argument("--frames", type=int, default=48)
    ap.add_argument("--workers", default=2)
    args = ap.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    assets = Path(args.assets)
    for name in FILES:
        src, dst = PD / name, assets / name
        if not dst.exists():
            (shutil.copytree if src.is_dir() else shutil.copy)(src, dst)
    run = rc.render(jobs(args.frames), scene=scene, out=args.out, assets=str(assets),
                    workers=int(args.workers) if str(args.workers).isdigit() else args.workers,
                    depth=True, masks=True, amodal=True, up="z")  # amodal: BOP's whole silhouettes
    with run:
        for _ in run:
            pass
    print(run.summary.line() if hasattr(run.summary, "line") else run.summary)
    for fmt in ("coco", "bop"):
        print(f"{fmt}: {export(args.out, fmt, categories={'duck': 'duck', 'brick': 'lego'} if fmt == 'coco' else None)}")
    print(f"contact sheet: {Path(args.out) / 'contact_sheet.png'}")


if __name__ == "__main__":
    main()
