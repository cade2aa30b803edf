"""Where raycollect's and MuJoCo's outlines of a round primitive differ, how far the true
outline is from those pixels. Not part of the test suite.

A capsule, a cylinder and a sphere (radius 0.1 m), seen from three cameras at 320x240, are
rendered by raycollect and by MuJoCo's renderer (raycollect/testing/mjcf_reference.py). For
each pixel that only one of them gives a body, MuJoCo's ray casting (`mj_ray`, exact for
primitives: no tessellation) is run through points around the pixel's centre, 16 directions
at growing distances, until one lands on the other side of the true outline: that distance
bounds how far the outline passes from the pixel's centre. Both renderers draw polygons
inscribed in the true outline (three.js 64 segments around, MuJoCo 96 in the reference), so
a pixel whose centre lies within a few hundredths of a pixel of the outline may fall on
either side of either polygon.

    PYTHONPATH=. .venv/bin/python scripts/outline_ties.py
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

os.environ.setdefault("MUJOCO_GL", "egl")

import numpy as np  # noqa: E402
import ray  # noqa: E402

import raycollect as rc  # noqa: E402
from raycollect.testing import mjcf_reference as reference  # noqa: E402

XML = """<mujoco><worldbody><light pos="0 0 3"/>
<body name="capsule"><geom type="capsule" fromto="-0.2 0 0 0.2 0 0" size="0.1"/></body>
<body name="cylinder" pos="0 0.5 0"><geom type="cylinder" fromto="-0.2 0 0 0.2 0 0" size="0.1"/></body>
<body name="sphere" pos="0 -0.5 0"><geom type="sphere" size="0.1"/></body>
</worldbody></mujoco>"""
W, H = 320, 240
EYES = [(0.01, -0.3, 3.0), (0.3, -2.5, 1.2), (2.5, 0.3, 0.4)]
def main() -> None:
    path = Path(tempfile.mkdtemp(prefix="rc-outline-")) / "round.xml"
    path.write_text(XML)
    world = rc.mjcf(path)
    jobs = [{"view": i, "camera": {"matrix": rc.look_at(eye, (0, 0, 0), up=(0, 0, 1)).tolist(),
                                   "fov": 45, "width": W, "height": H, "near": 0.05, "far": 20}}
            for i, eye in enumerate(EYES)]
    ray.init(num_cpus=2, include_dashboard=False, configure_logging=False)
    with rc.render(jobs, scene=world, workers=1, masks=True, depth=True, progress=False) as run:
        results = {r.params["view"]: r for r in run}
    renderer = reference.renderer(world.model, W, H)
    worst = 0.0
    for view, res in sorted(results.items()):
        data = world.forward(res.params)
        ref = reference.render(renderer, world.model, data, res.camera)
        for body in range(1, world.model.nbody):
            key = world.body_key(body)
            ours, theirs = res.mask == res.instances[key], ref.seg == body
            print(f"view {view} {key:>8}: raycollect {int(ours.sum())} px, MuJoCo "
                  f"{int(theirs.sum())} px, differing {int((ours ^ theirs).sum())}")
            for y, x in np.argwhere(ours ^ theirs):
                d = reference.outline_distance(world.model, data, res.camera, body, int(y), int(x))
                worst = max(worst, d if d is not None else float("inf"))
                print(f"    ({y}, {x}) {'raycollect' if ours[y, x] else 'MuJoCo'} only: "
                      f"the true outline within {d} px of its centre")
    print(f"every differing pixel has the true outline within {worst} px of its centre")


if __name__ == "__main__":
    main()
