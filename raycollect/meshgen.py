"""Small mesh files for examples and tests: OBJ, PLY, binary STL and a two-link URDF.

Generated rather than shipped, so the repository holds no binary assets and the example
scene (`python -m raycollect.meshgen DIR`, used by scripts/example_assets.sh) can be made
at any size.
"""

from __future__ import annotations

import math
import struct
import sys
from pathlib import Path

import numpy as np


def uv_sphere(radius: float = 0.5, rings: int = 16, segments: int = 32):
    """Vertices (N, 3) and triangles (M, 3) of a sphere centred at the origin."""
    verts = [(0.0, radius, 0.0)]
    for i in range(1, rings):
        phi = math.pi * i / rings
        for j in range(segments):
            theta = 2 * math.pi * j / segments
            verts.append((radius * math.sin(phi) * math.cos(theta), radius * math.cos(phi),
                          radius * math.sin(phi) * math.sin(theta)))
    verts.append((0.0, -radius, 0.0))
    faces = []
    ring = lambda i, j: 1 + (i - 1) * segments + j % segments  # noqa: E731
    for j in range(segments):
        faces.append((0, ring(1, j + 1), ring(1, j)))
    for i in range(1, rings - 1):
        for j in range(segments):
            a, b, c, d = ring(i, j), ring(i, j + 1), ring(i + 1, j), ring(i + 1, j + 1)
            faces += [(a, b, d), (a, d, c)]
    last = len(verts) - 1
    for j in range(segments):
        faces.append((last, ring(rings - 1, j), ring(rings - 1, j + 1)))
    return np.asarray(verts, float), np.asarray(faces, int)


def box(size=(1.0, 1.0, 1.0)):
    """Vertices and outward-facing triangles of a box centred at the origin."""
    sx, sy, sz = (s / 2 for s in size)
    v = np.array([[x, y, z] for x in (-sx, sx) for y in (-sy, sy) for z in (-sz, sz)])
    f = [(0, 1, 3), (0, 3, 2), (4, 6, 7), (4, 7, 5), (0, 4, 5), (0, 5, 1),
         (2, 3, 7), (2, 7, 6), (0, 2, 6), (0, 6, 4), (1, 5, 7), (1, 7, 3)]
    return v, np.asarray(f, int)


def write_obj(path, verts, faces) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as f:
        f.write("".join(f"v {x:.6f} {y:.6f} {z:.6f}\n" for x, y, z in verts))
        f.write("".join(f"f {a + 1} {b + 1} {c + 1}\n" for a, b, c in faces))
    return path


def write_ply(path, verts, faces, color=(200, 200, 200)) -> Path:
    """An ASCII PLY mesh with one colour per vertex."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as f:
        f.write(f"ply\nformat ascii 1.0\nelement vertex {len(verts)}\nproperty float x\n"
                f"property float y\nproperty float z\nproperty uchar red\nproperty uchar green\n"
                f"property uchar blue\nelement face {len(faces)}\n"
                f"property list uchar int vertex_indices\nend_header\n")
        r, g, b = color
        f.write("".join(f"{x:.6f} {y:.6f} {z:.6f} {r} {g} {b}\n" for x, y, z in verts))
        f.write("".join(f"3 {a} {b_} {c}\n" for a, b_, c in faces))
    return path


def write_stl(path, verts, faces) -> Path:
    """A binary STL."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tri = verts[faces]
    normals = np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0])
    normals /= np.maximum(np.linalg.norm(normals, axis=1, keepdims=True), 1e-12)
    with open(path, "wb") as f:
        f.write(b"raycollect meshgen".ljust(80, b" "))
        f.write(struct.pack("<I", len(faces)))
        for n, t in zip(normals, tri):
            f.write(struct.pack("<12fH", *n, *t[0], *t[1], *t[2], 0))
    return path


# The two-link arm: a base box and an upper link on a revolute joint LINK_OFFSET above it.
ARM_BASE = (0.4, 0.2, 0.4)
ARM_LINK = (0.12, 0.6, 0.12)
ARM_LINK_OFFSET = 0.1 + 0.3  # the link's centre above the base's centre


def write_arm_urdf(folder) -> Path:
    """robot/arm.urdf whose links load meshes by relative paths (meshes/*.stl)."""
    folder = Path(folder)
    write_stl(folder / "robot" / "meshes" / "base.stl", *box(ARM_BASE))
    write_stl(folder / "robot" / "meshes" / "link.stl", *box(ARM_LINK))
    urdf = folder / "robot" / "arm.urdf"
    urdf.write_text(f"""<?xml version="1.0"?>
<robot name="arm">
  <link name="base">
    <visual><geometry><mesh filename="meshes/base.stl"/></geometry>
      <material name="grey"><color rgba="0.6 0.6 0.7 1"/></material></visual>
  </link>
  <link name="upper">
    <visual><geometry><mesh filename="meshes/link.stl"/></geometry>
      <material name="orange"><color rgba="0.95 0.6 0.2 1"/></material></visual>
  </link>
  <joint name="shoulder" type="revolute">
    <parent link="base"/><child link="upper"/>
    <origin xyz="0 {ARM_LINK_OFFSET} 0" rpy="0 0 0"/>
    <axis xyz="0 0 1"/><limit lower="-1.5" upper="1.5" effort="1" velocity="1"/>
  </joint>
</robot>
""")
    return urdf


def write_example(folder, sphere_rings: int = 160) -> list[Path]:
    """The example scene's assets: a dense sphere OBJ (a few MB), a PLY knot-like ring, and
    the two-link arm URDF."""
    folder = Path(folder)
    v, f = uv_sphere(0.5, sphere_rings, 2 * sphere_rings)
    out = [write_obj(folder / "meshes" / "sphere.obj", v, f)]
    v, f = uv_sphere(0.35, 12, 24)
    v[:, 1] *= 0.4  # a flattened disc
    out.append(write_ply(folder / "meshes" / "disc.ply", v, f, color=(60, 160, 220)))
    out.append(write_arm_urdf(folder))
    return out


if __name__ == "__main__":
    target = Path(sys.argv[1] if len(sys.argv) > 1 else "example_assets")
    for p in write_example(target):
        print(f"{p} ({p.stat().st_size / 2**20:.1f} MB)")
