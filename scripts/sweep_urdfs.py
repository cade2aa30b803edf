"""Every URDF in pybullet_data that pybullet itself loads, rendered by raycollect and by
pybullet from a few cameras: how many render, how many agree (mask IoU >= 0.95), and why each
other one does not. Not part of the test suite (it takes a while).

    .venv/bin/python scripts/sweep_urdfs.py [--limit N] [--cameras 2]
"""

from __future__ import annotations

import argparse
import math
from pathlib import Path

import numpy as np
import pybullet as pb
import pybullet_data
import ray
from vuer.schemas import AmbientLight, Urdf

import raycollect as rc
from raycollect.testing import reference

PD = Path(pybullet_data.getDataPath())
W, H, FOV, NEAR, FAR = 320, 240, 50.0, 0.05, 100.0
IOU_GOAL = 0.95


def loadable() -> list[tuple[str, np.ndarray, np.ndarray]]:
    """(URDF relative to pybullet_data, AABB min, AABB max) of every URDF pybullet loads."""
    out = []
    client = pb.connect(pb.DIRECT)
    for path in sorted(PD.rglob("*.urdf")):
        try:
            uid = pb.loadURDF(str(path), useFixedBase=True, physicsClientId=client)
        except pb.error:
            continue
        boxes = [pb.getAABB(uid, j, physicsClientId=client)
                 for j in range(-1, pb.getNumJoints(uid, physicsClientId=client))]
        lo = np.min([b[0] for b in boxes], 0)
        hi = np.max([b[1] for b in boxes], 0)
        pb.removeBody(uid, physicsClientId=client)
        if np.all(np.isfinite(lo)) and np.all(np.isfinite(hi)):
            out.append((path.relative_to(PD).as_posix(), lo, hi))
    pb.disconnect(client)
    return out


def cameras(lo, hi, n):
    centre, radius = (lo + hi) / 2, max(float(np.linalg.norm(hi - lo)) / 2, 0.02)
    dist = radius / math.sin(math.radians(FOV / 2)) * 1.1
    out = []
    for i in range(n):
        a = 0.6 + 2 * math.pi * i / n
        eye = centre + dist * np.array([math.cos(a) * 0.8, math.sin(a) * 0.8, 0.6])
        out.append({"matrix": rc.look_at(eye, centre, up=(0, 0, 1)).tolist(), "fov": FOV,
                    "width": W, "height": H, "near": NEAR, "far": FAR})
    return out


def scene(p):
    return [AmbientLight(key="amb", intensity=1.0), Urdf(key="robot", src=rc.asset(p["urdf"]))]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--limit", type=int, default=0)
    ap.add_argument("--only", nargs="*", help="URDFs (paths under pybullet_data) to sweep")
    ap.add_argument("--cameras", type=int, default=2)
    args = ap.parse_args()
    urdfs = loadable()
    if args.only:
        urdfs = [u for u in urdfs if u[0] in args.only]
    if args.limit:
        urdfs = urdfs[:args.limit]
    jobs = [{"urdf": u, "view": k, "camera": c}
            for u, lo, hi in urdfs for k, c in enumerate(cameras(lo, hi, args.cameras))]
    ray.init(num_cpus=2, include_dashboard=False, configure_logging=False, log_to_driver=False)
    results = {}
    try:
        with rc.render(jobs, scene=scene, assets=str(PD), workers=2, depth=True, masks=True,
                       up="z", max_attempts=2) as run:
            for r in run:
                results.setdefault(r.params["urdf"], []).append(r)
        failures = {f.params["urdf"]: f.error.splitlines()[0][:160] for f in run.failures}
    finally:
        ray.shutdown()
    rows, agree = [], 0
    for u, _, _ in urdfs:
        if u in failures:
            rows.append((u, "-", f"not rendered: {failures[u]}"))
            continue
        ious, why = [], ""
        for r in results.get(u, []):
            ref = reference.render([reference.Robot("robot", str(PD / u))],
                                   np.asarray(r.camera["matrix"]), FOV, W, H, NEAR, FAR)
            [cmp] = reference.compare(r.mask, r.depth, ref, [r.instances["robot"]])
            ious.append(cmp["iou"])
            if cmp["px"] == 0 and cmp["ref_px"] == 0:
                why = "nothing visible in either renderer"
            elif cmp["px"] == 0:
                why = "raycollect drew nothing"
            elif cmp["ref_px"] == 0:
                why = "pybullet drew nothing"
            elif cmp["iou"] < IOU_GOAL:
                why = (f"raycollect {cmp['px']} px, pybullet {cmp['ref_px']} px, "
                       f"depth median {cmp['depth_median'] * 1000:.2f} mm")
        iou = min(ious) if ious else float("nan")
        agree += iou >= IOU_GOAL
        rows.append((u, f"{iou:.3f}", "" if iou >= IOU_GOAL else why))
    print(f"raycollect vs pybullet over pybullet_data: {len(urdfs)} URDFs pybullet loads, "
          f"{len(urdfs) - len(failures)} rendered by raycollect, {agree} agree (mask IoU >= "
          f"{IOU_GOAL} in every view, {args.cameras} views each)")
    for u, iou, why in rows:
        print(f"  {u:<55} {iou:>6}  {why}")


if __name__ == "__main__":
    main()
