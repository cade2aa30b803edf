"""MuJoCo geoms as Vuer elements, placed in their body's frame.

Each visible geom becomes a group whose position and quaternion are the geom's pose in its
body (`geom_pos`, `geom_quat`, fixed by the compiled model), holding the geom's shape, so a
body is a group of static children and only the group moves with the state. The geom's
group is a part of the body's element (raycollect/scene.py `part_names`, named after the
geom, `geom<i>` unnamed): with masks="geoms" it has an id of its own and its frame is the
geom frame (`geom_xpos`, `geom_xmat`). Visible sites (groups 0-2, which MuJoCo's renderer
draws too) are parts of their bodies the same way (`site_element`). What differs from
MuJoCo's axes is handled in the shape:

- three.js quaternions are (x, y, z, w), MuJoCo's (w, x, y, z);
- three.js capsules and cylinders run along their local Y, MuJoCo's along Z: such a geom
  turns by +90 degrees about X first (Y -> Z);
- an ellipsoid is a unit sphere scaled by its three radii (scale applies in the geom frame);
- a height field is a mesh MuJoCo's way (raycollect/mjcf/files.py), in the geom's frame;
- a cube texture on any shape but a plane or height field is a PLY of the shape cut along
  the cube's seams (raycollect/mjcf/cubemap.py);
- a 2D texture (raycollect/mjcf/files.py) on a plane or a mesh with texture coordinates:
  the plane's material `map` (MuJoCo's repeat, its offset baked into the image), the mesh's
  PLY coordinates and the Ply's `assets`; MuJoCo's rgba tints it as its OpenGL does;
- a plane of size 0 along an axis is infinite in MuJoCo: it is drawn as wide as MuJoCo's
  far clipping distance.

Primitives get enough segments that their outlines agree with MuJoCo's own tessellation
(tests/test_mujoco.py compares them pixel by pixel).
"""

from __future__ import annotations

import math

import numpy as np
from vuer.schemas import Box, Capsule, Cylinder, Plane, Ply, Sphere, group

from ..assets import asset
from ..scene import PART_DATA
from . import files
from .files import hfield_file, mesh_file
from .types import BOX, CAPSULE, CYLINDER, ELLIPSOID, HFIELD, MESH, PLANE, SPHERE

# Geom groups MuJoCo's viewer and renderer show by default (mjvOption.geomgroup).
VISIBLE_GROUPS = 3
# Segments of round primitives: at 64 around, a circle's polygon is within 0.12% of its
# radius (a tenth of a pixel for a radius of 80 px).
ROUND_SEGMENTS = 64
SPHERE_STACKS = 32
CAP_SEGMENTS = 16
# A plane's grid: cells of at most PLANE_CELL metres, at most PLANE_SEGMENTS a side.
PLANE_CELL, PLANE_SEGMENTS = 1.0, 100
# MuJoCo's default geom colour: a geom with a material and this rgba takes the material's.
DEFAULT_RGBA = (0.5, 0.5, 0.5, 1.0)
# Y -> Z: +90 degrees about X, as a three.js (x, y, z, w) quaternion.
_Y_TO_Z = np.array([math.sin(math.pi / 4), 0.0, 0.0, math.cos(math.pi / 4)])


def xyzw(wxyz) -> np.ndarray:
    w, x, y, z = (float(v) for v in wxyz)
    return np.array([x, y, z, w])


