"""Cube textures on geoms, as MuJoCo's renderer maps them.

MuJoCo draws a geom with a cube texture (`type="cube"`) through OpenGL's cube map with
object-linear texture coordinates: the direction looked up at a point of the surface is the
point in the coordinates of the unit shape MuJoCo scales into the geom (its renderer draws a
unit sphere, cylinder or box scaled by the geom's size; a capsule as a unit open cylinder
scaled by (r, r, h) between two unit half spheres whose centres sit at z = +-1 of their own
coordinates, scaled by r), times the geom's size when the material has `texuniform`. A mesh
looks up its own vertex coordinates (times the size with `texuniform`). The face shown is
the direction's major axis; within the face the texture is the direction projected onto it
(OpenGL's cube-map face rules). So a box shows one face on each side, stretched to it, and a
cylinder's side shows four faces with curved seams to its caps' two.

The page has no cube-mapped material for a shape, so such a geom is written as a PLY of its
surface (the same segments as the primitives raycollect/mjcf/geoms.py draws) whose triangles
are cut along those seams: each piece lies in one face's region and carries coordinates into
an atlas of the six face images side by side (raycollect/mjcf/files.py `cube_atlas`). Inside
a piece the page interpolates the coordinates linearly where OpenGL projects; the surfaces are
cut into stacks fine enough that the two differ by at most two texels of a 512-pixel face
(tests/unit/test_cubemap.py), and by nothing on a box's faces and a cylinder's caps, which
project linearly. A mesh is cut as it comes.
"""

from __future__ import annotations

import numpy as np

from .types import BOX, CAPSULE, CYLINDER, ELLIPSOID, MESH, SPHERE

# The geom types MuJoCo maps a cube texture onto (planes and height fields take none here).
KINDS = (SPHERE, CAPSULE, ELLIPSOID, CYLINDER, BOX, MESH)
# OpenGL's cube-map face rules (the specification's table): for the face whose axis is the
# major one, (sc, tc) as (axis, sign) of the direction's other coordinates.
FACE_ST = {(0, 1): ((2, -1), (1, -1)), (0, -1): ((2, 1), (1, -1)),
           (1, 1): ((0, 1), (2, 1)), (1, -1): ((0, 1), (2, -1)),
           (2, 1): ((0, 1), (1, -1)), (2, -1): ((0, -1), (1, -1))}
# The faces in MuJoCo's (and the atlas's) order: +X, -X, +Y, -Y, +Z, -Z.
FACES = sorted(FACE_ST, key=lambda k: (k[0], -k[1]))
# (axis, sign, sc axis, sc sign, tc axis, tc sign) of each face, for arrays of faces.
_FACE_TABLE = np.array([(a, s, *FACE_ST[a, s][0], *FACE_ST[a, s][1]) for a, s in FACES])
# Tessellation: as raycollect/mjcf/geoms.py draws the primitives around (AROUND segments) and
# a capsule's caps (CAP_STACKS). The page interpolates texture coordinates linearly where
# OpenGL projects, so curved surfaces get more stacks (SIDE_STACKS along a side,
# ELLIPSOID_STACKS pole to pole) and a box's faces, with texuniform, BOX_CELLS a side (without,
# they project linearly: one quad). Uniformly, not where needed: a triangle split next to a
# whole one leaves a T-junction, and the rasteriser lets the background through its crack.
AROUND, CAP_STACKS, SIDE_STACKS, ELLIPSOID_STACKS, BOX_CELLS = 64, 16, 32, 48, 64
# A triangle whose edges' cross product (twice its area) squared is below this (m^4) is
# degenerate (a pole's corner, a cut through a corner) and is dropped; anything larger is
# kept, however thin: a dropped sliver would leave a gap along the seam.
MIN_AREA2 = 1e-30


def _grid(f, nu: int, nv: int):
    """Triangles of a surface patch f(u, v) -> (point, normal, direction) over [0,1]^2,
    counter-clockwise seen from where the normals point."""
    u, v = np.meshgrid(np.linspace(0, 1, nu + 1), np.linspace(0, 1, nv + 1), indexing="ij")
    p, n, d = f(u, v)  # each (nu+1, nv+1, 3)
    corners = [(slice(0, -1), slice(0, -1)), (slice(1, None), slice(0, -1)),
               (slice(1, None), slice(1, None)), (slice(0, -1), slice(1, None))]
    out = []
    for a in (p, n, d):
        q = [a[c].reshape(-1, 3) for c in corners]
        out.append(np.stack([np.stack([q[0], q[1], q[2]], 1), np.stack([q[0], q[2], q[3]], 1)],
                            0).reshape(-1, 3, 3))
    return out


