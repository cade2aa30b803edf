"""Robot animation vs camera-only jobs on the same robot (issue goal: >= 0.8).

pybullet_data's KUKA iiwa in a Z-up world, 1 worker, 320x240. Animation: the camera is fixed
and every job sets new joint values (the page applies them to the loaded robot: no reload).
Camera-only: the joints are fixed and every job moves the camera. Rounds alternate; medians.

    .venv/bin/python scripts/bench/bench_robots.py [--jobs 112] [--rounds 3] [--masks]
"""

from __future__ import annotations

import argparse
import math
import shutil
import statistics
import tempfile
import time
from pathlib import Path

import pybullet_data
import ray
from vuer.schemas import AmbientLight, DirectionalLight, Urdf

import raycollect as rc


def scene(p):
    return [AmbientLight(key="amb", intensity=0.8),
            DirectionalLight(key="sun", position=[2, -3, 5], intensity=2.0),
            Urdf(key="kuka", src=rc.asset("kuka_iiwa/model.urdf"), jointValues=p["joints"])]


def cam(a):
    eye = [2.2 * math.cos(a), 2.2 * math.sin(a), 1.3]
    return {"matrix": rc.look_at(eye, [0, 0, 0.6], up=(0, 0, 1)).tolist(), "fov": 50,
            "width": 320, "height": 240}


def jobs(kind: str, n: int, tag: int) -> list[dict]:
    out = []
    for i in range(n):
        t = i / n
        if kind == "animation":
            joints = {f"lbr_iiwa_joint_{j}": 0.8 * math.sin(2 * math.pi * t + j) for j in (1, 2, 4, 6)}
            out.append({"tag": tag, "i": i, "joints": joints, "camera": cam(0.4)})
        else:
            out.append({"tag": tag, "i": i, "joints": {"lbr_iiwa_joint_2": 0.5},
                        "camera": cam(2 * math.pi * t)})
    return out


def rate(kind, n, tag, assets, masks) -> float:
    # "i" is a label the scene ignores, so camera-only jobs share one scene.
    with rc.render(jobs(kind, n, tag), scene=scene, workers=1, assets=assets, up="z",
                   masks=masks, depth=masks, progress=False) as run:
        stamps = [time.perf_counter() for _ in run]
    assert run.summary["failed"] == 0, run.failures
    return (len(stamps) - 1) / (stamps[-1] - stamps[0])


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--jobs", type=int, default=112)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--masks", action="store_true", help="with depth, masks and labels")
    args = ap.parse_args()
    assets = Path(tempfile.mkdtemp(prefix="rc-bench-robots-"))
    shutil.copytree(Path(pybullet_data.getDataPath()) / "kuka_iiwa", assets / "kuka_iiwa")
    ray.init(num_cpus=2, include_dashboard=False, configure_logging=False, log_to_driver=False)
    rates = {"animation": [], "camera-only": []}
    try:
        for r in range(args.rounds):
            for kind in rates:
                rates[kind].append(rate(kind, args.jobs, r, str(assets), args.masks))
            print(f"round {r + 1}: " + ", ".join(f"{k} {v[-1]:.1f}" for k, v in rates.items())
                  + " frames/s")
    finally:
        ray.shutdown()
        shutil.rmtree(assets, ignore_errors=True)
    anim, cam_only = (statistics.median(rates[k]) for k in ("animation", "camera-only"))
    passes = "rgb+depth+masks+labels" if args.masks else "rgb"
    print(f"raycollect robot animation benchmark: KUKA iiwa, {args.jobs} jobs at 320x240, "
          f"1 worker, {passes}")
    print(f"  R1 animation vs camera-only  {anim / cam_only:.2f}  {anim:.1f} fps new joint values "
          f"every job / {cam_only:.1f} fps new camera every job  (target >= 0.8)")


if __name__ == "__main__":
    main()