def qmul(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Hamilton product of two (x, y, z, w) quaternions: rotation a after b."""
    ax, ay, az, aw = a
    bx, by, bz, bw = b
    return np.array([aw * bx + ax * bw + ay * bz - az * by,
                     aw * by - ax * bz + ay * bw + az * bx,
                     aw * bz + ax * by - ay * bx + az * bw,
                     aw * bw - ax * bx - ay * by - az * bz])


def rgba(model, geom: int) -> np.ndarray:
    """The colour MuJoCo draws a geom with: its own rgba, or its material's when the geom
    has a material and leaves its rgba at the default."""
    return colour(model, model.geom_rgba[geom], int(model.geom_matid[geom]))


def colour(model, own, mat: int) -> np.ndarray:
    """MuJoCo's rule for geoms, sites, skins and tendons: the object's own rgba `own`, or
    its material's when it has one (`mat` >= 0) and leaves its rgba at the default."""
    own = np.asarray(own, dtype=float)
    if mat >= 0 and np.allclose(own, DEFAULT_RGBA):
        return np.asarray(model.mat_rgba[mat], dtype=float)
    return own


def visible(model, geom: int) -> bool:
    """Drawn by MuJoCo's renderer with its default options: groups 0-2, not fully transparent,
    and of a type this module draws."""
    return (int(model.geom_group[geom]) < VISIBLE_GROUPS and rgba(model, geom)[3] > 0
            and int(model.geom_type[geom]) in _DRAW)


def material(model, geom: int) -> dict:
    return _material(model, rgba(model, geom), int(model.geom_matid[geom]))


def hex_colour(rgb) -> str:
    """'#rrggbb' of an (r, g, b[, a]) in 0..1."""
    return "#%02x%02x%02x" % tuple(int(round(min(max(c, 0.0), 1.0) * 255)) for c in rgb[:3])


def _material(model, rgba_: np.ndarray, mat: int) -> dict:
    a = rgba_[3]
    hexa = hex_colour(rgba_)
    out = {"color": hexa}
    if a < 1:
        out.update(transparent=True, opacity=float(a))
    if mat >= 0:  # MuJoCo's shininess is 0..1; a shinier surface is a less rough one
        out["roughness"] = float(1.0 - 0.8 * model.mat_shininess[mat])
        out["emissive"] = hexa if model.mat_emission[mat] > 0 else "#000000"
        out["emissiveIntensity"] = float(model.mat_emission[mat])
    return out


def part_name(model, geom: int) -> str:
    return model.geom(geom).name or f"geom{geom}"


def element(model, geom: int, far: float):
    """The Vuer element of one visible geom, in its body's frame: its part group at the
    geom's pose, holding its shape."""
    kind = int(model.geom_type[geom])
    size = [float(s) for s in model.geom_size[geom]]
    pos = [float(p) for p in model.geom_pos[geom]]
    quat = xyzw(model.geom_quat[geom])
    look = material(model, geom)
    cube = files.geom_cube_texture(model, geom)
    if cube >= 0:  # its surface cut along the cube's seams, and the six faces' atlas
        el, turn = Ply(src=asset(files.cube_geom_file(geom, cube)),
                       assets={files.PLY_TEXTURE: asset(files.cube_atlas_file(cube))}), False
    else:
        el, turn = _DRAW[kind](model, geom, size, far)
    if isinstance(el, Ply):  # a mesh, a height field, a cube-textured geom
        # Vuer's Ply draws its own physical material, coloured by its `color` and
        # `opacity` props; a `material` prop would replace it on the mesh after the first
        # render (the mesh then vanished from every later view).
        common = dict(color=look["color"], opacity=look.get("opacity", 1.0))
    elif kind == PLANE and (mapped := files.plane_map(model, geom, far)) is not None:
        name, repeat, _ = mapped
        common = dict(materialType="standard",
                      material={**look, "map": asset(name), "mapRepeat": repeat})
    else:
        common = dict(materialType="standard", material=look)
    return _part(el, turn, common, f"g{geom}", pos, quat, part_name(model, geom))


def _part(el, turn: bool, props: dict, key: str, pos, quat, name: str):
    """A shape in its part group, the group at the pose (in the body) and named `name`."""
    props = dict(props, key=f"{key}-shape")
    if turn:
        props.update(quaternion=[float(q) for q in _Y_TO_Z])
    for k, v in props.items():
        setattr(el, k, v)
    return group(el, key=key, position=pos, quaternion=[float(q) for q in quat],
                 userData={PART_DATA: name})


# Sites: MuJoCo's renderer shows those of groups 0-2 too (mjvOption.sitegroup), as the
# primitives they are (a task's target, the quadruped's eyes); a site is a part of its body
# like a geom, named "site:<name>" (its id unnamed) so it never takes a geom's name.
SITE_PREFIX = "site:"


def site_visible(model, site: int) -> bool:
    return (int(model.site_group[site]) < VISIBLE_GROUPS and int(model.site_type[site]) in _SITE_DRAW
            and colour(model, model.site_rgba[site], int(model.site_matid[site]))[3] > 0)


def site_part_name(model, site: int) -> str:
    return SITE_PREFIX + (model.site(site).name or str(site))


def site_element(model, site: int):
    """The Vuer element of one visible site, in its body's frame (like `element`)."""
    size = [float(s) for s in model.site_size[site]]
    el, turn = _SITE_DRAW[int(model.site_type[site])](model, site, size, 0.0)
    mat = int(model.site_matid[site])
    look = _material(model, colour(model, model.site_rgba[site], mat), mat)
    return _part(el, turn, dict(materialType="standard", material=look), f"site{site}",
                 [float(p) for p in model.site_pos[site]], xyzw(model.site_quat[site]),
                 site_part_name(model, site))


def _plane(model, geom, size, far):
    w, h = (2 * s if s > 0 else 2 * far for s in size[:2])
    # A grid, as MuJoCo draws planes: the page's depth is the clip w interpolated over each
    # triangle, and over one quad hundreds of metres wide it strays by millimetres.
    return Plane(args=[w, h, *(min(PLANE_SEGMENTS, max(1, math.ceil(d / PLANE_CELL)))
                               for d in (w, h))]), False


def _sphere(model, geom, size, far):
    return Sphere(args=[size[0], ROUND_SEGMENTS, SPHERE_STACKS]), False


def _ellipsoid(model, geom, size, far):
    return Sphere(args=[1.0, ROUND_SEGMENTS, SPHERE_STACKS], scale=size[:3]), False


def _capsule(model, geom, size, far):
    return Capsule(args=[size[0], 2 * size[1], CAP_SEGMENTS, ROUND_SEGMENTS]), True


def _cylinder(model, geom, size, far):
    return Cylinder(args=[size[0], size[0], 2 * size[1], ROUND_SEGMENTS]), True


def _box(model, geom, size, far):
    return Box(args=[2 * size[0], 2 * size[1], 2 * size[2]]), False


def _mesh(model, geom, size, far):
    mesh, tex = int(model.geom_dataid[geom]), files.geom_texture(model, geom)
    if tex >= 0 and int(model.mesh_texcoordadr[mesh]) >= 0:
        return Ply(src=asset(files.textured_mesh_file(mesh, tex)),
                   assets={files.PLY_TEXTURE: asset(files.texture_file(tex))}), False
    return Ply(src=asset(mesh_file(mesh))), False


def _hfield(model, geom, size, far):
    return Ply(src=asset(hfield_file(int(model.geom_dataid[geom])))), False


_DRAW = {PLANE: _plane, HFIELD: _hfield, SPHERE: _sphere, ELLIPSOID: _ellipsoid, CAPSULE: _capsule,
         CYLINDER: _cylinder, BOX: _box, MESH: _mesh}
_SITE_DRAW = {SPHERE: _sphere, ELLIPSOID: _ellipsoid, CAPSULE: _capsule, CYLINDER: _cylinder,
              BOX: lambda model, site, size, far: (Box(args=[2 * s for s in size[:3]]), False)}
