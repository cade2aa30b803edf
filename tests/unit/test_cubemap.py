"""Cube-textured surfaces (raycollect/mjcf/cubemap.py): cut along the cube's seams without
losing or turning a triangle or opening a crack, every piece inside one face's tile of the
atlas, and the
page's linear coordinates within two texels of a 512-pixel face of the projection MuJoCo's OpenGL makes
(tests/test_mujoco.py compares the drawn result with MuJoCo's renderer)."""

import numpy as np
import pytest

from raycollect.mjcf import cubemap as cm

R, H = 0.2, 0.4
BOX = np.array([0.6, 0.3, 0.15])
ELLIPSOID = np.array([0.2, 0.4, 0.6])
# Two texels of a 512-pixel face (the cut refines to one at edge midpoints and centres).
MAX_ERROR = 0.004


def _capsule_direction(q):
    d = np.c_[q[:, :2] / R, q[:, 2] / H]
    top, bottom = q[:, 2] > H, q[:, 2] < -H
    d[top, 2] = 1 + (q[top, 2] - H) / R
    d[bottom, 2] = -1 + (q[bottom, 2] + H) / R
    return d


def _cylinder_direction(q):
    return np.c_[q[:, :2] / R, np.clip(q[:, 2] / H, -1, 1)]


CASES = {
    "cylinder": (cm.CYLINDER, (R, H, 0), False, _cylinder_direction),
    "capsule": (cm.CAPSULE, (R, H, 0), False, _capsule_direction),
    "ellipsoid": (cm.ELLIPSOID, ELLIPSOID, False, lambda q: q / ELLIPSOID),
    "box": (cm.BOX, BOX, False, lambda q: q / BOX),
    "box texuniform": (cm.BOX, BOX, True, lambda q: q),
    "capsule texuniform": (cm.CAPSULE, (R, H, 0), True,
                           lambda q: _capsule_direction(q) * np.array([R, R, H])),
}


def _area(tri):
    return np.linalg.norm(np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0]), axis=1) / 2


@pytest.mark.parametrize("case", CASES)
def test_cut_keeps_the_surface_and_each_piece_in_one_face(case):
    kind, size, uniform, direction = CASES[case]
    points, normals, dirs = cm.surface(kind, size, uniform)
    p, n, uv = cm.cut(points, normals, dirs)
    tri, tuv = p.reshape(-1, 3, 3), uv.reshape(-1, 3, 2)
    assert _area(tri).sum() == pytest.approx(_area(points).sum(), rel=1e-6)
    # counter-clockwise seen from outside, as the surface's normals say
    facing = np.einsum("ij,ij->i", np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0]),
                       n.reshape(-1, 3, 3).mean(axis=1))
    assert (facing > 0).all()
    # watertight: every edge (corners welded to a micrometre) is two triangles', walked
    # both ways; a T-junction's crack would let the background through
    _, corner = np.unique(np.round(p.astype(np.float64), 6), axis=0, return_inverse=True)
    corner = corner.reshape(-1, 3)
    edges = np.concatenate([corner[:, [0, 1]], corner[:, [1, 2]], corner[:, [2, 0]]])
    edges = edges[edges[:, 0] != edges[:, 1]]
    walked, count = np.unique(edges, axis=0, return_counts=True)
    assert (count == 1).all(), (case, int((count > 1).sum()))
    back = {tuple(e) for e in walked.tolist()}
    assert all((b, a) in back for a, b in walked.tolist()), case
    tile = np.floor(tuv[:, :, 0].mean(axis=1) * len(cm.FACES))
    assert (np.abs(tuv[:, :, 0] * len(cm.FACES) - tile[:, None] - 0.5) <= 0.5 + 1e-6).all()
    # at random points of every piece: the coordinates the page interpolates against the
    # face and projection of the direction there (OpenGL's, per fragment)
    rng = np.random.default_rng(0)
    w = rng.dirichlet([1, 1, 1], size=len(tri))
    q, quv = np.einsum("tk,tkj->tj", w, tri), np.einsum("tk,tkj->tj", w, tuv)
    d = direction(q)
    want = cm._uv(d, cm._face_of(d))
    error = np.abs(want - quv) * np.array([len(cm.FACES), 1])  # in face widths
    assert error.max() <= MAX_ERROR, (case, error.max())


def test_seams_of_a_cylinder_are_curved():
    """On a cylinder's side MuJoCo shows the side faces where the direction's radius beats
    its height and a cap's face above that: at z = 0.9 h, +X straight ahead of the axis and
    +Z at 45 degrees round."""
    points, normals, dirs = cm.surface(cm.CYLINDER, (R, H, 0), False)
    p, _, uv = cm.cut(points, normals, dirs)
    tri, tuv = p.reshape(-1, 3, 3), uv.reshape(-1, 3, 2)
    for angle, face in ((0.01, cm.FACES.index((0, 1))), (np.pi / 4 + 0.01, cm.FACES.index((2, 1)))):
        spot = np.array([R * np.cos(angle), R * np.sin(angle), 0.9 * H])
        (piece,) = _pieces_at(tri, spot)[:1]
        assert int(tuv[piece, :, 0].mean() * len(cm.FACES)) == face


def _pieces_at(tri, spot, off=1e-3):
    """Triangles whose plane passes within `off` of `spot` and which hold its projection."""
    tri = tri.astype(np.float64)
    e1, e2 = tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0]
    normal = np.cross(e1, e2)
    normal /= np.linalg.norm(normal, axis=1, keepdims=True)
    rel = spot - tri[:, 0]
    dist = np.einsum("ij,ij->i", rel, normal)
    rel = rel - dist[:, None] * normal
    g = np.stack([np.einsum("ij,ij->i", a, b) for a, b in ((e1, e1), (e1, e2), (e2, e2))], 1)
    r1, r2 = np.einsum("ij,ij->i", rel, e1), np.einsum("ij,ij->i", rel, e2)
    det = g[:, 0] * g[:, 2] - g[:, 1] ** 2
    u, v = (g[:, 2] * r1 - g[:, 1] * r2) / det, (g[:, 0] * r2 - g[:, 1] * r1) / det
    return np.flatnonzero((np.abs(dist) < off) & (u >= -1e-9) & (v >= -1e-9) & (u + v <= 1 + 1e-9))


def test_a_mesh_is_looked_up_by_its_own_coordinates():
    tri = np.array([[[1.0, -0.2, -0.2], [1.0, 0.2, -0.2], [1.0, 0.0, 0.3]]])
    normals = np.tile([1.0, 0.0, 0.0], (1, 3, 1))
    points, _, dirs = cm.surface(cm.MESH, (9, 9, 9), False, mesh=(tri, normals))
    np.testing.assert_array_equal(dirs, tri)
    _, _, uv = cm.cut(points, normals, dirs)
    assert (np.floor(uv[:, 0] * len(cm.FACES)) == cm.FACES.index((0, 1))).all()
