"""The files an MJCF world serves: every mesh of the compiled model as a binary float32 PLY.

Meshes are written from the model's own arrays (`mesh_vert`, `mesh_face`, `mesh_normal`,
`mesh_facenormal`), not copied from the files the MJCF names: MuJoCo has already scaled
them, moved them to their centre of mass and rotated them to their principal axes (the
geom's pose says where that frame is), and read MuJoCo's own MSH format, which no browser
loader reads. Vertices stay float32, as MuJoCo holds them (Vuer's TriMesh would send
float16: up to half a millimetre off at a metre). Each triangle corner is its own vertex
with MuJoCo's normal for that corner, so the page shades exactly what MuJoCo's renderer
shades, smooth and creased edges alike.

The folder is keyed by a digest of what it holds, under the system temp dir, and written
once per machine (a finished folder is renamed into place), so reloading a world costs
nothing and two processes can race to write it.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
from pathlib import Path

import numpy as np

# Bump when the files' layout changes: a cached folder of the old layout is not reused.
LAYOUT = "mjcf-files-1"
ROOT_NAME = "raycollect-mjcf"
MESH_DIR = "meshes"


def mesh_arrays(model, mesh: int) -> tuple[np.ndarray, np.ndarray]:
    """(positions, normals) of one mesh, 3 float32 corners per triangle, in the mesh frame
    (which the geom's pos/quat place in its body)."""
    v0, nv = model.mesh_vertadr[mesh], model.mesh_vertnum[mesh]
    f0, nf = model.mesh_faceadr[mesh], model.mesh_facenum[mesh]
    n0 = model.mesh_normaladr[mesh]
    verts = np.asarray(model.mesh_vert[v0:v0 + nv], dtype=np.float32)
    faces = np.asarray(model.mesh_face[f0:f0 + nf])
    normal_ids = np.asarray(model.mesh_facenormal[f0:f0 + nf])
    normals = np.asarray(model.mesh_normal, dtype=np.float32)
    return verts[faces].reshape(-1, 3), normals[n0 + normal_ids].reshape(-1, 3)


def ply_bytes(positions: np.ndarray, normals: np.ndarray) -> bytes:
    """A binary little-endian PLY of unshared triangle corners with normals."""
    n = len(positions)
    header = ("ply\nformat binary_little_endian 1.0\n"
              f"element vertex {n}\nproperty float x\nproperty float y\nproperty float z\n"
              "property float nx\nproperty float ny\nproperty float nz\n"
              f"element face {n // 3}\nproperty list uchar int vertex_indices\nend_header\n")
    verts = np.concatenate([positions, normals], axis=1).astype("<f4")
    faces = np.zeros(n // 3, dtype=[("n", "u1"), ("i", "<i4", 3)])
    faces["n"] = 3
    faces["i"] = np.arange(n, dtype="<i4").reshape(-1, 3)
    return header.encode("ascii") + verts.tobytes() + faces.tobytes()


def mesh_file(mesh: int) -> str:
    """The path of mesh `mesh`'s PLY inside the folder."""
    return f"{MESH_DIR}/{mesh}.ply"


def digest(model) -> str:
    h = hashlib.blake2b(LAYOUT.encode(), digest_size=12)
    for name in ("mesh_vert", "mesh_face", "mesh_normal", "mesh_facenormal", "mesh_vertadr",
                 "mesh_faceadr", "mesh_normaladr"):
        h.update(np.ascontiguousarray(getattr(model, name)).tobytes())
    return h.hexdigest()


def write_folder(model, parent: str | os.PathLike | None = None) -> Path:
    """The folder holding every mesh of `model` as PLY (mesh_file(i)); written if missing."""
    parent = Path(parent) if parent else Path(tempfile.gettempdir()) / ROOT_NAME
    folder = parent / digest(model)
    if folder.is_dir():
        return folder
    parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{folder.name}-", dir=parent))
    try:
        (tmp / MESH_DIR).mkdir()
        for mesh in range(model.nmesh):
            (tmp / mesh_file(mesh)).write_bytes(ply_bytes(*mesh_arrays(model, mesh)))
        os.rename(tmp, folder)  # atomic; another process may have won the race
    except OSError:
        if not folder.is_dir():
            raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return folder