def _ring(theta):
    return np.cos(theta), np.sin(theta)


def _side(r, z0, z1, scale):
    """An open cylinder side of radius r from z0 to z1; directions (x/r, y/r, z * scale)."""
    def f(u, v):
        c, s = _ring(2 * np.pi * u)
        z = z0 + (z1 - z0) * v
        p = np.stack([r * c, r * s, z], -1)
        n = np.stack([c, s, np.zeros_like(z)], -1)
        return p, n, np.stack([c, s, z * scale], -1)
    return _grid(f, AROUND, SIDE_STACKS)


def _disk(r, z, sign, dz):
    """A cap of radius r at height z facing `sign`; directions (x/r, y/r, dz)."""
    def f(u, v):
        c, s = _ring(-2 * np.pi * u * sign)  # counter-clockwise seen from outside
        rad = v
        p = np.stack([r * rad * c, r * rad * s, np.full_like(u, z)], -1)
        n = np.stack([np.zeros_like(u), np.zeros_like(u), np.full_like(u, sign)], -1)
        return p, n, np.stack([rad * c, rad * s, np.full_like(u, dz)], -1)
    return _grid(f, AROUND, 1)


def _ellipsoid(size):
    def f(u, v):
        c, s = _ring(2 * np.pi * u)
        el = np.pi * (v - 0.5)
        unit = np.stack([np.cos(el) * c, np.cos(el) * s, np.sin(el)], -1)
        n = unit / np.asarray(size)
        return unit * size, n / np.linalg.norm(n, axis=-1, keepdims=True), unit
    return _grid(f, AROUND, ELLIPSOID_STACKS)


def _half_sphere(r, centre, sign):
    """A half sphere of radius r about (0, 0, centre) on the `sign` side; directions those of
    MuJoCo's unit half sphere about z = sign."""
    def f(u, v):
        c, s = _ring(2 * np.pi * u)
        el = sign * np.pi / 2 * v
        unit = np.stack([np.cos(el) * c, np.cos(el) * s, np.sin(el)], -1)
        p = unit * r + np.array([0.0, 0.0, centre])
        return p, unit, unit + np.array([0.0, 0.0, sign])
    tris = _grid(f, AROUND, CAP_STACKS)
    return [t[:, ::-1] for t in tris] if sign < 0 else tris


def _box(size, cells: int):
    out = [[], [], []]
    for axis, sign in FACES:
        a, b = (axis + 1) % 3, (axis + 2) % 3

        def f(u, v, axis=axis, sign=sign, a=a, b=b):
            unit = np.zeros(u.shape + (3,))
            unit[..., axis] = sign
            unit[..., a], unit[..., b] = (2 * u - 1) * sign, 2 * v - 1
            n = np.zeros_like(unit)
            n[..., axis] = sign
            return unit * size, n, unit
        for acc, t in zip(out, _grid(f, cells, cells)):
            acc.append(t)
    return [np.concatenate(a) for a in out]


def surface(kind: int, size, uniform: bool, mesh=None):
    """(points, normals, directions), each (triangles, 3, 3): the geom's surface in its frame
    with the cube-map direction MuJoCo looks up at every corner (module docstring). `mesh`
    is (points, normals) for a mesh geom (raycollect/mjcf/files.py `mesh_arrays`)."""
    size = np.asarray(size, dtype=float)[:3]
    if kind in (SPHERE, CAPSULE, CYLINDER):
        size = np.array([size[0], size[0], size[1] if kind != SPHERE else size[0]])
    if kind in (SPHERE, ELLIPSOID):
        parts = [_ellipsoid(size)]
    elif kind == CYLINDER:
        r, h = size[0], size[2]
        parts = [_side(r, -h, h, 1 / h), _disk(r, h, 1, 1.0), _disk(r, -h, -1, -1.0)]
    elif kind == CAPSULE:
        r, h = size[0], size[2]
        parts = [_side(r, -h, h, 1 / h), _half_sphere(r, h, 1), _half_sphere(r, -h, -1)]
    elif kind == BOX:
        parts = [_box(size, BOX_CELLS if uniform else 1)]
    elif kind == MESH:
        p, n = (np.asarray(a, dtype=float).reshape(-1, 3, 3) for a in mesh)
        parts = [[p, n, p.copy()]]
    else:
        raise ValueError(f"no cube-textured surface for geom type {kind}")
    p, n, d = (np.concatenate([part[i] for part in parts]) for i in range(3))
    keep = _area2(p) >= MIN_AREA2
    p, n, d = p[keep], n[keep], d[keep]
    if uniform:
        d = d * size
    return p, n, d


