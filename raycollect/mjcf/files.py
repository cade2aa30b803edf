"""The files an MJCF world serves: every mesh and height field of the compiled model as a
binary float32 PLY.

Meshes are written from the model's own arrays (`mesh_vert`, `mesh_face`, `mesh_normal`,
`mesh_facenormal`), not copied from the files the MJCF names: MuJoCo has already scaled
them, moved them to their centre of mass and rotated them to their principal axes (the
geom's pose says where that frame is), and read MuJoCo's own MSH format, which no browser
loader reads. Vertices stay float32, as MuJoCo holds them (Vuer's TriMesh would send
float16: up to half a millimetre off at a metre). Each triangle corner is its own vertex
with MuJoCo's normal for that corner, so the page shades exactly what MuJoCo's renderer
shades, smooth and creased edges alike.

A height field is tessellated as MuJoCo's renderer builds it (`mjr_uploadHField`): the grid
point of row r and column c at x = size[0] (2c / (ncol - 1) - 1), y = size[1] (2r / (nrow -
1) - 1), z = size[2] * elevation (`hfield_data`, normalised to 0..1 by MuJoCo), each cell cut
into two triangles along its (r, c)-(r+1, c+1) diagonal with flat normals, four side walls
down to the base at z = -size[3] and a flat bottom: a closed solid in the geom's frame.

Textures: every 2D texture a drawn geom's material uses (`mat_texid`, the RGB role) is
written as a PNG of the model's own pixels (`tex_data`): a PNG file the MJCF names and
MuJoCo's builtin checker, gradient and flat textures alike, as MuJoCo baked them. MuJoCo's
OpenGL samples `tex_data` row 0 at t = 0; three.js (flipY) samples a PNG's top row at v = 1,
so a mesh's texture coordinates are written as (s, 1 - t) beside the unflipped image. A plane
gets the coordinates MuJoCo 4's renderer generates, measured with mujoco.Renderer (a
one-sided stripe texture along each axis, several sizes and repeats; `plane_map`): along a
finite axis of half-size h, with R = `mat_texrepeat` (times h with `mat_texuniform`),
s = R (x / h + 1) / 2 from the plane's -x edge and t = R (1 - y / h) / 2 from its +y edge;
along an infinite axis (size 0), s = R x / 2 - 1/2 and t = -R y / 2 - 1/2 in metres. Vuer's
material takes a repeat but no offset, so the offset is baked into the image by rolling it.

The skybox (the model's first texture of type skybox, as MuJoCo's renderer draws it) is
written as the six face images of a three.js cube texture, which the page shows as the
scene's background (what the frame shows where no geom is; never in depth or masks).
MuJoCo holds a cube texture as six square faces stacked in OpenGL's order (+X, -X, +Y, -Y,
+Z, -Z) and turns it so that the texture's +Y is the world's +Z and its +Z the world's -Y,
measured with mujoco.Renderer (a face of its own colour and a marked corner each, looked at
along every axis); that is the turn raycollect's up="z" gives the world on the page
(raycollect/camera.py), so the texture's frame is three.js's. three.js samples a cube
texture with x mirrored (its skybox-image convention): faces +X and -X are swapped and each
face is mirrored left to right.

A geom with a cube texture (a box, sphere, ellipsoid, cylinder, capsule or a mesh) is written
as a PLY of its surface cut along the cube's seams, with texture coordinates into an atlas of
the six face images (raycollect/mjcf/cubemap.py: how MuJoCo maps the cube onto each shape),
beside the atlas PNG. A texture of one image is that image on every face.

Skins and tendons are written by raycollect/mjcf/skins.py and tendons.py into the same
folder.

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

from . import cubemap

# Bump when the files' layout changes: a cached folder of the old layout is not reused.
LAYOUT = "mjcf-files-10"
ROOT_NAME = "raycollect-mjcf"
MESH_DIR = "meshes"
HFIELD_DIR = "hfields"
TEXTURE_DIR = "textures"
TEX_2D = 0  # mjtTexture.mjTEXTURE_2D
TEX_CUBE = 1  # mjtTexture.mjTEXTURE_CUBE
TEX_SKYBOX = 2  # mjtTexture.mjTEXTURE_SKYBOX
CUBE_DIR = "cubes"
# three.js's cube faces (+X, -X, +Y, -Y, +Z, -Z), each the MuJoCo face of this index mirrored
# left to right (module docstring).
SKYBOX_FACE_ORDER = (1, 0, 2, 3, 4, 5)
TEXROLE_RGB = 1  # mjtTextureRole.mjTEXROLE_RGB
# The name a textured mesh's PLY gives its texture (`comment TextureFile`); the element's
# `assets` prop maps it to the PNG's URL (vuer's Ply loads it as the material's map).
PLY_TEXTURE = "texture.png"


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


def _geom_rgb_texture(model, geom: int, kind: int) -> int:
    """The texture of type `kind` MuJoCo draws on a geom (its material's RGB texture), or -1."""
    mat = int(model.geom_matid[geom])
    if mat < 0:
        return -1
    tex = int(np.asarray(model.mat_texid).reshape(model.nmat, -1)[mat, TEXROLE_RGB])
    return tex if tex >= 0 and int(model.tex_type[tex]) == kind else -1


def geom_texture(model, geom: int) -> int:
    """The 2D texture MuJoCo draws on a geom, or -1."""
    return _geom_rgb_texture(model, geom, TEX_2D)


def mesh_texcoords(model, mesh: int) -> np.ndarray | None:
    """(s, 1 - t) of every triangle corner of a mesh with texture coordinates (float32), or
    None: three.js's flipped v of MuJoCo's t (module docstring)."""
    t0 = int(model.mesh_texcoordadr[mesh])
    if t0 < 0:
        return None
    f0, nf = model.mesh_faceadr[mesh], model.mesh_facenum[mesh]
    ids = np.asarray(model.mesh_facetexcoord[f0:f0 + nf]).reshape(-1)
    st = np.asarray(model.mesh_texcoord, dtype=np.float32)[t0 + ids]
    return np.stack([st[:, 0], np.float32(1) - st[:, 1]], axis=1)


def texture_image(model, tex: int) -> np.ndarray:
    """H x W x C uint8 pixels of a texture, row 0 first as MuJoCo holds them."""
    h, w, c = (int(model.tex_height[tex]), int(model.tex_width[tex]),
               int(model.tex_nchannel[tex]))
    adr = int(model.tex_adr[tex])
    return np.asarray(model.tex_data[adr:adr + h * w * c], dtype=np.uint8).reshape(h, w, c)


def plane_map(model, geom: int, far: float) -> tuple[str, list[float], tuple[int, int]] | None:
    """(texture file, [repeat u, repeat v], (roll x, roll y) in pixels) of a plane's 2D
    texture as MuJoCo maps it (module docstring), or None."""
    tex = geom_texture(model, geom)
    if tex < 0:
        return None
    mat = int(model.geom_matid[geom])
    uniform = bool(model.mat_texuniform[mat])
    # three.js's plane coordinates u, v run 0..1 across it; its sample at R u + o (and R v + o,
    # its image flipped) must be MuJoCo's s (and t) there (module docstring)
    repeat, offset = [], []
    for axis, (r, half) in enumerate(zip(model.mat_texrepeat[mat], model.geom_size[geom][:2])):
        r, half = float(r), float(half)
        if half > 0:  # finite: R across the plane, from its -x (s) and +y (t) edge
            total = r * half if uniform else r
            repeat.append(total)
            offset.append(0.0 if axis == 0 else (1.0 - total) % 1.0)
        else:  # infinite: R / 2 per metre about the centre; drawn `far` each side
            total = r * far
            repeat.append(total)
            offset.append((-0.5 * (total + 1.0)) % 1.0)
    h, w = int(model.tex_height[tex]), int(model.tex_width[tex])
    roll = (int(round(-offset[0] * w)) % w, int(round(offset[1] * h)) % h)
    return texture_file(tex, roll), repeat, roll


def texture_file(tex: int, roll: tuple[int, int] = (0, 0)) -> str:
    """The path of texture `tex`'s PNG (rolled by (x, y) pixels) inside the folder."""
    return f"{TEXTURE_DIR}/{tex}.png" if roll == (0, 0) else f"{TEXTURE_DIR}/{tex}-{roll[0]}-{roll[1]}.png"


def png_bytes(pixels: np.ndarray) -> bytes:
    import io

    from PIL import Image

    buf = io.BytesIO()
    mode = {1: "L", 3: "RGB", 4: "RGBA"}[pixels.shape[2]]
    Image.fromarray(pixels[..., 0] if mode == "L" else pixels, mode).save(buf, "PNG")
    return buf.getvalue()


def textured_mesh_file(mesh: int, tex: int) -> str:
    """The PLY of mesh `mesh` with its texture coordinates, naming PLY_TEXTURE."""
    return f"{MESH_DIR}/{mesh}-t{tex}.ply"


def hfield_arrays(model, hfield: int) -> tuple[np.ndarray, np.ndarray]:
    """(positions, normals) of one height field, 3 float32 corners per triangle, in the
    geom's frame, as MuJoCo's renderer draws it (module docstring)."""
    nr, nc = int(model.hfield_nrow[hfield]), int(model.hfield_ncol[hfield])
    adr = int(model.hfield_adr[hfield])
    sx, sy, sz, base = (np.float32(v) for v in model.hfield_size[hfield])
    elev = np.asarray(model.hfield_data[adr:adr + nr * nc], dtype=np.float32).reshape(nr, nc)
    # float32 throughout, as MuJoCo computes them: x = sx * (c / half - 1)
    xs = sx * (np.arange(nc, dtype=np.float32) / np.float32(0.5 * (nc - 1)) - np.float32(1))
    ys = sy * (np.arange(nr, dtype=np.float32) / np.float32(0.5 * (nr - 1)) - np.float32(1))
    z = elev * sz
    grid = np.stack(np.broadcast_arrays(xs[None, :], ys[:, None], z), axis=-1)  # nr x nc x 3
    a, b = grid[:-1, :-1], grid[:-1, 1:]  # row r: columns c, c+1
    c, d = grid[1:, :-1], grid[1:, 1:]  # row r+1
    top = np.concatenate([np.stack([c, a, d], -2).reshape(-1, 3, 3),
                          np.stack([a, b, d], -2).reshape(-1, 3, 3)])
    tris = [top]
    lo = -base

    def wall(edge: np.ndarray) -> np.ndarray:
        """Quads from the points of one border (in order) down to the base."""
        p, q = edge[:-1], edge[1:]
        pb, qb = p.copy(), q.copy()
        pb[:, 2] = lo
        qb[:, 2] = lo
        return np.concatenate([np.stack([pb, qb, q], 1), np.stack([pb, q, p], 1)])

    for edge in (grid[0, :], grid[-1, ::-1], grid[::-1, 0], grid[:, -1]):
        tris.append(wall(edge))
    corners = np.array([[-sx, -sy, lo], [sx, -sy, lo], [sx, sy, lo], [-sx, sy, lo]],
                       dtype=np.float32)
    tris.append(corners[[[0, 2, 1], [0, 3, 2]]])
    tris = np.concatenate(tris).astype(np.float32)
    n = np.cross(tris[:, 1] - tris[:, 0], tris[:, 2] - tris[:, 0])
    n /= np.maximum(np.linalg.norm(n, axis=1, keepdims=True), np.float32(1e-30))
    return tris.reshape(-1, 3), np.repeat(n, 3, axis=0).astype(np.float32)


def hfield_file(hfield: int) -> str:
    """The path of height field `hfield`'s PLY inside the folder."""
    return f"{HFIELD_DIR}/{hfield}.ply"


def ply_bytes(positions: np.ndarray, normals: np.ndarray, uv: np.ndarray | None = None,
              texture: str | None = None) -> bytes:
    """A binary little-endian PLY of unshared triangle corners with normals (and texture
    coordinates s, t naming `texture`)."""
    n = len(positions)
    header = ("ply\nformat binary_little_endian 1.0\n"
              + (f"comment TextureFile {texture}\n" if texture else "")
              + f"element vertex {n}\nproperty float x\nproperty float y\nproperty float z\n"
              "property float nx\nproperty float ny\nproperty float nz\n"
              + ("property float s\nproperty float t\n" if uv is not None else "")
              + f"element face {n // 3}\nproperty list uchar int vertex_indices\nend_header\n")
    cols = [positions, normals] + ([uv] if uv is not None else [])
    verts = np.concatenate(cols, axis=1).astype("<f4")
    faces = np.zeros(n // 3, dtype=[("n", "u1"), ("i", "<i4", 3)])
    faces["n"] = 3
    faces["i"] = np.arange(n, dtype="<i4").reshape(-1, 3)
    return header.encode("ascii") + verts.tobytes() + faces.tobytes()


def mesh_file(mesh: int) -> str:
    """The path of mesh `mesh`'s PLY inside the folder."""
    return f"{MESH_DIR}/{mesh}.ply"


def skybox(model) -> int:
    """The texture MuJoCo's renderer draws as the skybox, or -1."""
    found = np.flatnonzero(np.asarray(model.tex_type) == TEX_SKYBOX)
    return int(found[0]) if len(found) else -1


def skybox_files(model) -> list[str]:
    """The paths of the skybox's six faces inside the folder, in three.js's order, or []."""
    tex = skybox(model)
    return [f"{TEXTURE_DIR}/sky-{tex}-{i}.png" for i in range(6)] if tex >= 0 else []


def cube_faces(model, tex: int) -> list[np.ndarray]:
    """The six faces (+X, -X, +Y, -Y, +Z, -Z) of a cube or skybox texture as MuJoCo holds
    them: six stacked, or one image for all six."""
    pixels = texture_image(model, tex)
    side = pixels.shape[1]
    if pixels.shape[0] != 6 * side:
        return [pixels] * 6
    return [pixels[i * side:(i + 1) * side] for i in range(6)]


def skybox_images(model) -> list[np.ndarray]:
    """The skybox's six faces as three.js's cube texture takes them (module docstring)."""
    faces = cube_faces(model, skybox(model))
    return [np.ascontiguousarray(faces[i][:, ::-1]) for i in SKYBOX_FACE_ORDER]


def geom_cube_texture(model, geom: int) -> int:
    """The cube texture MuJoCo draws on a geom, or -1 (also for a mesh with texture
    coordinates, which MuJoCo's renderer samples as a 2D texture)."""
    kind = int(model.geom_type[geom])
    if kind not in cubemap.KINDS or (
            kind == cubemap.MESH and int(model.mesh_texcoordadr[int(model.geom_dataid[geom])]) >= 0):
        return -1
    return _geom_rgb_texture(model, geom, TEX_CUBE)


def cube_atlas(model, tex: int) -> np.ndarray:
    """The six faces of a cube texture side by side (cube_faces' order)."""
    return np.ascontiguousarray(np.concatenate(cube_faces(model, tex), axis=1))


def cube_geom_file(geom: int, tex: int) -> str:
    """The PLY of geom `geom` with texture coordinates into cube texture `tex`'s atlas."""
    return f"{CUBE_DIR}/{geom}-t{tex}.ply"


def cube_atlas_file(tex: int) -> str:
    return f"{TEXTURE_DIR}/cube-{tex}.png"


def write_textures(model, folder: Path) -> None:
    """The PNGs of the 2D textures drawn geoms use (and each plane's rolled copy), the PLYs
    with texture coordinates of the textured meshes, the cube-textured geoms' PLYs and
    atlases, and the skybox's faces."""
    (folder / TEXTURE_DIR).mkdir(exist_ok=True)
    (folder / CUBE_DIR).mkdir(exist_ok=True)
    if skybox(model) >= 0:
        for name, pixels in zip(skybox_files(model), skybox_images(model)):
            (folder / name).write_bytes(png_bytes(pixels))
    far = float(model.vis.map.zfar * model.stat.extent)
    for geom in range(model.ngeom):
        kind = int(model.geom_type[geom])
        cube = geom_cube_texture(model, geom)
        tex = geom_texture(model, geom)
        if cube >= 0:
            mesh = mesh_arrays(model, int(model.geom_dataid[geom])) if kind == cubemap.MESH else None
            (folder / cube_geom_file(geom, cube)).write_bytes(
                ply_bytes(*cubemap.arrays(model, geom, mesh), PLY_TEXTURE))
            name, pixels = cube_atlas_file(cube), cube_atlas(model, cube)
        elif tex < 0:
            continue
        elif kind == 0:  # plane
            name, _, roll = plane_map(model, geom, far)
            pixels = np.roll(texture_image(model, tex), (roll[1], roll[0]), axis=(0, 1))
        elif kind == 7 and mesh_texcoords(model, int(model.geom_dataid[geom])) is not None:
            mesh = int(model.geom_dataid[geom])
            path = folder / textured_mesh_file(mesh, tex)
            if not path.exists():
                pos, nrm = mesh_arrays(model, mesh)
                path.write_bytes(ply_bytes(pos, nrm, mesh_texcoords(model, mesh), PLY_TEXTURE))
            name, pixels = texture_file(tex), texture_image(model, tex)
        else:
            continue
        if not (folder / name).exists():
            (folder / name).write_bytes(png_bytes(pixels))


def digest(model) -> str:
    h = hashlib.blake2b(LAYOUT.encode(), digest_size=12)
    for name in ("mesh_vert", "mesh_face", "mesh_normal", "mesh_facenormal", "mesh_vertadr",
                 "mesh_faceadr", "mesh_normaladr", "hfield_size", "hfield_nrow",
                 "hfield_ncol", "hfield_adr", "hfield_data", "mesh_texcoord",
                 "mesh_facetexcoord", "mesh_texcoordadr", "tex_data", "tex_adr", "tex_type",
                 "geom_matid", "geom_size", "geom_type", "mat_texid", "mat_texrepeat",
                 "mat_texuniform", "skin_vert", "skin_face", "skin_texcoord", "skin_matid",
                 "skin_group", "skin_rgba", "skin_inflate", "skin_bonevertid",
                 "skin_bonevertweight", "skin_bonevertnum", "skin_bonenum", "tendon_width",
                 "tendon_num", "tendon_group", "tendon_rgba", "tendon_matid", "wrap_type"):
        h.update(np.ascontiguousarray(getattr(model, name)).tobytes())
    return h.hexdigest()


def write_folder(model, parent: str | os.PathLike | None = None, extra=()) -> Path:
    """The folder holding every mesh and height field of `model` as PLY (mesh_file(i),
    hfield_file(i)) and its textures; written if missing, with what each of `extra`
    (writer(model, folder)) adds (raycollect/mjcf/skins.py)."""
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
        (tmp / HFIELD_DIR).mkdir()
        for hfield in range(model.nhfield):
            (tmp / hfield_file(hfield)).write_bytes(ply_bytes(*hfield_arrays(model, hfield)))
        write_textures(model, tmp)
        for writer in extra:
            writer(model, tmp)
        os.rename(tmp, folder)  # atomic; another process may have won the race
    except OSError:
        if not folder.is_dir():
            raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return folder
