#!/usr/bin/env python
"""How exact the ground truth is, measured: colours of a flat unlit scene (lossless path vs
the same frames through JPEG, as Vuer's client would send them), the depth of a wall
2.5 m away (near 0.1, far 20), and how far back-projected wall points lie from its plane.

Usage: python scripts/bench/bench_truth.py
"""

from __future__ import annotations

import os
import sys
from io import BytesIO

import numpy as np
import ray
from PIL import Image

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", ".."))
sys.path.insert(0, os.path.join(HERE, "..", "..", "tests"))
import raycollect as rc  # noqa: E402
from scenes import FLAT_COLORS, WALL_Z, depth_scene, flat_scene  # noqa: E402


def colours(image: np.ndarray) -> int:
    return len(np.unique(image.reshape(-1, 3), axis=0))


def main() -> None:
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    jobs = [{"camera": {"matrix": rc.look_at([0.3 * i, 0.5, 3.0], [0, 0, 0]).tolist(),
                        "fov": 50, "width": 320, "height": 240}} for i in range(4)]
    frames = [r.image for r in rc.render(jobs, scene=flat_scene, workers=1, progress=False)]
    expected = len(FLAT_COLORS) + 1
    jpeg = []
    for f in frames:
        buf = BytesIO()
        Image.fromarray(f).save(buf, format="JPEG", quality=95)
        jpeg.append(np.asarray(Image.open(BytesIO(buf.getvalue())).convert("RGB")))
    wall_jobs = [{"camera": {"matrix": np.eye(4).tolist(), "fov": 40, "width": 320,
                             "height": 240, "near": 0.1, "far": 20.0}}]
    [wall] = list(rc.render(wall_jobs, scene=depth_scene, workers=1, depth=True, masks=True,
                            progress=False))
    z = wall.depth[wall.mask == wall.instances["wall"]]
    tilted = [{"camera": {"matrix": rc.look_at([0.8, 0.6, 1.5], [-0.2, 0.0, -2.5]).tolist(),
                          "fov": 55, "width": 320, "height": 240, "near": 0.2, "far": 50.0}}]
    [t] = list(rc.render(tilted, scene=depth_scene, workers=1, depth=True, masks=True,
                         progress=False))
    K, M = np.asarray(t.camera["K"]), np.asarray(t.camera["matrix"])
    v, u = np.nonzero(t.mask == t.instances["wall"])
    d = t.depth[v, u].astype(np.float64)
    pts = M @ np.stack([(u + 0.5 - K[0, 2]) / K[0, 0] * d, -(v + 0.5 - K[1, 2]) / K[1, 1] * d,
                        -d, np.ones_like(d)])
    err = np.abs(pts[2] + WALL_Z)
    print("raycollect ground-truth check: 320x240, 1 worker")
    print(f"  flat unlit scene: {max(map(colours, frames))} distinct colours per frame "
          f"(expected {expected}: black and {len(FLAT_COLORS)} material colours); through "
          f"JPEG q95: {max(map(colours, jpeg))}")
    print(f"  wall at {WALL_Z} m (near 0.1, far 20): median {np.median(z):.6f} m, "
          f"error {abs(np.median(z) - WALL_Z) * 1000:.4f} mm (target < 1 mm)")
    print(f"  tilted camera (near 0.2, far 50): {len(d):,} wall pixels back-projected, plane "
          f"error median {np.median(err) * 1000:.4f} mm, max {err.max() * 1000:.4f} mm "
          f"(target < 2 mm)")


if __name__ == "__main__":
    main()
