"""Small mesh files for examples and tests: OBJ, PLY, binary STL and a two-link URDF.

Generated rather than shipped, so the repository holds no binary assets and the example
scene (`python examples/meshgen.py DIR`) can be made
at any size.
"""

from __future__ import annotations

import json
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


def write_pcd(path, points) -> Path:
    """An ASCII PCD point cloud (x y z)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    n = len(points)
    with open(path, "w") as f:
        f.write(f"# .PCD v0.7\nVERSION 0.7\nFIELDS x y z\nSIZE 4 4 4\nTYPE F F F\n"
                f"COUNT 1 1 1\nWIDTH {n}\nHEIGHT 1\nVIEWPOINT 0 0 0 1 0 0 0\nPOINTS {n}\n"
                f"DATA ascii\n")
        f.write("".join(f"{x:.6f} {y:.6f} {z:.6f}\n" for x, y, z in points))
    return path


def ball_points(radius: float, n: int, seed: int = 0) -> np.ndarray:
    """n points filling a ball (a point cloud that covers its projection densely)."""
    rng = np.random.default_rng(seed)
    p = rng.normal(size=(n, 3))
    p /= np.linalg.norm(p, axis=1, keepdims=True)
    return p * radius * rng.random((n, 1)) ** (1 / 3)


def write_glb(path, verts, faces, color=(0.8, 0.3, 0.2)) -> Path:
    """A binary glTF 2.0 file with one mesh (positions, normals per vertex, indices)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tri = np.asarray(verts, np.float32)[np.asarray(faces)].reshape(-1, 3)  # unshared vertices
    n = np.cross(tri[1::3] - tri[0::3], tri[2::3] - tri[0::3])
    n /= np.maximum(np.linalg.norm(n, axis=1, keepdims=True), 1e-12)
    normals = np.repeat(n, 3, axis=0).astype(np.float32)
    index = np.arange(len(tri), dtype=np.uint32)
    blobs = [tri.tobytes(), normals.tobytes(), index.tobytes()]
    offsets = np.cumsum([0] + [len(b) for b in blobs])
    doc = {
        "asset": {"version": "2.0", "generator": "raycollect meshgen"},
        "scene": 0, "scenes": [{"nodes": [0]}], "nodes": [{"mesh": 0}],
        "meshes": [{"primitives": [{"attributes": {"POSITION": 0, "NORMAL": 1}, "indices": 2,
                                    "material": 0}]}],
        "materials": [{"pbrMetallicRoughness": {"baseColorFactor": [*color, 1.0],
                                                "metallicFactor": 0.0}}],
        "buffers": [{"byteLength": int(offsets[-1])}],
        "bufferViews": [{"buffer": 0, "byteOffset": int(offsets[i]), "byteLength": len(b)}
                        for i, b in enumerate(blobs)],
        "accessors": [
            {"bufferView": 0, "componentType": 5126, "count": len(tri), "type": "VEC3",
             "min": tri.min(0).tolist(), "max": tri.max(0).tolist()},
            {"bufferView": 1, "componentType": 5126, "count": len(tri), "type": "VEC3"},
            {"bufferView": 2, "componentType": 5125, "count": len(index), "type": "SCALAR"}],
    }
    js = json.dumps(doc).encode()
    js += b" " * (-len(js) % 4)
    binary = b"".join(blobs)
    binary += b"\0" * (-len(binary) % 4)
    with open(path, "wb") as f:
        f.write(struct.pack("<III", 0x46546C67, 2, 12 + 8 + len(js) + 8 + len(binary)))
        f.write(struct.pack("<II", len(js), 0x4E4F534A) + js)
        f.write(struct.pack("<II", len(binary), 0x004E4942) + binary)
    return path


