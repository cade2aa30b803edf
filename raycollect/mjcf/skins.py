"""MuJoCo skins (`<skin>` in `<deformable>`: dm_control's dog, its rodent): meshes whose
vertices follow several bodies, drawn as MuJoCo's renderer draws them.

MuJoCo computes a skin's vertices for each state (`mjv_updateActiveSkin`) by linear blend
skinning: bone j (a body b with a bind pose) moves a vertex v, given in the world at the
bind pose, to R_j v + t_j, where R_j is the rotation of xquat_b times the inverse of the
bone's `bindquat` and t_j = xpos_b - R_j bindpos; a vertex is the weighted sum of what its
bones make of it (`skin_bonevertweight`, which sum to 1 per vertex); then, with `inflate`,
each vertex moves that far along its normal (the sum of the cross products of the edges of
the faces around it, normalised). Checked against MuJoCo's own `mjv_updateSkin` to float32
rounding (tests/unit/test_mjcf_pure.py).

A skin is one top-level element, keyed by its name, in the world's frame: a group holding a
PLY of its triangles at the bind pose (each corner its own vertex, with the texture
coordinates of its material's 2D texture) and, in its userData (SKIN_DATA, read by
raycollect/render/capture_js/skin.js), the URL of a binary file of what the page needs to
skin it: which vertex each corner is, the bind-pose vertices, every bone's vertices and
weights, and the inflation. A job's state gives only the bones' (t_j, R_j), per view
(raycollect/scene.py `skinned`), so jobs that differ only in their state share one scene
update, as the moving bodies do, and the page moves the vertices before the view renders.
"""

from __future__ import annotations

import numpy as np
from vuer.schemas import Ply, group

from ..assets import asset
from ..scene import SKIN_DATA, skinned
from . import files, geoms

SKIN_DIR = "skins"
# Skin groups MuJoCo's renderer shows by default (mjvOption.skingroup), as for geoms.
VISIBLE_GROUPS = 3
# The bones file: little-endian 4-byte words; see bones_bytes.
BONES_MAGIC = b"RCSK"


def visible(model, skin: int) -> bool:
    return int(model.skin_group[skin]) < VISIBLE_GROUPS and rgba(model, skin)[3] > 0


def rgba(model, skin: int) -> np.ndarray:
    """The skin's own rgba, or its material's when it has one and leaves its rgba at the
    default (MuJoCo's rule for geoms and skins alike)."""
    return geoms.colour(model, model.skin_rgba[skin], int(model.skin_matid[skin]))


def texture(model, skin: int) -> int:
    """The 2D texture MuJoCo draws on the skin (its material's RGB texture, when the skin has
    texture coordinates), or -1."""
    mat = int(model.skin_matid[skin])
    if mat < 0 or int(model.skin_texcoordadr[skin]) < 0:
        return -1
    tex = int(np.asarray(model.mat_texid).reshape(model.nmat, -1)[mat, files.TEXROLE_RGB])
    return tex if tex >= 0 and int(model.tex_type[tex]) == files.TEX_2D else -1


def key(model, skin: int, taken: set[str]) -> str:
    """The skin's element key: its name (`skin<i>` unnamed), prefixed when a body has it."""
    name = model.skin(skin).name or f"skin{skin}"
    return name if name not in taken else f"skin-{name}"


def ply_file(model, skin: int) -> str:
    tex = texture(model, skin)
    return f"{SKIN_DIR}/{skin}.ply" if tex < 0 else f"{SKIN_DIR}/{skin}-t{tex}.ply"


def bones_file(skin: int) -> str:
    return f"{SKIN_DIR}/{skin}.bin"


def vertices(model, skin: int) -> np.ndarray:
    """The skin's vertices at the bind pose (float32, world frame)."""
    v0, nv = int(model.skin_vertadr[skin]), int(model.skin_vertnum[skin])
    return np.asarray(model.skin_vert[v0:v0 + nv], dtype=np.float32)


def faces(model, skin: int) -> np.ndarray:
    f0, nf = int(model.skin_faceadr[skin]), int(model.skin_facenum[skin])
    return np.asarray(model.skin_face[f0:f0 + nf], dtype=np.int64)


