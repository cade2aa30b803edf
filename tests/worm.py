"""A MuJoCo skin for tests: a tube around two bodies of an MJCF's worldbody,

    <body name="worm" pos="-0.25 -0.75 0.12">
      <body name="worm-tail" pos="0.25 0 0"> (a joint) </body>
    </body>

for its <deformable> (tests/test_mujoco.py's shapes world, tests/unit/test_mjcf_pure.py)."""

from __future__ import annotations

import numpy as np

WORM_SIDES = 12


def worm_skin() -> str:
    """A tube around the worm's two bodies (rings of WORM_SIDES vertices along x, closed at
    both ends), in the world at the bind pose (the model's default state): the first rings
    follow the worm, the last its tail, the middle one both by half; inflated a little, so
    MuJoCo's normals are taken too."""
    xs, r, (y, z) = np.linspace(-0.25, 0.25, 5), 0.06, (-0.75, 0.12)
    a = np.linspace(0, 2 * np.pi, WORM_SIDES, endpoint=False)
    verts = [(x, y + r * np.cos(t), z + r * np.sin(t)) for x in xs for t in a]
    verts += [(xs[0] - r, y, z), (xs[-1] + r, y, z)]
    n, ring = len(xs), lambda i, k: i * WORM_SIDES + k % WORM_SIDES
    faces = [f for i in range(n - 1) for k in range(WORM_SIDES)
             for f in ((ring(i, k), ring(i + 1, k + 1), ring(i + 1, k)),
                       (ring(i, k), ring(i, k + 1), ring(i + 1, k + 1)))]
    faces += [(n * WORM_SIDES, ring(0, k + 1), ring(0, k)) for k in range(WORM_SIDES)]
    faces += [(n * WORM_SIDES + 1, ring(n - 1, k), ring(n - 1, k + 1)) for k in range(WORM_SIDES)]
    head = [ring(i, k) for i in range(2) for k in range(WORM_SIDES)] + [n * WORM_SIDES]
    mid = [ring(2, k) for k in range(WORM_SIDES)]
    tail = [ring(i, k) for i in range(3, n) for k in range(WORM_SIDES)] + [n * WORM_SIDES + 1]

    def bone(body, pos, ids, weights):
        return (f'<bone body="{body}" bindpos="{pos}" bindquat="1 0 0 0" '
                f'vertid="{" ".join(map(str, ids))}" vertweight="{" ".join(map(str, weights))}"/>')

    return (f'<skin name="worm-skin" rgba="0.85 0.45 0.6 1" inflate="0.01" '
            f'vertex="{" ".join(f"{c:.6f}" for v in verts for c in v)}" '
            f'face="{" ".join(str(i) for f in faces for i in f)}">'
            + bone("worm", f"-0.25 {y} {z}", head + mid, [1] * len(head) + [0.5] * len(mid))
            + bone("worm-tail", f"0 {y} {z}", mid + tail, [0.5] * len(mid) + [1] * len(tail))
            + "</skin>")
