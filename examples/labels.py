"""Labels for training: several instances of a few models, with classes, amodal masks,
normals, object coordinates, a BOP export and COCO.

    .venv/bin/python examples/labels.py [--out renders-labels] [--views 24] [--workers 2]

Three mugs (one box model), two balls (one sphere model), a can and pybullet_data's duck (an
OBJ with its MTL and texture) on a table, photographed from an orbit. Writes a raycollect
output at OUT, then OUT/bop/ (models in mm, obj_id per model, mask/ and mask_visib/, all six
scene_gt_info fields) and OUT/coco.json (one category per class), and prints, per class, how
visible its instances were on average (visib_fract) and one frame's optical flow to the next.
"""

from __future__ import annotations

import argparse
import math
import shutil
import tempfile

import numpy as np

import raycollect as rc

CLASSES = {"mug_1": "mug", "mug_2": "mug", "mug_3": "mug", "ball_1": "ball", "ball_2": "ball",
           "can": "can", "duck": "duck"}


def scene(params):
    from vuer.schemas import AmbientLight, Box, Cylinder, DirectionalLight, Obj, Sphere

    els = [AmbientLight(key="amb", intensity=0.6),
           DirectionalLight(key="sun", position=[2, 4, 3], intensity=1.6),
           Box(key="table", args=[2.0, 0.06, 1.4], position=[0, -0.03, 0],
               materialType="standard", material={"color": "#a0a8b8"})]
    for i, (x, z, yaw) in enumerate([(-0.35, -0.2, 0.3), (0.1, 0.25, 1.1), (0.45, -0.3, 2.0)]):
        els.append(Box(key=f"mug_{i + 1}", args=[0.16, 0.2, 0.16], position=[x, 0.1, z],
                       rotation=[0, yaw, 0], materialType="standard",
                       material={"color": "#c0504d"}))
    for i, (x, z) in enumerate([(-0.1, 0.0), (0.35, 0.05)]):
        els.append(Sphere(key=f"ball_{i + 1}", args=[0.09, 48, 24], position=[x, 0.09, z],
                          materialType="standard", material={"color": "#4f81bd"}))
    els.append(Cylinder(key="can", args=[0.05, 0.05, 0.22, 48], position=[-0.5, 0.11, 0.25],
                        materialType="standard", material={"color": "#9bbb59"}))
    # pybullet_data's duck is Y-up with its feet at y = 0 after a quarter turn about X.
    els.append(Obj(key="duck", src=rc.asset("duck.obj"), mtl=rc.asset("duck.mtl"),
                   position=[0.2, 0.0, -0.35], rotation=[math.pi / 2, 0, 0.5],
                   scale=[0.06, 0.06, 0.06]))
    return els


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default="renders-labels")
    ap.add_argument("--views", type=int, default=24)
    ap.add_argument("--workers", default=2)
    ap.add_argument("--size", default="320x240")
    args = ap.parse_args()
    import pybullet_data

    w, h = (int(v) for v in args.size.split("x"))
    assets = tempfile.mkdtemp(prefix="rc-labels-assets-")
    for name in ("duck.obj", "duck.mtl", "duckCM.png"):
        shutil.copy(f"{pybullet_data.getDataPath()}/{name}", assets)
    jobs = rc.orbit(args.views, w, h, radius=1.4, height_m=0.9, target=(0.0, 0.05, 0.0))
    results = []
    with rc.render(jobs, scene=scene, workers=args.workers, out=args.out, assets=assets,
                   depth=True, masks=True, amodal=True, semantic=True, normals=True,
                   coords=True, classes=CLASSES) as run:
        for r in run:
            results.append(r)
    print(run.summary.line())
    print("wrote", rc.export(args.out, "bop"), "and", rc.export(args.out, "coco"))
    fract: dict = {}
    for r in results:
        for obj in r.objects.values():
            fract.setdefault(obj["class"], []).append(obj["visib_fract"])
    for name, values in sorted(fract.items()):
        print(f"  {name:6s} mean visib_fract {np.mean(values):.2f} over {len(values)} instances")
    by_index = {tuple(np.round(np.asarray(r.camera["matrix"])[:3, 3], 6)): r for r in results}
    first, second = jobs[0]["camera"], jobs[1]["camera"]
    a = by_index.get(tuple(np.round(np.asarray(first["matrix"])[:3, 3], 6)))
    b = by_index.get(tuple(np.round(np.asarray(second["matrix"])[:3, 3], 6)))
    if a is not None and b is not None:
        flow, valid = rc.flow(a, b)
        print(f"  flow view 0 -> 1: {valid.mean():.0%} of pixels still visible, median "
              f"{np.median(np.linalg.norm(flow[valid], axis=1)):.1f} px")
    shutil.rmtree(assets, ignore_errors=True)


if __name__ == "__main__":
    main()
