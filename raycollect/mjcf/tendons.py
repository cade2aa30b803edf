"""MuJoCo's spatial tendons (ball_in_cup's string), drawn as MuJoCo's renderer draws them.

For a state, MuJoCo's renderer draws a spatial tendon as capsules along its path, one per
straight piece between wrap points, of radius `tendon_width`; which pieces there are is
read from MuJoCo itself (`mjv_updateScene` with only tendons shown: each `mjvGeom` of the
tendon gives a capsule's centre, axis and half-length), so wrapping is MuJoCo's.

A tendon is one instance, keyed by its name (`tendon<i>` unnamed, `tendon-<name>` when a
body has the name), drawn through the skin machinery (raycollect/mjcf/skins.py,
capture_js/skin.js): a PLY of MAX_PIECES_PER_OBJECT x `tendon_num` capsules, each a unit
capsule from z = 0 to z = 1 whose lower end (ring and cap) follows one bone and upper end
another. A piece from p0 to p1 with rotation R (its z along p1 - p0) gets bones (R, p0) and
(R, p1 - R e_z): a capsule of the tendon's radius from p0 to p1, any length, caps round.
Pieces the state does not use are folded onto the first piece's lower end (a sphere of the
same radius inside its cap), so every state has the same mesh and a rollout's jobs share one
scene update.
"""

from __future__ import annotations

import math
import threading

import numpy as np

from . import files, geoms, skins

TENDON_DIR = "tendons"
VISIBLE_GROUPS = 3  # mjvOption.tendongroup's default
OBJ_TENDON = 18  # mjtObj.mjOBJ_TENDON
SPATIAL_WRAPS = (2, 3, 4, 5)  # mjtWrap: pulley, site, sphere, cylinder
# A wrap object can add a piece and two tangent points: at most this many pieces each.
MAX_PIECES_PER_OBJECT = 3
AROUND, CAP_RINGS = 32, 8  # a capsule's segments around and rings per cap


def visible(model, tendon: int) -> bool:
    """Drawn by MuJoCo's renderer with its default options: a spatial tendon of groups 0-2,
    not transparent, of some width."""
    adr, num = int(model.tendon_adr[tendon]), int(model.tendon_num[tendon])
    spatial = any(int(w) in SPATIAL_WRAPS for w in model.wrap_type[adr:adr + num])
    return (spatial and int(model.tendon_group[tendon]) < VISIBLE_GROUPS
            and float(model.tendon_width[tendon]) > 0 and colour(model, tendon)[3] > 0)


def colour(model, tendon: int) -> np.ndarray:
    return geoms.colour(model, model.tendon_rgba[tendon], int(model.tendon_matid[tendon]))


def key(model, tendon: int, taken: set[str]) -> str:
    name = model.tendon(tendon).name or f"tendon{tendon}"
    return name if name not in taken else f"tendon-{name}"


def pieces(model, tendon: int) -> int:
    return MAX_PIECES_PER_OBJECT * max(1, int(model.tendon_num[tendon]))


def ply_file(tendon: int) -> str:
    return f"{TENDON_DIR}/{tendon}.ply"


def bones_file(tendon: int) -> str:
    return f"{TENDON_DIR}/{tendon}.bin"


