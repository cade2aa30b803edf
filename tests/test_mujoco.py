"""MJCF worlds (rc.mjcf), checked against MuJoCo's own renderer and kinematics: per body
and frame, mask IoU with mujoco.Renderer's segmentation, z-depth against its depth, and
every body's pose against data.xpos/xmat; colours of 2D textures loosely (the lights
differ). Models: one written here (every primitive type, a height field, a mesh with
texture coordinates, builtin textures on a plane and the mesh, a camera on a moving body,
a skin over two bodies, sites, a tendon, a keyframe), dm_control's manipulator as it ships, and examples/mujoco_rollout.py run whole:
robosuite's Panda on its table arena under its controller when robosuite's files are there."""

from __future__ import annotations

import os

os.environ.setdefault("MUJOCO_GL", "egl")  # before mujoco makes its first GL context

import numpy as np
import pytest

import raycollect as rc
from raycollect import scene as scenes
from conftest import check_output, local_ray, read_jsonl, render_all
from worm import worm_skin

mujoco = pytest.importorskip("mujoco")
from raycollect.mjcf import mjcf  # noqa: E402
from raycollect.testing import mjcf_reference as reference  # noqa: E402

pytestmark = pytest.mark.browser

W, H = 160, 120
# A body whose outline MuJoCo and raycollect both draw with at least this many pixels is
# held to the IoU bound; a smaller one's IoU is dominated by its edge pixels, and it is held
# to agreeing up to one pixel along its outline instead (`near`).
IOU_MIN, IOU_MIN_PX = 0.95, 300
NEAR_MIN = 0.95
DEPTH_MEDIAN_MAX = 1e-3
# ... or, where a millimetre is less than this across the image (a plane seen at a grazing
# angle: reference.compare's depth_shift_px), as far as this: the outline ties' bound
# (docs/mjcf-sweep.md)
DEPTH_SHIFT_MAX_PX = 0.05
POSE_ATOL = 1e-5

# An upright pyramid with its apex off its base's centre, away from the origin: MuJoCo moves a
# mesh to its centre of mass and principal axes, and the geom's pose takes the difference.
PYRAMID_OBJ = """v 0.10 0.00 0.00
v 0.30 0.00 0.00
v 0.30 0.20 0.00
v 0.10 0.20 0.00
v 0.15 0.05 0.25
vt 0 0
vt 1 0
vt 1 1
vt 0 1
vt 0.5 0.5
f 1/1 3/3 2/2
f 1/1 4/4 3/3
f 1/1 2/2 5/5
f 2/2 3/3 5/5
f 3/3 4/4 5/5
f 4/4 1/1 5/5
"""