def normals(verts: np.ndarray, tris: np.ndarray) -> np.ndarray:
    """MuJoCo's skin normals: per vertex the sum of its faces' edge cross products (so
    weighted by area), normalised."""
    v = verts.astype(np.float64)
    n = np.cross(v[tris[:, 1]] - v[tris[:, 0]], v[tris[:, 2]] - v[tris[:, 0]])
    out = np.zeros_like(v)
    for corner in range(3):
        np.add.at(out, tris[:, corner], n)
    length = np.linalg.norm(out, axis=1, keepdims=True)
    return out / np.where(length > 0, length, 1.0)


def bone_arrays(model, skin: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(counts per bone, vertex ids, weights) of the skin's bones, in bone order."""
    b0, nb = int(model.skin_boneadr[skin]), int(model.skin_bonenum[skin])
    counts = np.asarray(model.skin_bonevertnum[b0:b0 + nb], dtype=np.int64)
    ids, weights = [], []
    for j in range(b0, b0 + nb):
        a, n = int(model.skin_bonevertadr[j]), int(model.skin_bonevertnum[j])
        ids.append(np.asarray(model.skin_bonevertid[a:a + n]))
        weights.append(np.asarray(model.skin_bonevertweight[a:a + n]))
    cat = (lambda xs, t: np.concatenate(xs).astype(t) if xs else np.zeros(0, t))
    return counts, cat(ids, np.int64), cat(weights, np.float32)


def ply_bytes(model, skin: int) -> bytes:
    """The skin at the bind pose: three corners per face with MuJoCo's normals (and the
    texture coordinates, as (s, 1 - t) like a mesh's: raycollect/mjcf/files.py)."""
    verts, tris = vertices(model, skin), faces(model, skin)
    corners = tris.reshape(-1)
    uv = None
    if texture(model, skin) >= 0:
        t0 = int(model.skin_texcoordadr[skin])
        st = np.asarray(model.skin_texcoord[t0:t0 + len(verts)], dtype=np.float32)
        uv = np.stack([st[:, 0], np.float32(1) - st[:, 1]], axis=1)[corners]
    nrm = normals(verts, tris).astype(np.float32)
    return files.ply_bytes(verts[corners], nrm[corners], uv, files.PLY_TEXTURE if uv is not None else None)


def bones_bytes(model, skin: int) -> bytes:
    """The skin's bones file (`pack_bones`)."""
    return pack_bones(vertices(model, skin), faces(model, skin), *bone_arrays(model, skin),
                      float(model.skin_inflate[skin]))


def pack_bones(verts: np.ndarray, tris: np.ndarray, counts: np.ndarray, ids: np.ndarray,
               weights: np.ndarray, inflate: float = 0.0) -> bytes:
    """What the page skins with: BONES_MAGIC, then uint32 vertices, corners, bones; float32
    inflate; uint32 the vertex of each corner; float32 the bind-pose vertices (x, y, z);
    uint32 each bone's vertex count; uint32 the bones' vertex ids; float32 their weights."""
    head = np.array([len(verts), tris.size, len(counts)], "<u4").tobytes()
    return b"".join([BONES_MAGIC, head, np.float32(inflate).astype("<f4").tobytes(),
                     tris.reshape(-1).astype("<u4").tobytes(), verts.astype("<f4").tobytes(),
                     counts.astype("<u4").tobytes(), ids.astype("<u4").tobytes(),
                     weights.astype("<f4").tobytes()])


def write(model, folder) -> None:
    """Every visible skin's PLY and bones file (and its texture's PNG) into `folder`
    (raycollect/mjcf/files.py `write_folder` calls it)."""
    if not model.nskin:
        return
    (folder / SKIN_DIR).mkdir(exist_ok=True)
    for skin in range(model.nskin):
        if not visible(model, skin):
            continue
        (folder / ply_file(model, skin)).write_bytes(ply_bytes(model, skin))
        (folder / bones_file(skin)).write_bytes(bones_bytes(model, skin))
        tex = texture(model, skin)
        if tex >= 0 and not (folder / files.texture_file(tex)).exists():
            (folder / files.texture_file(tex)).write_bytes(
                files.png_bytes(files.texture_image(model, tex)))


def bones(model, skin: int, xpos: np.ndarray, xquat: np.ndarray) -> list[float]:
    """Each bone's (t_j, q_j) in a state: [tx, ty, tz, qx, qy, qz, qw] per bone (three.js's
    quaternion order), q_j = xquat_b * conj(bindquat_j), t_j = xpos_b - R(q_j) bindpos_j."""
    b0, nb = int(model.skin_boneadr[skin]), int(model.skin_bonenum[skin])
    body = np.asarray(model.skin_bonebodyid[b0:b0 + nb])
    bind_q = np.asarray(model.skin_bonebindquat[b0:b0 + nb], dtype=np.float64)
    bind_p = np.asarray(model.skin_bonebindpos[b0:b0 + nb], dtype=np.float64)
    q = _qmul_wxyz(xquat[body], bind_q * np.array([1.0, -1.0, -1.0, -1.0]))
    t = xpos[body] - np.einsum("nij,nj->ni", _rot_wxyz(q), bind_p)
    out = np.concatenate([t, q[:, 1:], q[:, :1]], axis=1)
    return [float(v) for v in out.reshape(-1)]


def skin_points(model, skin: int, xpos: np.ndarray, xquat: np.ndarray) -> np.ndarray:
    """The skin's vertices in a state, as the page computes them from `bones` (float64):
    what tests compare with MuJoCo's own."""
    verts = vertices(model, skin).astype(np.float64)
    counts, ids, weights = bone_arrays(model, skin)
    pose = np.asarray(bones(model, skin, xpos, xquat)).reshape(-1, 7)
    out = np.zeros_like(verts)
    start = 0
    for j, n in enumerate(counts):
        sel, w = ids[start:start + n], weights[start:start + n].astype(np.float64)
        start += n
        q = np.concatenate([pose[j, 6:7], pose[j, 3:6]])
        rot = _rot_wxyz(q[None])[0]
        out[sel] += w[:, None] * (verts[sel] @ rot.T + pose[j, :3])
    inflate = float(model.skin_inflate[skin])
    if inflate:
        out += inflate * normals(out, faces(model, skin))
    return out


def element(model, skin: int, skin_key: str, xpos: np.ndarray, xquat: np.ndarray):
    """The skin's element in a state: its group at the world's origin (its vertices are in
    the world frame), skinned per view."""
    tex = texture(model, skin)
    return skinned_element(skin_key, f"s{skin}", ply_file(model, skin), bones_file(skin),
                           rgba(model, skin), bones(model, skin, xpos, xquat),
                           files.texture_file(tex) if tex >= 0 else None)


def skinned_element(key: str, ply_key: str, ply: str, bones_path: str, colour, bone_poses,
                    texture_path: str | None = None):
    """A group at the world's origin holding the PLY `ply` (a file of the world's folder),
    skinned per view by `bone_poses` with the bones file `bones_path`."""
    extra = {"assets": {files.PLY_TEXTURE: asset(texture_path)}} if texture_path else {}
    mesh = Ply(key=ply_key, src=asset(ply), color=geoms.hex_colour(colour),
               opacity=float(colour[3]), **extra)
    return skinned(group(mesh, key=key, userData={SKIN_DATA: asset(bones_path)}), bone_poses)


def _qmul_wxyz(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    aw, ax, ay, az = np.moveaxis(a, -1, 0)
    bw, bx, by, bz = np.moveaxis(b, -1, 0)
    return np.stack([aw * bw - ax * bx - ay * by - az * bz,
                     aw * bx + ax * bw + ay * bz - az * by,
                     aw * by - ax * bz + ay * bw + az * bx,
                     aw * bz + ax * by - ay * bx + az * bw], axis=-1)


def _rot_wxyz(q: np.ndarray) -> np.ndarray:
    """Rotation matrices of (w, x, y, z) quaternions (normalised first, as mju_quat2Mat
    assumes unit ones)."""
    q = q / np.linalg.norm(q, axis=-1, keepdims=True)
    w, x, y, z = np.moveaxis(q, -1, 0)
    return np.stack([np.stack([1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y)], -1),
                     np.stack([2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x)], -1),
                     np.stack([2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y)], -1)],
                    axis=-2)
