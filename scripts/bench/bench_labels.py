"""What the labels cost: frames/s of a scene of 10 objects at 640x480 with rgb+depth+masks,
against the same with amodal silhouettes (goal >= 0.8: the silhouettes of every object in one
extra render, not a render per object), with normals and object coordinates, and with every
pass; and the bytes each pass writes per frame. Rounds alternate the variants, medians are
printed, each ratio measured within one run of this script (the machine is shared: compare
ratios, not absolute rates).

    .venv/bin/python scripts/bench/bench_labels.py [--rounds 3] [--frames 112]
"""

from __future__ import annotations

import argparse
import math
import os
import statistics
import time

import ray

import benchlib  # noqa: F401  (puts the repository on sys.path)
from benchlib import print_table

import raycollect as rc  # noqa: E402

SIZE = (640, 480)
VARIANTS = {
    "rgb+depth+masks": {},
    "+ amodal": {"amodal": True},
    "+ normals + coords": {"normals": True, "coords": True},
    "every pass": {"amodal": True, "normals": True, "coords": True, "semantic": True},
}
OBJECTS = 10


def ten_objects(params):
    """10 objects of 4 models on a table top, overlapping from the orbit's cameras, some of
    them cut by the image's border in some views."""
    from vuer.schemas import AmbientLight, Box, Cylinder, DirectionalLight, Sphere

    els = [AmbientLight(key="amb", intensity=0.6),
           DirectionalLight(key="sun", position=[2, 4, 3], intensity=1.5),
           Box(key="table", args=[3.0, 0.1, 2.0], position=[0, -0.05, 0],
               materialType="standard", material={"color": "#8d99ae"})]
    for i in range(OBJECTS - 1):
        a = 2 * math.pi * i / (OBJECTS - 1)
        pos = [0.7 * math.cos(a), 0.15, 0.5 * math.sin(a)]
        kind = i % 3
        if kind == 0:
            els.append(Box(key=f"box{i}", args=[0.3, 0.3, 0.3], position=pos, rotation=[0, a, 0],
                           materialType="standard", material={"color": "#e63946"}))
        elif kind == 1:
            els.append(Sphere(key=f"ball{i}", args=[0.16, 48, 24], position=pos,
                              materialType="standard", material={"color": "#457b9d"}))
        else:
            els.append(Cylinder(key=f"can{i}", args=[0.1, 0.1, 0.35, 48], position=pos,
                                materialType="standard", material={"color": "#2a9d8f"}))
    return els


def run(frames: int, radius: float, **passes) -> tuple[float, dict]:
    """(frames/s from the first frame to the last, bytes per pass of the last frame)."""
    jobs = rc.orbit(frames, *SIZE, radius=radius, height_m=1.6, target=(0.0, 0.1, 0.0))
    stamps, sizes = [], {}
    with rc.render(jobs, scene=ten_objects, workers=1, depth=True, masks=True, progress=False,
                   queue_name=f"bench-labels-{time.time()}", **passes) as r:
        for res in r:
            stamps.append(time.perf_counter())
            sizes = {k: len(v) for k, v in res.files.items()}
    return (len(stamps) - 1) / (stamps[-1] - stamps[0]), sizes


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--frames", type=int, default=112)
    args = ap.parse_args()
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    fps = {v: [] for v in VARIANTS}
    sizes = {}
    for r in range(args.rounds):
        for i, (name, passes) in enumerate(VARIANTS.items()):
            f, sizes[name] = run(args.frames, 3.0 + 0.01 * r + 0.001 * i, **passes)
            fps[name].append(f)
        print(f"round {r + 1}: " + ", ".join(f"{v} {fps[v][-1]:.1f}" for v in VARIANTS)
              + " frames/s", flush=True)
    ray.shutdown()
    med = {v: statistics.median(x) for v, x in fps.items()}
    base = med["rgb+depth+masks"]
    rows = []
    for name in list(VARIANTS)[1:]:
        goal = " (goal >= 0.8)" if name == "+ amodal" else ""
        rows.append((f"{name} / rgb+depth+masks", f"{med[name] / base:.2f}",
                     f"{med[name]:.1f} fps / {base:.1f} fps, 1 worker{goal}"))
    every = sizes["every pass"]
    for kind, n in every.items():
        rows.append((f"bytes {kind}", f"{n / 1024:.0f} KiB", f"{n / (SIZE[0] * SIZE[1]):.2f} "
                     f"bytes a pixel, as written"))
    print_table(f"raycollect labels benchmark: {os.cpu_count()} cores, {SIZE[0]}x{SIZE[1]}, "
                f"{OBJECTS} objects, {args.frames} frames a run, medians of {args.rounds}", rows)


if __name__ == "__main__":
    main()
