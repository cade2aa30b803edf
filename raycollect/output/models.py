"""The meshes of the BOP export's models: what an element draws, as a triangle mesh, written
as BOP's model PLY files with the numbers BOP's models_info.json holds.

- Primitives (`Box`, `Sphere`, `Cylinder`, `Cone`, `Plane`, `Capsule`, `Circle`) are
  tessellated exactly as three.js r182 does (the release the Vuer client bundles), vertex
  for vertex and triangle for triangle, so a model drawn with a frame's pose has the
  silhouette the page rendered. Vuer draws `Box(args=A)` as `BoxGeometry(...A)`: args the
  element leaves out take three.js's defaults, and an element without args takes Vuer's own
  (`VUER_DEFAULTS`; they differ: a Cylinder without args has 8 sides, three.js's 32).
  three.js keeps positions in Float32 buffers; so do these meshes before anything else.
- Asset files (OBJ, PLY, STL, GLB/GLTF) load with trimesh (`pip install
  'raycollect[models]'`), imported only here, with `process=False`, so no vertex is merged
  or moved, and every object, group and node of a file is kept (a glTF's node transforms
  applied, as three.js's GLTFLoader applies them).
- `ply_bytes` writes a binary little-endian PLY with `x y z nx ny nz` vertices (mm) and
  `vertex_indices` triangles, which the BOP toolkit's PLY reader (its `inout.load_ply`)
  reads; `model_info` computes what its calc_model_info script does from those vertices.

Units: meshes here are in metres (three.js units) until `to_model` scales them into a BOP
model in millimetres.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import NamedTuple

import numpy as np

from ..errors import RaycollectError
from ..physics import matrix as pose_matrix
from .files import MM_PER_M

TWO_PI = 2 * math.pi

# Defaults of each primitive's args: three.js r182's constructors (used for args an
# element's list leaves out) and Vuer's components (used when an element has no args).
THREE_DEFAULTS = {
    "Box": [1, 1, 1, 1, 1, 1],
    "Sphere": [1, 32, 16, 0, TWO_PI, 0, math.pi],
    "Cylinder": [1, 1, 1, 32, 1, False, 0, TWO_PI],
    "Cone": [1, 1, 32, 1, False, 0, TWO_PI],
    "Plane": [1, 1, 1, 1],
    "Capsule": [1, 1, 4, 8, 1],
    "Circle": [1, 32, 0, TWO_PI],
}
VUER_DEFAULTS = {
    "Box": [1, 1, 1, 1, 1, 1],
    "Sphere": [1, 32, 16, 0, TWO_PI, 0, math.pi],
    "Cylinder": [1, 1, 1, 8, 1, False, 0, TWO_PI],
    "Cone": [1, 1, 8, 1, False, 0, TWO_PI],
    "Plane": [1, 1, 1, 1],
    "Capsule": [1, 1, 4, 8, 1],
    "Circle": [1, 8, 0, TWO_PI],
}
# Element tags whose `src` file is the mesh, and the file types trimesh reads for them.
ASSET_TAGS = frozenset({"Obj", "Ply", "Stl", "Glb", "Gltf"})
ASSET_SUFFIXES = frozenset({".obj", ".ply", ".stl", ".glb", ".gltf"})
MODELS_EXTRA = "pip install 'raycollect[models]'"
# The diameter's search compares candidate points in blocks of this many rows (memory:
# a block is BLOCK x candidates float64 distances).
DIAMETER_BLOCK = 1024


class Mesh(NamedTuple):
    vertices: np.ndarray  # float64 N x 3
    faces: np.ndarray     # int64 M x 3, indices into vertices


class Unmodelled(Exception):
    """An element the BOP export has no mesh for (a robot, a point cloud, a tag with no
    tessellation here): left out of scene_gt, with this reason."""


# --- primitives: three.js r182's geometries, step for step ------------------------------

def _mesh(vertices: list, faces: list) -> Mesh:
    v = np.asarray(vertices, dtype=np.float64).reshape(-1, 3)
    # Float32BufferAttribute: the GPU draws these positions, not the float64 ones.
    v = v.astype(np.float32).astype(np.float64)
    return Mesh(v, np.asarray(faces, dtype=np.int64).reshape(-1, 3))


def _segments(tag: str, value, name: str) -> int:
    n = math.floor(value)
    if n < 1:
        raise RaycollectError(f"{tag}: {name} {value!r} gives no segment (three.js draws "
                              f"nothing for it)")
    return n


def box(width=1, height=1, depth=1, width_segments=1, height_segments=1, depth_segments=1) -> Mesh:
    ws = _segments("Box", width_segments, "widthSegments")
    hs = _segments("Box", height_segments, "heightSegments")
    ds = _segments("Box", depth_segments, "depthSegments")
    vertices, faces = [], []
    axis = {"x": 0, "y": 1, "z": 2}

    def plane(u, v, w, udir, vdir, pw, ph, pd, gx, gy):
        base = len(vertices)
        for iy in range(gy + 1):
            y = iy * (ph / gy) - ph / 2
            for ix in range(gx + 1):
                x = ix * (pw / gx) - pw / 2
                p = [0.0, 0.0, 0.0]
                p[axis[u]], p[axis[v]], p[axis[w]] = x * udir, y * vdir, pd / 2
                vertices.append(p)
        for iy in range(gy):
            for ix in range(gx):
                a = base + ix + (gx + 1) * iy
                b = base + ix + (gx + 1) * (iy + 1)
                c = base + ix + 1 + (gx + 1) * (iy + 1)
                d = base + ix + 1 + (gx + 1) * iy
                faces.extend([(a, b, d), (b, c, d)])

    plane("z", "y", "x", -1, -1, depth, height, width, ds, hs)    # +x
    plane("z", "y", "x", 1, -1, depth, height, -width, ds, hs)    # -x
    plane("x", "z", "y", 1, 1, width, depth, height, ws, ds)      # +y
    plane("x", "z", "y", 1, -1, width, depth, -height, ws, ds)    # -y
    plane("x", "y", "z", 1, -1, width, height, depth, ws, hs)     # +z
    plane("x", "y", "z", -1, -1, width, height, -depth, ws, hs)   # -z
    return _mesh(vertices, faces)


def sphere(radius=1, width_segments=32, height_segments=16, phi_start=0, phi_length=TWO_PI,
           theta_start=0, theta_length=math.pi) -> Mesh:
    ws = max(3, math.floor(width_segments))
    hs = max(2, math.floor(height_segments))
    theta_end = min(theta_start + theta_length, math.pi)
    vertices, grid, faces = [], [], []
    for iy in range(hs + 1):
        v = iy / hs
        row = []
        for ix in range(ws + 1):
            u = ix / ws
            phi, theta = phi_start + u * phi_length, theta_start + v * theta_length
            vertices.append((-radius * math.cos(phi) * math.sin(theta), radius * math.cos(theta),
                             radius * math.sin(phi) * math.sin(theta)))
            row.append(len(vertices) - 1)
        grid.append(row)
    for iy in range(hs):
        for ix in range(ws):
            a, b = grid[iy][ix + 1], grid[iy][ix]
            c, d = grid[iy + 1][ix], grid[iy + 1][ix + 1]
            if iy != 0 or theta_start > 0:
                faces.append((a, b, d))
            if iy != hs - 1 or theta_end < math.pi:
                faces.append((b, c, d))
    return _mesh(vertices, faces)


def cylinder(radius_top=1, radius_bottom=1, height=1, radial_segments=32, height_segments=1,
             open_ended=False, theta_start=0, theta_length=TWO_PI) -> Mesh:
    rs = _segments("Cylinder", radial_segments, "radialSegments")
    hs = _segments("Cylinder", height_segments, "heightSegments")
    half = height / 2
    vertices, faces, rows = [], [], []
    for y in range(hs + 1):
        v = y / hs
        r = v * (radius_bottom - radius_top) + radius_top
        row = []
        for x in range(rs + 1):
            theta = x / rs * theta_length + theta_start
            vertices.append((r * math.sin(theta), -v * height + half, r * math.cos(theta)))
            row.append(len(vertices) - 1)
        rows.append(row)
    for x in range(rs):
        for y in range(hs):
            a, b = rows[y][x], rows[y + 1][x]
            c, d = rows[y + 1][x + 1], rows[y][x + 1]
            if radius_top > 0 or y != 0:
                faces.append((a, b, d))
            if radius_bottom > 0 or y != hs - 1:
                faces.append((b, c, d))

    def cap(top: bool):
        r, sign = (radius_top, 1) if top else (radius_bottom, -1)
        centre = len(vertices)
        vertices.extend([(0.0, half * sign, 0.0)] * rs)  # one centre per segment (its uv)
        rim = len(vertices)
        for x in range(rs + 1):
            theta = x / rs * theta_length + theta_start
            vertices.append((r * math.sin(theta), half * sign, r * math.cos(theta)))
        for x in range(rs):
            c, i = centre + x, rim + x
            faces.append((i, i + 1, c) if top else (i + 1, i, c))

    if open_ended is False:  # three.js caps only when it is exactly false
        if radius_top > 0:
            cap(True)
        if radius_bottom > 0:
            cap(False)
    return _mesh(vertices, faces)


def cone(radius=1, height=1, radial_segments=32, height_segments=1, open_ended=False,
         theta_start=0, theta_length=TWO_PI) -> Mesh:
    return cylinder(0, radius, height, radial_segments, height_segments, open_ended,
                    theta_start, theta_length)


def plane(width=1, height=1, width_segments=1, height_segments=1) -> Mesh:
    gx = _segments("Plane", width_segments, "widthSegments")
    gy = _segments("Plane", height_segments, "heightSegments")
    vertices, faces = [], []
    for iy in range(gy + 1):
        y = iy * (height / gy) - height / 2
        for ix in range(gx + 1):
            vertices.append((ix * (width / gx) - width / 2, -y, 0.0))
    for iy in range(gy):
        for ix in range(gx):
            a, b = ix + (gx + 1) * iy, ix + (gx + 1) * (iy + 1)
            c, d = ix + 1 + (gx + 1) * (iy + 1), ix + 1 + (gx + 1) * iy
            faces.extend([(a, b, d), (b, c, d)])
    return _mesh(vertices, faces)


def capsule(radius=1, height=1, cap_segments=4, radial_segments=8, height_segments=1) -> Mesh:
    # r182's CapsuleGeometry (its own grid since r176, no longer a LatheGeometry).
    height = max(0, height)
    cs = max(1, math.floor(cap_segments))
    rs = max(3, math.floor(radial_segments))
    hs = max(1, math.floor(height_segments))
    half = height / 2
    rows = cs * 2 + hs
    per_row = rs + 1
    vertices, faces = [], []
    for iy in range(rows + 1):
        if iy <= cs:
            a = iy / cs * math.pi / 2
            y, r = -half - radius * math.cos(a), radius * math.sin(a)
        elif iy <= cs + hs:
            y, r = -half + (iy - cs) / hs * height, radius
        else:
            a = (iy - cs - hs) / cs * math.pi / 2
            y, r = half + radius * math.sin(a), radius * math.cos(a)
        for ix in range(rs + 1):
            theta = ix / rs * TWO_PI
            vertices.append((-r * math.cos(theta), y, r * math.sin(theta)))
        if iy > 0:
            prev = (iy - 1) * per_row
            for ix in range(rs):
                i1, i2 = prev + ix, prev + ix + 1
                i3, i4 = iy * per_row + ix, iy * per_row + ix + 1
                faces.extend([(i1, i2, i3), (i2, i4, i3)])
    return _mesh(vertices, faces)


def circle(radius=1, segments=32, theta_start=0, theta_length=TWO_PI) -> Mesh:
    segments = max(3, segments)  # three.js does not floor it: a loop runs to <= segments
    vertices, faces = [(0.0, 0.0, 0.0)], []
    s = 0
    while s <= segments:
        theta = theta_start + s / segments * theta_length
        vertices.append((radius * math.cos(theta), radius * math.sin(theta), 0.0))
        s += 1
    s = 1
    while s <= segments:
        faces.append((s, s + 1, 0))
        s += 1
    return _mesh(vertices, faces)


PRIMITIVES = {"Box": box, "Sphere": sphere, "Cylinder": cylinder, "Cone": cone,
              "Plane": plane, "Capsule": capsule, "Circle": circle}


def primitive_args(tag: str, args) -> list:
    """The full argument list three.js builds `tag` with: Vuer's defaults without args, an
    element's args completed with three.js's defaults otherwise."""
    if args is None:
        return list(VUER_DEFAULTS[tag])
    if not isinstance(args, (list, tuple)):
        raise RaycollectError(f"args {args!r} is not a list")
    full = list(args[:len(THREE_DEFAULTS[tag])]) + THREE_DEFAULTS[tag][len(args):]
    for i, (a, default) in enumerate(zip(full, THREE_DEFAULTS[tag])):
        number = isinstance(a, (int, float)) and not isinstance(a, bool)
        if not (number or (isinstance(default, bool) and isinstance(a, bool))):
            raise RaycollectError(f"args[{i}] = {a!r} is not a number")
    return full


def primitive(tag: str, args) -> Mesh:
    """The mesh three.js r182 builds for a Vuer primitive `tag` with `args` (metres)."""
    return PRIMITIVES[tag](*primitive_args(tag, args))


# --- asset files ------------------------------------------------------------------------

def _trimesh():
    try:
        import trimesh
    except ImportError:
        raise RaycollectError(f"the bop export reads model files with trimesh: "
                              f"{MODELS_EXTRA}") from None
    return trimesh


def load_asset(path: Path) -> Mesh:
    """Every triangle of a mesh file, in the file's own units and frame (metres for
    three.js), vertices as written (nothing merged or moved)."""
    if path.suffix.lower() not in ASSET_SUFFIXES:
        raise Unmodelled(f"{path.name}: no mesh reader for {path.suffix or 'a file without suffix'}")
    trimesh = _trimesh()
    try:
        # skip_materials: a model is its triangles; a PLY naming a texture beside it (an
        # MJCF world's textured meshes) would otherwise log a traceback per load.
        loaded = trimesh.load(str(path), process=False, maintain_order=True, skip_materials=True)
    except Exception as e:  # noqa: BLE001 - a file trimesh cannot parse fails in any way
        raise RaycollectError(f"{path}: trimesh could not read it: {e}") from None
    # A scene (OBJ objects and groups, glTF nodes): every geometry with its node's transform.
    parts = loaded.dump(concatenate=False) if isinstance(loaded, trimesh.Scene) else [loaded]
    meshes = [p for p in parts if isinstance(p, trimesh.Trimesh) and len(p.faces)]
    if not meshes:
        raise Unmodelled(f"{path.name} holds no triangles (a point cloud or lines)")
    return combine([(Mesh(np.asarray(m.vertices, dtype=np.float64),
                          np.asarray(m.faces, dtype=np.int64)), np.eye(4)) for m in meshes])


# --- groups -----------------------------------------------------------------------------

def placement(position=None, quaternion=None, rotation=None, scale=None) -> np.ndarray:
    """The 4x4 matrix three.js composes for an object in its parent: T @ R @ S, R from the
    quaternion (x, y, z, w) or else the Euler angles (order XYZ: Rx @ Ry @ Rz)."""
    m = np.eye(4)
    if quaternion is not None:
        m = pose_matrix((0.0, 0.0, 0.0), quaternion)
    elif rotation is not None:
        r = np.eye(3)
        for axis, angle in zip("xyz", (float(a) for a in rotation)):
            c, s = math.cos(angle), math.sin(angle)
            i, j = {"x": (1, 2), "y": (2, 0), "z": (0, 1)}[axis]
            turn = np.eye(3)
            turn[i, i], turn[i, j], turn[j, i], turn[j, j] = c, -s, s, c
            r = r @ turn
        m[:3, :3] = r
    if scale is not None:
        m[:3, :3] = m[:3, :3] @ np.diag(np.broadcast_to(np.asarray(scale, dtype=np.float64), 3))
    if position is not None:
        m[:3, 3] = [float(p) for p in position]
    return m


def combine(placed: list[tuple[Mesh, np.ndarray]]) -> Mesh:
    """One mesh of meshes each placed by a 4x4 matrix (a group's children in its frame); a
    mirroring placement turns its triangles' winding back."""
    vertices, faces, offset = [], [], 0
    for mesh, m in placed:
        vertices.append(mesh.vertices @ m[:3, :3].T + m[:3, 3])
        f = mesh.faces[:, ::-1] if np.linalg.det(m[:3, :3]) < 0 else mesh.faces
        faces.append(f + offset)
        offset += len(mesh.vertices)
    return Mesh(np.concatenate(vertices), np.concatenate(faces))


# --- BOP models -------------------------------------------------------------------------

def to_model(mesh: Mesh, scale: np.ndarray) -> tuple[Mesh, np.ndarray]:
    """A mesh (metres) with the 3x3 `scale` baked in, in millimetres as float32 values (as
    the PLY stores them), and its unit vertex normals. A mirroring scale turns the
    triangles' winding back, so normals still point out."""
    scale = np.asarray(scale, dtype=np.float64)
    v = (mesh.vertices @ scale.T * MM_PER_M).astype(np.float32).astype(np.float64)
    faces = mesh.faces[:, ::-1] if np.linalg.det(scale) < 0 else mesh.faces
    return Mesh(v, faces), vertex_normals(v, faces)


def vertex_normals(vertices: np.ndarray, faces: np.ndarray) -> np.ndarray:
    """Area-weighted normals of the triangles at each vertex (three.js's
    computeVertexNormals), unit length. A vertex no triangle with an area uses (a pole's
    spare copy, an unused vertex) points away from the model's centre, or along +z."""
    tri = vertices[faces]
    face_n = np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0])
    n = np.zeros_like(vertices)
    for k in range(3):
        np.add.at(n, faces[:, k], face_n)
    length = np.linalg.norm(n, axis=1)
    bad = length <= 0
    if bad.any():
        centre = (vertices.min(axis=0) + vertices.max(axis=0)) / 2
        n[bad] = vertices[bad] - centre
        length[bad] = np.linalg.norm(n[bad], axis=1)
        still = length <= 0
        n[still], length[still] = (0.0, 0.0, 1.0), 1.0
    return n / length[:, None]