def _area2(tri: np.ndarray) -> np.ndarray:
    """Twice the area, squared, of triangles (t, 3, 3)."""
    return np.sum(np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0]) ** 2, axis=1)


def _face_of(d: np.ndarray) -> np.ndarray:
    """Index into FACES of each direction's major axis (..., 3) -> (...)."""
    axis = np.argmax(np.abs(d), axis=-1)
    sign = np.take_along_axis(d, axis[..., None], -1)[..., 0] < 0
    return 2 * axis + sign


def _clip(poly: list, face: int) -> list:
    """The part of a convex polygon [(point, normal, direction), ...] whose directions lie in
    face `face`'s region (the four planes where the face's axis ties another)."""
    axis, sign = FACES[face]
    for other in (a for a in range(3) if a != axis):
        for s in (1, -1):
            def g(vertex):
                return sign * vertex[2][axis] - s * vertex[2][other]
            out = []
            for i, cur in enumerate(poly):
                prev = poly[i - 1]
                gc, gp = g(cur), g(prev)
                if (gc >= 0) != (gp >= 0):
                    out.append(_crossing(prev, cur, g))
                if gc >= 0:
                    out.append(cur)
            poly = out
            if not poly:
                return []
    return poly


def _crossing(a: tuple, b: tuple, g) -> tuple:
    """Where g changes sign along the edge a-b, computed from the edge's lesser end: the
    triangle on the edge's other side, which walks it the other way, gets the very same
    point (a crack between two pieces would let the background through)."""
    if tuple(b[0]) < tuple(a[0]):
        a, b = b, a
    ga, gb = g(a), g(b)
    t = ga / (ga - gb)
    return tuple(x + t * (y - x) for x, y in zip(a, b))


def _uv(d: np.ndarray, face) -> np.ndarray:
    """Atlas coordinates (s, 1 - t, as three.js samples the atlas) of directions d (..., 3)
    in faces `face` (an index into FACES, or an array broadcasting against d[..., 0])."""
    face = np.broadcast_to(np.asarray(face), d.shape[:-1])
    axis, _, sa, ss, ta, ts = (_FACE_TABLE[face, k] for k in range(6))

    def at(k):
        return np.take_along_axis(d, k[..., None], -1)[..., 0]
    ma = np.maximum(np.abs(at(axis)), 1e-12)
    s = (ss * at(sa) / ma + 1) / 2
    t = (ts * at(ta) / ma + 1) / 2
    return np.stack([(face + np.clip(s, 0, 1)) / len(FACES), 1 - np.clip(t, 0, 1)], -1)


def cut(points: np.ndarray, normals: np.ndarray, dirs: np.ndarray):
    """Flat (corners, 3) points, normals and (corners, 2) atlas coordinates of the surface
    with every triangle cut along the faces' seams (module docstring)."""
    faces = _face_of(dirs)
    whole = (faces == faces[:, :1]).all(axis=1)
    p, n, d, f = [points[whole]], [normals[whole]], [dirs[whole]], [faces[whole][:, 0]]
    for i in np.flatnonzero(~whole):
        tri = list(zip(points[i], normals[i], dirs[i]))
        # A triangle with corners in two faces may cross a third between them (corners
        # (1, 0, 0.9) and (0, 1, 0.9) have (0.5, 0.5, 0.9) between): try all six.
        for face in range(len(FACES)):
            poly = _clip(tri, face)
            for j in range(1, len(poly) - 1):
                piece = [poly[0], poly[j], poly[j + 1]]
                if _area2(np.array([[v[0] for v in piece]]))[0] < MIN_AREA2:
                    continue
                for acc, k in ((p, 0), (n, 1), (d, 2)):
                    acc.append(np.array([v[k] for v in piece])[None])
                f.append(np.array([face]))
    p, n, d, f = (np.concatenate(a) for a in (p, n, d, f))
    uv = _uv(d, f[:, None]).reshape(-1, 2)
    p, n = p.reshape(-1, 3), n.reshape(-1, 3)
    n = n / np.maximum(np.linalg.norm(n, axis=1, keepdims=True), 1e-12)
    return p.astype(np.float32), n.astype(np.float32), uv.astype(np.float32)


def arrays(model, geom: int, mesh=None):
    """(points, normals, atlas coordinates) of cube-textured geom `geom`, in its frame (a
    mesh: the mesh frame), ready for a PLY."""
    kind = int(model.geom_type[geom])
    mat = int(model.geom_matid[geom])
    uniform = bool(model.mat_texuniform[mat]) if mat >= 0 else False
    return cut(*surface(kind, model.geom_size[geom], uniform, mesh))