def capsule(radius: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(vertices, triangles, end) of a capsule of `radius` from z = 0 to z = 1: `end` is 0
    for a vertex of the lower ring and cap, 1 for the upper."""
    verts, end = [], []
    a = np.linspace(0, 2 * math.pi, AROUND, endpoint=False)
    rings = []  # from the lower pole up: (z offset, ring radius, end)
    for k in range(CAP_RINGS, 0, -1):
        phi = k * math.pi / 2 / CAP_RINGS
        rings.append((-radius * math.sin(phi), radius * math.cos(phi), 0))
    rings.append((0.0, radius, 0))
    rings.append((1.0, radius, 1))
    for k in range(1, CAP_RINGS + 1):
        phi = k * math.pi / 2 / CAP_RINGS
        rings.append((1.0 + radius * math.sin(phi), radius * math.cos(phi), 1))
    for z, r, e in rings:
        for t in a:
            verts.append((r * math.cos(t), r * math.sin(t), z))
            end.append(e)
    tris = []
    for i in range(len(rings) - 1):
        for k in range(AROUND):
            p, q = i * AROUND + k, i * AROUND + (k + 1) % AROUND
            tris += [(p, q, q + AROUND), (p, q + AROUND, p + AROUND)]
    bottom, top = len(verts), len(verts) + 1
    verts += [(0.0, 0.0, -radius), (0.0, 0.0, 1.0 + radius)]
    end += [0, 1]
    last = (len(rings) - 1) * AROUND
    tris += [(bottom, (k + 1) % AROUND, k) for k in range(AROUND)]
    tris += [(top, last + k, last + (k + 1) % AROUND) for k in range(AROUND)]
    return np.asarray(verts, np.float32), np.asarray(tris, np.int64), np.asarray(end)


def mesh(model, tendon: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The tendon's bind mesh and bones: (vertices, triangles, counts, ids, weights), piece
    j's lower end on bone 2j and upper end on bone 2j + 1."""
    v, t, e = capsule(float(model.tendon_width[tendon]))
    n = pieces(model, tendon)
    verts = np.concatenate([v] * n)
    tris = np.concatenate([t + j * len(v) for j in range(n)])
    ids, counts = [], []
    for j in range(n):
        for side in (0, 1):
            sel = np.flatnonzero(e == side) + j * len(v)
            ids.append(sel)
            counts.append(len(sel))
    ids = np.concatenate(ids)
    return verts, tris, np.asarray(counts), ids, np.ones(len(ids), np.float32)


def write(model, folder) -> None:
    """Every visible tendon's PLY and bones file into `folder` (files.write_folder calls it)."""
    shown = [t for t in range(model.ntendon) if visible(model, t)]
    if not shown:
        return
    (folder / TENDON_DIR).mkdir(exist_ok=True)
    for t in shown:
        verts, tris, counts, ids, weights = mesh(model, t)
        corners = tris.reshape(-1)
        nrm = skins.normals(verts, tris).astype(np.float32)
        (folder / ply_file(t)).write_bytes(files.ply_bytes(verts[corners], nrm[corners]))
        (folder / bones_file(t)).write_bytes(skins.pack_bones(verts, tris, counts, ids, weights))


class Paths:
    """Where MuJoCo's renderer draws each tendon's pieces in a state, read from its own
    scene (mjv_updateScene, only tendons shown); one per process and model."""

    def __init__(self, model):
        import mujoco

        self.model = model
        self.option = mujoco.MjvOption()
        self.option.geomgroup[:] = 0
        self.option.sitegroup[:] = 0
        self.option.skingroup[:] = 0
        self.option.flexgroup[:] = 0
        self.option.flags[mujoco.mjtVisFlag.mjVIS_TENDON] = 1
        self.scene = mujoco.MjvScene(model, maxgeom=max(16, sum(
            pieces(model, t) for t in range(model.ntendon))))
        self.camera = mujoco.MjvCamera()
        self.lock = threading.Lock()

    def pieces(self, data) -> dict[int, list[tuple[np.ndarray, np.ndarray, float]]]:
        """{tendon: [(centre, 3x3 rotation with z along the piece, half-length)]} in `data`,
        whose tendons have been computed (mj_tendon)."""
        import mujoco

        out: dict[int, list] = {}
        with self.lock:
            mujoco.mjv_updateScene(self.model, data, self.option, None, self.camera,
                                   mujoco.mjtCatBit.mjCAT_ALL, self.scene)
            for g in self.scene.geoms[:self.scene.ngeom]:
                if int(g.objtype) == OBJ_TENDON:
                    out.setdefault(int(g.objid), []).append(
                        (np.array(g.pos, dtype=float), np.array(g.mat, dtype=float).reshape(3, 3),
                         float(g.size[2])))
        return out


def bones(model, tendon: int, found: list) -> list[float]:
    """The tendon's bones in a state, [tx, ty, tz, qx, qy, qz, qw] per bone (skins.bones'
    layout): its pieces', then the unused ones folded onto the first piece's lower end."""
    import mujoco

    n = pieces(model, tendon)
    out, fold = [], None
    for centre, rot, half in found[:n]:
        p0, p1 = centre - half * rot[:, 2], centre + half * rot[:, 2]
        q = np.zeros(4)
        mujoco.mju_mat2Quat(q, rot.reshape(-1))
        xyzw = [q[1], q[2], q[3], q[0]]
        out += [*p0, *xyzw, *(p1 - rot[:, 2]), *xyzw]
        if fold is None:  # both ends at p0: a sphere inside the first piece's lower cap
            fold = [*p0, *xyzw, *(p0 - rot[:, 2]), *xyzw]
    if fold is None:  # nothing drawn: every piece a point far below anything a camera shows
        fold = [0.0, 0.0, -1e6, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, -1e6 - 1.0, 0.0, 0.0, 0.0, 1.0]
    out += fold * (n - len(out) // 14)
    return [float(v) for v in out]
