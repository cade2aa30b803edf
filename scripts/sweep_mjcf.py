"""Every MJCF that MuJoCo loads in the installed dm_control and mujoco packages, rendered by
raycollect and by MuJoCo's own renderer (mujoco.Renderer) from the same cameras: how many
render, how many agree, and why each other one does not. Not part of the test suite.

A model agrees when, in every view, every body that either renderer shows passes what
tests/test_mujoco.py asks: mask IoU >= 0.95 (a body under 300 px in either: every differing
pixel within one pixel of both outlines), z-depth median error <= 1 mm, and its pose equal
to data.xpos/xmat within 1e-5. Where a body does not agree, a third computation says which
renderer drew the model: MuJoCo's ray casting (`mj_ray`, exact for primitives) through the
differing pixels and through a sample of the shared ones (raycollect/testing/mjcf_reference.py
`arbitrate`). Views: the model's first two MJCF cameras and an overview,
in the model's first keyframe (or its default state), 320x240.

    PYTHONPATH=. MUJOCO_GL=egl .venv/bin/python scripts/sweep_mjcf.py [--limit N]
        [--only humanoid.xml ...] [--dirs DIR ...] [--under DIR]
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

os.environ.setdefault("MUJOCO_GL", "egl")

import numpy as np  # noqa: E402
import ray  # noqa: E402

import raycollect as rc  # noqa: E402
from raycollect.testing import mjcf_reference as reference  # noqa: E402

W, H = 320, 240
IOU_GOAL, IOU_MIN_PX, NEAR_MIN, DEPTH_MAX, POSE_ATOL = 0.95, 300, 0.95, 1e-3, 1e-5
DEPTH_SHIFT_MAX_PX = 0.05  # tests/test_mujoco.py: depth at a grazing angle, as image shift
# A body whose masks differ only on pixels the true outline passes this close to (the ray
# cast around each: reference.ties) agrees up to ties (docs/mjcf-sweep.md, outline_ties.py).
TIE_MAX_PX = 0.05
MJCF_CAMERAS = 2


def candidates(dirs=()) -> list[Path]:
    """The XML files of the installed dm_control and mujoco packages, and of `dirs` (say,
    robosuite's models/assets unpacked from its wheel, which this environment cannot
    install: docs/mjcf-sweep.md)."""
    import dm_control
    import mujoco

    out = []
    for root in [Path(pkg.__file__).parent for pkg in (dm_control, mujoco)] + [Path(d) for d in dirs]:
        out += sorted(root.rglob("*.xml"))
    return out


def loadable(paths: list[Path]) -> list:
    import mujoco

    worlds = []
    for p in paths:
        try:
            mujoco.MjModel.from_xml_path(str(p))
        except Exception:  # an include file, a fragment, or a model that needs assets
            continue
        try:
            worlds.append(rc.mjcf(p))
        except Exception as e:
            print(f"  {p}: loads in MuJoCo, not in rc.mjcf: {e}")
    return worlds


def state(world) -> dict:
    return {"keyframe": 0} if world.model.nkey else {}


def cameras(world) -> list[dict]:
    s = state(world)
    cams = [world.camera(i, W, H, state=s) for i in range(min(MJCF_CAMERAS, world.model.ncam))]
    model = world.model
    centre, extent = np.asarray(model.stat.center), float(model.stat.extent)
    eye = centre + extent * np.array([1.2, -1.6, 1.0])
    overview = {"matrix": rc.look_at(eye, centre, up=(0, 0, 1)).tolist(), "fov": 45.0,
                "width": W, "height": H, "near": model.vis.map.znear * extent,
                "far": min(model.vis.map.zfar * extent, 10_000.0)}
    return cams + [overview]


def verdict(world, results) -> tuple[bool, float, str, list]:
    """(agrees, lowest IoU of a body of >= IOU_MIN_PX, why not, the bodies that agree only up
    to ties: [(key, farthest outline distance in px)])."""
    model = world.model
    r = reference.renderer(model, W, H)
    lowest, why, tied = 1.0, "", []
    for res in results:
        data = world.forward(res.params)
        ref = reference.render(r, model, data, res.camera)
        keys = reference.keys(world)
        ids = {b: res.instances[k] for b, k in keys.items() if k in res.instances}
        for body, c in reference.compare(res.mask, res.depth, ref, ids).items():
            if c["px"] == 0 and c["ref_px"] == 0:
                continue
            key = keys[body]
            if min(c["px"], c["ref_px"]) >= IOU_MIN_PX:
                lowest = min(lowest, c["iou"])
                ok = c["iou"] >= IOU_GOAL
            else:  # a small body: its IoU, or one pixel along its outline (test_mujoco.py)
                ok = c["iou"] >= IOU_GOAL or c["near"] >= NEAR_MIN
            worst = None
            if not ok and body < model.nbody:  # the ray cast sees geoms only
                worst = reference.ties(model, data, res.camera, res.mask, ref, body,
                                       res.instances[key])
                if worst <= TIE_MAX_PX:
                    ok = True
                    tied.append((key, worst))
            ok = ok and (not c["depth_median"] > DEPTH_MAX
                         or c["depth_shift_px"] <= DEPTH_SHIFT_MAX_PX)
            if not ok and not why:
                why = (f"{key}: IoU {c['iou']:.3f} ({c['px']} px, MuJoCo {c['ref_px']} px, "
                       f"{c['near']:.2f} near), depth median {c['depth_median'] * 1000:.2f} mm"
                       + (f", true outline within {worst:.2f} px of every differing pixel"
                          if worst is not None else ""))
                a = reference.arbitrate(model, data, res.camera, res.mask, res.depth, ref, body,
                                        res.instances[key])
                third = []
                if "ray_sides_with_raycollect" in a:
                    third.append(f"of {a['differ']} differing px the ray cast sides with "
                                 f"raycollect at {a['ray_sides_with_raycollect']:.0%}, MuJoCo "
                                 f"at {a['ray_sides_with_mujoco']:.0%}")
                if "raycollect_depth_vs_ray" in a:
                    third.append(f"depth median vs ray cast: raycollect "
                                 f"{a['raycollect_depth_vs_ray'] * 1000:.2f} mm, MuJoCo "
                                 f"{a['mujoco_depth_vs_ray'] * 1000:.2f} mm")
                why += f" [{'; '.join(third)}]" if third else ""
            pose = np.asarray(res.objects[key]["pose"])
            at = data.xpos[body] if body < model.nbody else np.zeros(3)  # a skin: the world's
            if np.abs(pose[:3, 3] - at).max() > POSE_ATOL and not why:
                why = f"{key}: pose off by {np.abs(pose[:3, 3] - at).max():.2e} m"
        extra = set(np.unique(ref.seg)) - set(ids) - {-1}
        if extra and not why:
            names = sorted(keys.get(int(b), f"#{b}") for b in extra)
            why = f"MuJoCo draws bodies raycollect does not: {', '.join(names)}"
    return not why, lowest, why, tied


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--limit", type=int, default=0)
    ap.add_argument("--only", nargs="*", help="file names to sweep")
    ap.add_argument("--dirs", nargs="*", default=[], help="more folders of MJCF files")
    ap.add_argument("--under", help="sweep only files under this folder")
    args = ap.parse_args()
    paths = candidates(args.dirs)
    if args.under:
        paths = [p for p in paths if Path(args.under).resolve() in p.resolve().parents]
    if args.only:
        paths = [p for p in paths if p.name in args.only]
    worlds = loadable(paths)
    if args.limit:
        worlds = worlds[:args.limit]
    ray.init(num_cpus=2, include_dashboard=False, configure_logging=False, log_to_driver=False)
    rows, agree, rendered, with_ties = [], 0, 0, 0
    try:
        for world in worlds:
            name = os.path.relpath(world.path, Path(world.path).parents[2])
            jobs = [{**state(world), "view": i, "camera": c} for i, c in enumerate(cameras(world))]
            with rc.render(jobs, scene=world, workers=2, depth=True, masks=True,
                           max_attempts=2, progress=False) as run:
                results = list(run)
            if run.failures:
                rows.append((name, "-", f"not rendered: {run.failures[0].error.splitlines()[0][:160]}"))
                continue
            rendered += 1
            ok, lowest, why, tied = verdict(world, results)
            agree += ok
            with_ties += bool(ok and tied)
            if ok and tied:
                why = "agrees up to ties: " + ", ".join(
                    f"{k} (outline within {d:.2f} px)" for k, d in sorted(set(tied)))
            rows.append((name, f"{lowest:.3f}", why))
            print(f"  {name:<45} {lowest:.3f}  {why}", flush=True)
    finally:
        ray.shutdown()
    print(f"raycollect vs mujoco.Renderer: {len(worlds)} MJCFs load, {rendered} rendered, "
          f"{agree} agree, {with_ties} of them up to ties (every body in {MJCF_CAMERAS} MJCF "
          f"cameras + an overview, {W}x{H})")
    print("| MJCF | lowest IoU (bodies >= 300 px) | why not |\n|---|---|---|")
    for name, iou, why in rows:
        print(f"| {name} | {iou} | {why} |")


if __name__ == "__main__":
    main()