def ply_bytes(mesh: Mesh, normals: np.ndarray) -> bytes:
    """A binary little-endian PLY: float x y z nx ny nz per vertex, uchar-counted int
    vertex_indices per triangle (the types the BOP toolkit's PLY reader knows)."""
    header = (f"ply\nformat binary_little_endian 1.0\ncomment raycollect BOP model, mm\n"
              f"element vertex {len(mesh.vertices)}\n"
              + "".join(f"property float {p}\n" for p in ("x", "y", "z", "nx", "ny", "nz"))
              + f"element face {len(mesh.faces)}\nproperty list uchar int vertex_indices\n"
              f"end_header\n").encode("ascii")
    verts = np.hstack([mesh.vertices, normals]).astype("<f4")
    faces = np.zeros(len(mesh.faces), dtype=[("n", "u1"), ("i", "<i4", (3,))])
    faces["n"], faces["i"] = 3, mesh.faces
    return header + verts.tobytes() + faces.tobytes()


def diameter(points: np.ndarray) -> float:
    """The largest distance between two points (the BOP toolkit's calc_pts_diameter), found
    exactly without comparing every pair: a pair longer than a known one has both points
    far enough from the centre, so only those are compared."""
    pts = np.unique(np.asarray(points, dtype=np.float64), axis=0)
    if len(pts) < 2:
        return 0.0
    centre = (pts.min(axis=0) + pts.max(axis=0)) / 2
    radius = np.linalg.norm(pts - centre, axis=1)
    # A lower bound: the farthest point from the farthest point from the centre.
    far = pts[np.argmax(radius)]
    best = float(np.linalg.norm(pts - far, axis=1).max())
    # |p - q| <= |p - c| + max|q - c|: p can only be in a longer pair if this reaches best.
    cand = pts[radius + radius.max() >= best]
    for i in range(0, len(cand), DIAMETER_BLOCK):
        block = cand[i:i + DIAMETER_BLOCK]
        d = np.sqrt(((block[:, None, :] - cand[None, :, :]) ** 2).sum(axis=2)).max()
        best = max(best, float(d))
    return best


def model_info(vertices_mm: np.ndarray) -> dict:
    """models_info.json's entry, as the BOP toolkit's calc_model_info computes it from the
    model's vertices (mm): the axis-aligned box's corner and size, and the diameter."""
    lo, hi = vertices_mm.min(axis=0), vertices_mm.max(axis=0)
    size = hi - lo
    return {"diameter": diameter(vertices_mm),
            "min_x": float(lo[0]), "min_y": float(lo[1]), "min_z": float(lo[2]),
            "size_x": float(size[0]), "size_y": float(size[1]), "size_z": float(size[2])}