SHAPES_XML = """<mujoco model="shapes">
  <asset>
    <mesh name="pyramid" file="pyramid.obj" scale="1.2 1 1"/>
    <material name="red" rgba="0.8 0.15 0.1 1"/>
    <texture name="checker" type="2d" builtin="checker" rgb1="0.95 0.95 0.95"
             rgb2="0.05 0.05 0.05" width="64" height="64"/>
    <material name="tiles" texture="checker" texrepeat="3 2"/>
    <texture name="stripes" type="2d" builtin="checker" rgb1="0.9 0.1 0.1" rgb2="0.1 0.1 0.9"
             width="32" height="32"/>
    <material name="stripes" texture="stripes" texrepeat="1 1"/>
    <texture name="sky" type="skybox" fileright="sky-right.png" fileleft="sky-left.png"
             fileup="sky-up.png" filedown="sky-down.png" filefront="sky-front.png"
             fileback="sky-back.png"/>
    <texture name="crate" type="cube" fileright="sky-right.png" fileleft="sky-left.png"
             fileup="sky-up.png" filedown="sky-down.png" filefront="sky-front.png"
             fileback="sky-back.png"/>
    <material name="crate" texture="crate"/>
    <hfield name="bumps" nrow="5" ncol="6" size="0.3 0.22 0.14 0.03"
            elevation="0 1 2 3 2 1  1 2 3 4 3 2  0 0 1 5 1 0  2 2 2 2 2 2  0 1 0 1 0 1"/>
  </asset>
  <worldbody>
    <light pos="0 0 3"/>
    <geom name="floor" type="plane" size="1.4 1.4 0.1" material="tiles"/>
    <camera name="front" pos="0.2 -2.4 1.5" xyaxes="1 0 0 0 0.53 0.85" fovy="50"/>
    <!-- "root" is a key the Vuer client keeps for its own scene: the page must still show it -->
    <body name="root" pos="0 0 0.3">
      <joint name="yaw" type="hinge" axis="0 0 1"/>
      <geom type="box" size="0.15 0.1 0.05" material="red"/>
      <body name="arm" pos="0.1 0 0.1">
        <joint name="pitch" type="hinge" axis="0 1 0"/>
        <geom type="capsule" fromto="0 0 0 0.4 0 0" size="0.04" material="crate"/>
        <camera name="wrist" pos="0.3 0 0.25" xyaxes="0 -1 0 0.6 0 0.8" fovy="50"/>
        <body name="tip" pos="0.45 0 0">
          <geom type="sphere" size="0.07" rgba="0.1 0.6 0.9 1"/>
        </body>
      </body>
    </body>
    <body name="egg" pos="-0.5 0.3 0.5">
      <freejoint/>
      <site name="yolk" size="0.01" group="4"/>
      <geom type="ellipsoid" size="0.16 0.1 0.07" material="crate"/>
    </body>
    <body name="can" pos="0.5 0.5 0.16">
      <joint name="slide" type="slide" axis="1 0 0"/>
      <geom type="cylinder" size="0.09 0.15" material="crate" euler="0.3 0 0"/>
      <!-- sites: MuJoCo draws those of groups 0-2 -->
      <site name="beacon" type="box" size="0.05 0.03 0.04" pos="0 -0.05 0.2" euler="0 0 0.6"
            rgba="1 0.5 0 1"/>
      <site name="hidden" type="sphere" size="0.06" pos="0 0 0.3" group="4"/>
    </body>
    <body name="pyramid" pos="-0.45 -0.45 0.05">
      <joint name="spin" type="hinge" axis="0 0 1"/>
      <geom type="mesh" mesh="pyramid" material="stripes"/>
    </body>
    <body name="terrain" pos="0.75 -0.85 0.04" euler="0 0 0.4">
      <geom type="hfield" hfield="bumps" rgba="0.3 0.6 0.4 1"/>
    </body>
    <body name="crate" pos="-0.75 0.55 0.2" euler="0 0 0.5">
      <geom type="box" size="0.22 0.15 0.12" material="crate"/>
    </body>
    <body name="ghost" pos="0 0.8 0.3">
      <geom type="box" size="0.1 0.1 0.1" rgba="1 1 1 0"/>
    </body>
    <body name="collider" pos="0.6 -0.3 0.3">
      <geom type="box" size="0.1 0.1 0.1" group="3"/>
    </body>
    <site name="anchor" pos="0.9 0.9 0.7" size="0.01" group="4"/>
    <!-- A worm of two bodies that only its skin draws (tests/worm.py) -->
    <body name="worm" pos="-0.25 -0.75 0.12">
      <geom type="capsule" fromto="0 0 0 0.25 0 0" size="0.06" group="3"/>
      <body name="worm-tail" pos="0.25 0 0">
        <joint name="bend" type="hinge" axis="0 0.3 1"/>
        <geom type="capsule" fromto="0 0 0 0.25 0 0" size="0.06" group="3"/>
      </body>
    </body>
  </worldbody>
  <deformable>%(worm)s</deformable>
  <!-- a string in two pieces, from the can's beacon through the egg's centre to a fixed site -->
  <tendon>
    <spatial name="string" width="0.025" rgba="0.95 0.9 0.2 1">
      <site site="beacon"/><site site="yolk"/><site site="anchor"/>
    </spatial>
  </tendon>
  <keyframe>
    <key name="bent" qpos="0.8 -0.6  -0.3 0.2 0.6 0.92 0.2 0.3 0.1  0.1  1.2  -0.9"/>
  </keyframe>
</mujoco>
"""


# yaw, pitch, the egg's free joint (position, quaternion), the can's slide, the pyramid's
# spin, the worm's bend
SHAPES_STATES = [{"qpos": [0.3, 0.4, -0.5, 0.3, 0.5, 1, 0, 0, 0, -0.1, 0.5, 0.7]},
                 {"keyframe": "bent"}]