def write_textured_obj(folder, name: str = "crate", size: float = 0.4,
                       texel=(40, 200, 60)) -> Path:
    """name.obj (a box with texture coordinates), name.mtl and name.png (one colour, so a
    frame shows whether the texture had loaded: untextured, the box is white)."""
    from PIL import Image

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (8, 8), texel).save(folder / f"{name}.png")
    (folder / f"{name}.mtl").write_text(f"newmtl skin\nKa 1 1 1\nKd 1 1 1\nmap_Kd {name}.png\n")
    v, f = box((size, size, size))
    with open(folder / f"{name}.obj", "w") as out:
        out.write(f"mtllib {name}.mtl\nusemtl skin\n")
        out.write("".join(f"v {x:.6f} {y:.6f} {z:.6f}\n" for x, y, z in v))
        out.write("vt 0 0\nvt 1 0\nvt 1 1\n")
        out.write("".join(f"f {a + 1}/1 {b + 1}/2 {c + 1}/3\n" for a, b, c in f))
    return folder / f"{name}.obj"


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


def write_dae(path, verts, faces, up: str = "Z_UP") -> Path:
    """A COLLADA 1.4.1 triangle mesh (one geometry, one node), as ROS descriptions ship them.
    Vertices are written as given; `up` is the asset's declared up axis."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    v = " ".join(f"{x:.6f}" for x in np.asarray(verts, dtype=float).ravel())
    f = " ".join(str(int(i)) for i in np.asarray(faces).ravel())
    path.write_text(f"""<?xml version="1.0" encoding="utf-8"?>
<COLLADA xmlns="http://www.collada.org/2005/11/COLLADASchema" version="1.4.1">
  <asset><unit name="meter" meter="1"/><up_axis>{up}</up_axis></asset>
  <library_geometries>
    <geometry id="mesh" name="mesh"><mesh>
      <source id="mesh-pos"><float_array id="mesh-pos-array" count="{len(verts) * 3}">{v}</float_array>
        <technique_common><accessor source="#mesh-pos-array" count="{len(verts)}" stride="3">
          <param name="X" type="float"/><param name="Y" type="float"/><param name="Z" type="float"/>
        </accessor></technique_common></source>
      <vertices id="mesh-vtx"><input semantic="POSITION" source="#mesh-pos"/></vertices>
      <triangles count="{len(faces)}"><input semantic="VERTEX" source="#mesh-vtx" offset="0"/><p>{f}</p></triangles>
    </mesh></geometry>
  </library_geometries>
  <library_visual_scenes>
    <visual_scene id="scene"><node id="node" name="node">
      <instance_geometry url="#mesh"/></node></visual_scene>
  </library_visual_scenes>
  <scene><instance_visual_scene url="#scene"/></scene>
</COLLADA>
""")
    return path


def write_ros_package(folder, abs_root: str | None = None) -> Path:
    """A ROS-style description package, `my_robot_description/urdf/bot.urdf`, whose links
    load COLLADA meshes by `package://my_robot_description/meshes/...` and, for the second
    link, by a xacro-style absolute `file://` path (under `abs_root`, the folder as the
    user's driver sees it; default: `folder` itself)."""
    folder = Path(folder)
    pkg = folder / "my_robot_description"
    write_dae(pkg / "meshes" / "base.dae", *box((0.3, 0.3, 0.1)))
    write_dae(pkg / "meshes" / "arm.dae", *box((0.08, 0.08, 0.5)))
    arm_abs = Path(abs_root or folder.resolve()) / "my_robot_description" / "meshes" / "arm.dae"
    urdf = pkg / "urdf" / "bot.urdf"
    urdf.parent.mkdir(parents=True, exist_ok=True)
    urdf.write_text(f"""<?xml version="1.0"?>
<robot name="bot">
  <link name="base"><visual><origin xyz="0 0 0.05"/>
    <geometry><mesh filename="package://my_robot_description/meshes/base.dae"/></geometry></visual></link>
  <link name="arm"><visual><origin xyz="0 0 0.25"/>
    <geometry><mesh filename="file://{arm_abs}"/></geometry></visual></link>
  <joint name="swing" type="revolute"><parent link="base"/><child link="arm"/>
    <origin xyz="0 0 0.1"/><axis xyz="1 0 0"/><limit lower="-2" upper="2" effort="1" velocity="1"/></joint>
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