DM_CONTROL_MODEL = "manipulator.xml"
GEOM_MASKS = "geoms"


# The shapes world's skybox: a colour of its own per face, and the face image's top-left
# quarter white, so a face shown in the wrong place or turned or mirrored is seen.
SKY_FACES = {"right": (230, 40, 40), "left": (40, 200, 60), "up": (50, 80, 230),
             "down": (220, 210, 40), "front": (200, 50, 210), "back": (40, 200, 210)}
SKY_SIDE = 64


def _shapes_world(folder):
    from PIL import Image

    for face, colour in SKY_FACES.items():
        pixels = np.empty((SKY_SIDE, SKY_SIDE, 3), np.uint8)
        pixels[:] = colour
        pixels[:SKY_SIDE // 2, :SKY_SIDE // 2] = 255
        Image.fromarray(pixels).save(folder / f"sky-{face}.png")
    (folder / "pyramid.obj").write_text(PYRAMID_OBJ)
    (folder / "shapes.xml").write_text(SHAPES_XML % {"worm": worm_skin()})
    return mjcf(folder / "shapes.xml")


def _orbit(world, eye, target):
    cam = world.camera(0, W, H)  # MuJoCo's clipping planes, another pose
    cam["matrix"] = rc.look_at(eye, target, up=(0, 0, 1)).tolist()
    return cam


@pytest.fixture(scope="module")
def worlds(tmp_path_factory):
    """Runs in one local Ray: the shapes world (2 states x 4 cameras: fixed, on the moving
    arm, two orbits) and dm_control's manipulator (2 states x 2 cameras, masks="geoms": an id
    per geom, with amodal silhouettes)."""
    suite = pytest.importorskip("dm_control.suite")
    root = tmp_path_factory.mktemp("mujoco")
    shapes = _shapes_world(root)
    manipulator = mjcf(os.path.join(os.path.dirname(suite.__file__), DM_CONTROL_MODEL))
    rng = np.random.default_rng(7)
    nq = manipulator.model.nq
    runs = {}
    models = [("shapes", shapes, SHAPES_STATES, True,
               lambda s: [world_cam(shapes, "front", s), world_cam(shapes, "wrist", s),
                          _orbit(shapes, (1.6, 1.4, 1.2), (0, 0, 0.3)),
                          _orbit(shapes, (0.4, -0.6, 0.8), (0.3, 0, 0.4))]),  # arm, egg
              ("manipulator", manipulator,
               [{"qpos": (0.4 * rng.standard_normal(nq)).tolist()} for _ in range(2)], GEOM_MASKS,
               lambda s: [world_cam(manipulator, "fixed", s),
                          _orbit(manipulator, (0.9, -1.1, 0.9), (0, 0, 0.4))])]
    with local_ray():  # the one the other tests share: a Ray of its own costs a start and a stop
        for name, world, states, masks, cams in models:
            jobs = [{**s, "state": i, "camera": c} for i, s in enumerate(states) for c in cams(s)]
            out = root / f"{name}-out"
            # the manipulator's run (an id per geom) is also exported to BOP: amodal too
            results, run = render_all(jobs, scene=world, out=out, workers=1, depth=True,
                                      masks=masks, amodal=masks == GEOM_MASKS)
            assert run.summary["failed"] == 0, run.failures
            runs[name] = (world, out, results, run, len(jobs))
    return runs


def world_cam(world, name, state):
    return world.camera(name, W, H, state=state)


def _agrees(world, m: dict, mask, depth, r, label: str, geoms: bool = False) -> int:
    """One frame (its manifest line `m`, its mask and depth) against MuJoCo's renderer `r`
    in the state its params give: per body, mask IoU >= 0.95 (or, for a small body, every
    differing pixel on the other's outline), z-depth median error <= 1 mm (or, at a grazing
    angle, a shift of <= DEPTH_SHIFT_MAX_PX across the image), pose =
    data.xpos/xmat within 1e-5; nothing drawn that MuJoCo does not draw. With `geoms`
    (masks="geoms") the same per geom, against MuJoCo's geom ids and data.geom_xpos/xmat.
    A skin's frame is the world's. Returns how many bodies (geoms) were compared."""
    model = world.model
    data = world.forward(m["params"])
    ref = reference.render(r, model, data, m["camera"])
    keys = reference.keys(world, geoms)
    ids = {b: m["instances"][k] for b, k in keys.items() if k in m["instances"]}
    compared = 0
    for body, cmp in reference.compare(mask, depth, ref, ids, geoms).items():
        key = keys[body]
        print(label, key, cmp)
        if cmp["px"] == 0 and cmp["ref_px"] == 0:
            continue
        assert cmp["px"] > 0 and cmp["ref_px"] > 0, (label, key, cmp)
        # A small body may miss the IoU bound by its edge pixels alone: then it must agree up
        # to one pixel along its outline.
        small = min(cmp["px"], cmp["ref_px"]) < IOU_MIN_PX
        assert cmp["iou"] >= IOU_MIN or (small and cmp["near"] >= NEAR_MIN), (label, key, cmp)
        assert cmp["depth_median"] <= DEPTH_MEDIAN_MAX or \
            cmp["depth_shift_px"] <= DEPTH_SHIFT_MAX_PX, (label, key, cmp)
        compared += 1
    frames = (data.geom_xpos, data.geom_xmat, model.ngeom) if geoms else \
        (data.xpos, data.xmat, model.nbody)
    for body in ids:  # a skin's frame is the world's
        pose = np.asarray(m["objects"][keys[body]]["pose"])
        xpos, xmat = ((frames[0][body], frames[1][body].reshape(3, 3)) if body < frames[2]
                      else (np.zeros(3), np.eye(3)))
        np.testing.assert_allclose(pose[:3, 3], xpos, atol=POSE_ATOL, err_msg=f"{label} {keys[body]}")
        np.testing.assert_allclose(pose[:3, :3], xmat, atol=POSE_ATOL, err_msg=f"{label} {keys[body]}")
    # Nothing else in the frame: MuJoCo draws no body that raycollect leaves out.
    assert set(np.unique(ref.geom if geoms else ref.seg)) <= set(ids) | {-1}, label
    return compared


@pytest.mark.parametrize("name", ["shapes", "manipulator"])
def test_bodies_agree_with_mujoco(worlds, name):
    """Every frame of the shapes world (per body, its skin too) and of dm_control's
    manipulator (per geom, masks="geoms": its bodies hold several) agrees with MuJoCo's
    renderer (`_agrees`); robosuite's Panda is checked so in the rollout example's test."""
    world, out, results, run, n = worlds[name]
    manifest = check_output(out, results, run)
    assert len(manifest) == n
    r = reference.renderer(world.model, W, H)
    compared, geoms = 0, name == "manipulator"
    for m in manifest:
        res = results[m["job_id"]]
        assert m["camera"]["matrix"] == res.camera["matrix"]
        compared += _agrees(world, m, res.mask, res.depth, r,
                            f"{name} {m['params'].get('state')}", geoms=geoms)
        if geoms:  # a body's entry lists its geoms' frames, each geom has its own entry
            for body, entry in m["objects"].items():
                for geom, pose in entry.get("geoms", {}).items():
                    assert m["objects"][f"{body}/{geom}"]["pose"] == pose
    assert compared >= len(manifest) * 3
    if geoms:  # several geoms of one body, each with its own id
        bodies = [k.split("/")[0] for k in manifest[0]["instances"] if "/" in k]
        assert max(bodies.count(b) for b in set(bodies)) >= 2


def test_the_rollout_example_agrees_with_mujoco(ray_local, chromium, tmp_path):
    """examples/mujoco_rollout.py as its command line runs it (robosuite's Panda on its table
    under the scripted controller, 2 recorded states, small views): every job rendered, the
    output whole with its contact sheet, the wrist camera moved with the arm between the
    states, and every frame of every camera (the MJCF's three and the orbit) agrees with
    MuJoCo's renderer. Needs robosuite's files (the test command fetches them)."""
    import mujoco_rollout  # examples/, on the path by conftest
    import ray.cloudpickle

    from raycollect.mjcf import robosuite
    from raycollect.output.files import load

    assets = robosuite.assets_dir()
    if assets is None:
        pytest.skip("robosuite's MJCF files not found: set $RAYCOLLECT_ROBOSUITE_ASSETS")
    ray.cloudpickle.register_pickle_by_value(mujoco_rollout)  # as when run as a script
    out, frames = tmp_path / "out", 2
    run = mujoco_rollout.main(["--out", str(out), "--frames", str(frames), "--workers", "1",
                               "--size", f"{W}x{H}", "--model", "panda"])
    world = mjcf(robosuite.scene(assets, robot="panda", arena="table_arena"))
    views = [*mujoco_rollout.PANDA_CAMERAS, "orbit"]
    assert run.summary["failed"] == 0, run.failures
    manifest = check_output(out, [], run)
    assert sorted((m["params"]["step"], m["params"]["view"]) for m in manifest) == \
        sorted((s, v) for s in range(frames) for v in views)
    assert (out / "contact_sheet.png").stat().st_size > 0
    by = {(m["params"]["step"], m["params"]["view"]): m for m in manifest}
    assert by[0, views[0]]["params"]["qpos"] != by[1, views[0]]["params"]["qpos"], "a rollout"
    wrist = "robot0_eye_in_hand"
    assert by[0, wrist]["camera"]["matrix"] != by[1, wrist]["camera"]["matrix"]
    r = reference.renderer(world.model, W, H)
    compared = sum(_agrees(world, m, load(out / m["files"]["mask"], "mask"),
                           load(out / m["files"]["depth"], "depth"), r,
                           f"example {m['params']['step']} {m['params']['view']}")
                   for m in manifest)
    assert compared >= len(manifest) * 3


def test_shapes_world_draws_what_mujoco_draws(worlds):
    """Every primitive type, the mesh, the skin, a site and the tendon are in the frames;
    the transparent and the collision-only geoms and a site of group 4 are not; a state's
    jobs share one scene update."""
    world, out, results, run, n = worlds["shapes"]
    seen = set()
    for res in results.values():
        seen |= {k for k, o in res.objects.items() if o["px"] > 0}
    assert {"world", "root", "arm", "tip", "egg", "can", "pyramid", "terrain", "crate",
            "worm-skin", "string"} <= seen
    assert not {"ghost", "collider", "worm", "worm-tail"} & set(next(iter(results.values())).instances)
    assert scenes.part_names(next(el for el in world({}) if el.key == "can")) == \
        ["geom5", "site:beacon"]
    # Jobs differing only in state and camera: one scene update for the whole run.
    assert [w["scene_updates"] for w in run.summary["by_worker"].values()] == [1]


# The skybox where both renderers show no geom: the share of pixels within SKY_TOL of MuJoCo's
# colour on every channel, away from its colour edges and from the geoms' outlines.
SKY_TOL, SKY_MIN, SKY_MIN_PX = 10, 0.97, 200


def test_skybox_is_mujocos(worlds):
    """The skybox as MuJoCo's renderer draws it: the shapes world's (six faces of their own
    colour, a marked corner each) and dm_control's manipulator's builtin gradient, in every
    view where the sky shows; never in depth or masks."""
    checked = {}
    for name in ("shapes", "manipulator"):
        world, out, results, run, n = worlds[name]
        model = world.model
        r = reference.renderer(model, W, H)
        for res in results.values():
            ref = reference.render(r, model, world.forward(res.params), res.camera, rgb=True)
            sky = (res.mask == 0) & (ref.seg == -1)
            assert (res.depth[res.mask == 0] == 0).all(), "the sky has no depth"
            theirs, ours = ref.rgb.astype(int), res.image[..., :3].astype(int)
            steady = sky & ~reference.grow(~sky) & ~reference.grow(reference.edges(theirs, SKY_TOL))
            px = int(steady.sum())
            if px < SKY_MIN_PX:
                continue
            close = (np.abs(ours - theirs).max(axis=2) <= SKY_TOL)[steady]
            print("skybox", name, res.params.get("state"), round(float(close.mean()), 4), px)
            assert close.mean() >= SKY_MIN, (name, res.params, close.mean(), px)
            checked[name] = checked.get(name, 0) + 1
    assert checked.get("shapes", 0) >= 2 and checked.get("manipulator", 0) >= 2, checked


# Two-colour textures as MuJoCo maps them: the share of pixels both renderers put on the same
# side of their own halfway level (brightness of the floor's checker, red against blue on the
# mesh), on the pixels both give the body.
PATTERN_MIN, PATTERN_MIN_PX = 0.95, 20
CRACK_DEPTH = 0.01  # metres: a cube-textured geom's pixel this far off MuJoCo's is a crack


def _smooth(depth: np.ndarray, step: float) -> np.ndarray:
    """Pixels whose 8 neighbours' depths all lie within `step` of their own (no edge of a
    surface next to them)."""
    h, w = depth.shape
    pad = np.pad(depth, 1, mode="edge")
    out = np.ones(depth.shape, bool)
    for dy in (0, 1, 2):
        for dx in (0, 1, 2):
            out &= np.abs(pad[dy:dy + h, dx:dx + w] - depth) <= step
    return out


def test_textures_map_as_mujocos(worlds):
    """The floor's builtin checker (texrepeat 3 x 2, its offset MuJoCo's), the mesh's
    texture through its own coordinates and a cube texture (six faces of their own colour,
    each with a marked corner) on a box, a cylinder, an ellipsoid and a capsule land where
    MuJoCo's renderer draws them: the marks, and which face shows where (the seams between
    a cylinder's side and its caps are curved)."""
    world, out, results, run, n = worlds["shapes"]
    model = world.model
    r = reference.renderer(model, W, H)
    cubes = ("crate", "can", "egg", "arm")
    checked = dict.fromkeys(("world", "pyramid") + cubes, 0)
    faces = dict.fromkeys(cubes, 0)
    for res in results.values():
        ref = reference.render(r, model, world.forward(res.params), res.camera, rgb=True)
        for key in checked:
            channels = {"world": (0, 1, 2), "pyramid": (0, 2)}.get(key, reference.SATURATION)
            body = model.body(key).id
            where = (res.mask == res.instances[key]) & (ref.seg == body)
            share, px = reference.pattern_agreement(res.image, ref.rgb, where, channels)
            print("texture", key, res.params.get("state"), share, px)
            if px >= PATTERN_MIN_PX:
                assert share >= PATTERN_MIN, (key, share, px)
                checked[key] += 1
            if key in cubes:
                # no crack in the cut surface: inside, every pixel at MuJoCo's depth (through
                # a crack the page shows the geom's far side, centimetres deeper)
                inner = where & ~reference.grow(~where) & _smooth(ref.depth, CRACK_DEPTH)
                cracks = int((inner & (np.abs(res.depth - ref.depth) > CRACK_DEPTH)).sum())
                assert cracks == 0, (key, res.params.get("state"), cracks)
                share, px = reference.face_agreement(res.image, ref.rgb, where)
                print("cube faces", key, res.params.get("state"), share, px)
                if px >= PATTERN_MIN_PX:
                    assert share >= PATTERN_MIN, (key, share, px)
                    faces[key] += 1
    print("checked", checked, "faces", faces)
    assert checked["world"] >= 4 and checked["pyramid"] >= 1, checked
    assert min(checked[k] for k in cubes) >= 1 and min(faces.values()) >= 1, (checked, faces)


# The BOP toolkit's rendering of a model against the amodal silhouette the page drew: every
# pixel they disagree on has a model edge this close to its centre (tests/test_labels.py).
EDGE_TIE_PX = 0.05


def test_bop_and_coco_exports_with_a_geom_each(worlds):
    """masks="geoms" exported: BOP has an object per geom (the bodies left out), its model
    the geom's shape in the geom frame, which drawn in its pose as the BOP toolkit draws it
    gives the amodal silhouette the page rendered (tests/bop_reference.py); COCO's
    annotations load with pycocotools, give back each geom's mask and take its body's name
    as their category."""
    import json

    import bop_reference as bref
    from PIL import Image
    from pycocotools.coco import COCO
    from raycollect.output.export import export

    world, out, results, run, n = worlds["manipulator"]
    export(out, "bop")
    export(out, "coco")
    bop, scene = out / "bop", out / "bop" / "train" / "000000"
    gts = bref.load_json_int_keys(scene / "scene_gt.json")
    infos = bref.load_json_int_keys(scene / "scene_gt_info.json")
    cams = bref.load_json_int_keys(scene / "scene_camera.json")
    obj_ids = json.loads((bop / "obj_ids.json").read_text())
    keys = {k for entry in obj_ids.values() for k in entry["keys"]}
    assert keys and all("/" in k for k in keys), keys  # geoms, not bodies
    checked = 0
    for im, m in enumerate(read_jsonl(out / "manifest.jsonl")):
        K = np.reshape(cams[im]["cam_K"], (3, 3))
        for gt_id, (gt, info) in enumerate(zip(gts[im], infos[im])):
            model = bref.load_ply(bop / "models" / f"obj_{gt['obj_id']:06d}.ply")
            R, t = np.reshape(gt["cam_R_m2c"], (3, 3)), np.asarray(gt["cam_t_m2c"])
            if (model["pts"] @ R.T + t)[:, 2].min() <= 0:
                continue  # reaches behind the camera (a floor): the toolkit would clip it
            big = bref.rasterise(model["pts"], model["faces"], K, R, t, W, H, canvas=bref.CANVAS)
            inner = big[H:2 * H, W:2 * W]
            with Image.open(scene / "mask" / f"{im:06d}_{gt_id:06d}.png") as png:
                mask = np.asarray(png) > 0
            ys, xs = np.nonzero(mask ^ inner)
            xy = bref.project(model["pts"], K, R, t)[:, :2]
            ties = bref.edge_distance(xy, model["faces"], np.c_[xs, ys])
            assert (ties <= EDGE_TIE_PX).all(), (im, gt_id, ties.max())
            checked += info["px_count_all"] > 0  # out of view: in scene_gt, as BOP keeps it
    assert checked >= 10, checked
    coco = COCO(str(out / "coco.json"))
    by_job = {r.job_id: r for r in results.values()}
    anns = 0
    for img in coco.dataset["images"]:
        mask = by_job[img["job_id"]].mask
        for ann in coco.loadAnns(coco.getAnnIds(imgIds=img["id"])):
            np.testing.assert_array_equal(coco.annToMask(ann), mask == ann["instance_id"])
            body, _ = ann["key"].split("/", 1)
            assert coco.loadCats(ann["category_id"])[0]["name"] == body
            anns += 1
    assert anns >= 10, anns


def test_wrist_camera_follows_the_arm(tmp_path):
    world = _shapes_world(tmp_path)
    a, b = (np.asarray(world.camera("wrist", W, H, state=s)["matrix"]) for s in SHAPES_STATES)
    assert np.linalg.norm(a[:3, 3] - b[:3, 3]) > 0.05
    data = world.forward(SHAPES_STATES[1])
    np.testing.assert_allclose(b[:3, 3], data.cam_xpos[1])
    fixed = [np.asarray(world.camera("front", W, H, state=s)["matrix"]) for s in SHAPES_STATES]
    np.testing.assert_allclose(*fixed)


def test_bad_input_is_named(ray_local, chromium, tmp_path):
    """An MJCF MuJoCo cannot load fails at once naming the file and MuJoCo's message; a
    camera that does not exist lists the model's cameras; a qpos of the wrong length fails
    its job alone naming the expected length, and the other job renders."""
    bad = tmp_path / "bad.xml"
    bad.write_text('<mujoco><worldbody><geom type="box" size="0.1"/></worldbody></mujoco>')
    with pytest.raises(ValueError, match=r"bad\.xml.*size"):
        mjcf(bad)
    world = _shapes_world(tmp_path)
    with pytest.raises(ValueError, match="its cameras: front, wrist"):
        world.camera("top", W, H)
    cam = world.camera("front", W, H)
    jobs = [{"qpos": [0.0] * 4, "camera": cam}, {"qpos": SHAPES_STATES[0]["qpos"], "camera": cam}]
    results, run = render_all(jobs, scene=world, workers=1, masks=True)
    assert len(results) == 1 and run.summary["failed"] == 1
    (failure,) = run.failures
    assert failure.attempts == 1
    assert "'qpos'" in failure.error and "has 4 values" in failure.error \
        and "takes 12" in failure.error, failure.error
