"""Robots as they ship (pybullet_data's URDFs, package:// paths, COLLADA meshes, file://
paths), their labels, and the exports, checked against pybullet's own renderer and kinematics
and against pycocotools: things raycollect did not write."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

import raycollect as rc
from conftest import check_output, local_ray, read_jsonl, render_all
import meshgen
from raycollect.testing import reference
from raycollect.output.export import export

pybullet_data = pytest.importorskip("pybullet_data")
pytestmark = pytest.mark.browser

PD = pybullet_data.getDataPath()
W, H, FOV, NEAR, FAR = 320, 240, 50.0, 0.1, 20.0
# Four robots of pybullet_data in a Z-up world, two of them through package:// paths with no
# `packages` prop (franka_panda: package://meshes/..., xarm: package://xarm_description/...).
ROBOTS = {"kuka": ("kuka_iiwa/model.urdf", (-0.9, 0.0, 0.0)),
          "xarm": ("xarm/xarm6_robot.urdf", (0.9, 0.0, 0.0)),
          "panda": ("franka_panda/panda.urdf", (0.0, 0.9, 0.0)),
          "r2d2": ("r2d2.urdf", (0.0, -1.0, 0.5))}
POSES = [  # joint values per job; every joint a job does not name is 0
    {"kuka": {"lbr_iiwa_joint_2": 0.6, "lbr_iiwa_joint_4": -1.0},
     "xarm": {"joint2": 0.4, "joint3": -0.7}, "panda": {"panda_joint2": -0.5, "panda_joint4": -2.0}},
    {"kuka": {"lbr_iiwa_joint_1": 0.8, "lbr_iiwa_joint_2": -0.5},
     "xarm": {"joint1": -0.9, "joint5": 1.0}, "panda": {"panda_joint1": 0.7, "panda_joint6": 1.5}},
]
EYES = [(3.0, -2.2, 2.0), (-2.4, -2.6, 1.6)]


def robot_scene(params):
    from vuer.schemas import AmbientLight, DirectionalLight, Urdf

    joints = params.get("joints", {})
    return [AmbientLight(key="amb", intensity=0.8),
            DirectionalLight(key="sun", position=[2, -3, 5], intensity=2.0),
            *[Urdf(key=k, src=rc.asset(path), position=list(pos), jointValues=joints.get(k, {}))
              for k, (path, pos) in ROBOTS.items()]]


def _cam(eye, target=(0, 0, 0.5)):
    return {"matrix": rc.look_at(eye, target, up=(0, 0, 1)).tolist(), "fov": FOV,
            "width": W, "height": H, "near": NEAR, "far": FAR}


@pytest.fixture(scope="module")
def robot_assets(tmp_path_factory):
    """The robots' folders of pybullet_data, as shipped, in an assets folder of their own."""
    root = tmp_path_factory.mktemp("robots")
    for sub in ("kuka_iiwa", "xarm", "franka_panda"):
        shutil.copytree(f"{PD}/{sub}", root / sub)
    for name in ("r2d2.urdf", "l_finger.stl", "l_finger_tip.stl"):
        shutil.copy(f"{PD}/{name}", root / name)
    return root


@pytest.fixture(scope="module")
def robots_out(robot_assets, tmp_path_factory):
    """One run: 2 joint configurations x 2 cameras, Z-up, RGB + depth + masks. The second
    configuration changes only joint values, so it takes the page's no-reload path. In the
    local Ray the other tests share (a Ray of its own would cost a start and a stop)."""
    out = tmp_path_factory.mktemp("robots-out") / "out"
    jobs = [{"pose": i, "joints": p, "camera": _cam(eye)}
            for i, p in enumerate(POSES) for eye in EYES]
    with local_ray():
        results, run = render_all(jobs, scene=robot_scene, assets=str(robot_assets), out=out,
                                  workers=1, depth=True, masks=True, amodal=True, up="z")
    assert run.summary["failed"] == 0, run.failures
    # Jobs that differ only in joint values and cameras share one scene update: the page sets
    # each view's joints (raycollect/render/capture_js/) and loads every mesh once.
    assert [w["scene_updates"] for w in run.summary["by_worker"].values()] == [1]
    return out, results


def _reference(m):
    robots = [reference.Robot(k, f"{PD}/{path}", pos, m["params"]["joints"].get(k))
              for k, (path, pos) in ROBOTS.items()]
    cam = m["camera"]
    return reference.render(robots, np.asarray(cam["matrix"]), FOV, W, H, NEAR, FAR)


def test_robots_agree_with_pybullet(robots_out):
    """Masks against pybullet's segmentation, depth against its depth buffer, link frames
    against its forward kinematics, per robot and per frame."""
    out, results = robots_out
    manifest = check_output(out, results)
    assert len(manifest) == 4
    for m in manifest:
        r = results[m["job_id"]]
        ref = _reference(m)
        ids = [m["instances"][k] for k in ROBOTS]
        for key, cmp in zip(ROBOTS, reference.compare(r.mask, r.depth, ref, ids)):
            assert cmp["px"] > 100, (key, cmp)
            assert cmp["depth_median"] <= 1e-3, (key, cmp)
            links = m["objects"][key]["links"]
            if key == "panda":
                # pybullet draws less of the Panda than its URDF's visual meshes hold (IoU
                # 0.90-0.93 here, every disagreeing pixel one that raycollect draws and
                # pybullet does not): the third computation, the meshes themselves projected
                # through the link frames, covers every pixel raycollect adds.
                fk = reference.project_visuals(f"{PD}/{ROBOTS[key][0]}", links,
                                               np.asarray(r.camera["matrix"]),
                                               np.asarray(r.camera["K"]), W, H)
                ours = r.mask == m["instances"][key]
                extra = ours & (ref.seg != list(ROBOTS).index(key))
                assert (extra & ~fk).sum() <= 0.01 * ours.sum(), (key, cmp)
                assert cmp["iou"] >= 0.88, (key, cmp)
            else:
                assert cmp["iou"] >= 0.95, (m["params"]["pose"], key, cmp)
            for link, frame in ref.links[key].items():
                np.testing.assert_allclose(np.asarray(links[link]), frame, atol=1e-4,
                                           err_msg=f"{key} link {link}")


def test_labels_name_what_the_mask_shows(robots_out):
    out, results = robots_out
    for m in read_jsonl(out / "manifest.jsonl"):
        mask = results[m["job_id"]].mask
        # Lights draw nothing: no id, no labels.
        assert set(m["instances"]) == set(ROBOTS) == set(m["objects"])
        for key, (_, pos) in ROBOTS.items():
            o = m["objects"][key]
            hit = np.argwhere(mask == o["id"])
            assert o["px"] == len(hit)
            (y0, x0), (y1, x1) = hit.min(0), hit.max(0)
            assert o["bbox"] == [x0, y0, x1 - x0 + 1, y1 - y0 + 1]
            # The pose is the element's placement in the user's Z-up world.
            np.testing.assert_allclose(np.asarray(o["pose"])[:3, 3], pos, atol=1e-9)


def test_coco_export_loads_in_pycocotools_exactly(robots_out):
    from pycocotools.coco import COCO

    out, results = robots_out
    path = export(out, "coco", categories={"kuka": "arm", "xarm": "arm", "panda": "arm",
                                           "r2d2": "droid"})
    coco = COCO(str(path))
    assert sorted(c["name"] for c in coco.loadCats(coco.getCatIds())) == ["arm", "droid"]
    assert len(coco.getImgIds()) == 4 and len(coco.getAnnIds()) == 16
    by_file = {m["files"]["image"]: m for m in
               (json.loads(line) for line in (out / "manifest.jsonl").read_text().splitlines())}
    for img in coco.loadImgs(coco.getImgIds()):
        m = by_file[img["file_name"]]
        mask = results[m["job_id"]].mask
        for ann in coco.loadAnns(coco.getAnnIds(imgIds=img["id"])):
            np.testing.assert_array_equal(coco.annToMask(ann), (mask == ann["instance_id"]))
            assert ann["area"] == int((mask == ann["instance_id"]).sum())


def test_bop_export_matches_the_cameras(robots_out):
    """The BOP cameras, checked against axes written out here; robots have no single model,
    so the export leaves them out of scene_gt (tests/test_labels.py checks objects' poses,
    models and masks against the BOP toolkit's maths)."""
    from PIL import Image

    out, results = robots_out
    scene = export(out, "bop")
    cams = json.loads((scene / "scene_camera.json").read_text())
    gts = json.loads((scene / "scene_gt.json").read_text())
    lines = [json.loads(line) for line in (out / "manifest.jsonl").read_text().splitlines()]
    for im, m in enumerate(lines):
        r = results[m["job_id"]]
        c2w = np.asarray(m["camera"]["matrix"])
        # OpenCV axes: x right, y down, z forward; written out here independently.
        R_w2c = np.diag([1.0, -1, -1]) @ c2w[:3, :3].T
        t_w2c = -R_w2c @ c2w[:3, 3]
        cam = cams[str(im)]
        np.testing.assert_allclose(np.reshape(cam["cam_R_w2c"], (3, 3)), R_w2c, atol=1e-9)
        np.testing.assert_allclose(cam["cam_t_w2c"], t_w2c * 1000, atol=1e-6)
        depth = np.asarray(Image.open(scene / "depth" / f"{im:06d}.png")).astype(float)
        assert np.abs(depth * cam["depth_scale"] - r.depth * 1000).max() <= cam["depth_scale"] / 2 + 1e-3  # float32 metres
        assert gts[str(im)] == []


def test_dataset_rows_carry_the_labels(robots_out, ray_local):
    out, _ = robots_out
    rows = rc.read(out).take_all()
    assert len(rows) == 4
    for row in rows:
        objects = json.loads(row["objects"])
        assert set(objects) == set(ROBOTS) and all("links" in objects[k] for k in ROBOTS)


def test_links_masks_collada_and_file_paths(ray_local, chromium, tmp_path):
    """masks="links" gives each link its own id, checked link by link against pybullet's
    segmentation; a ROS-style package with COLLADA meshes by package:// and file:// paths
    renders where pybullet draws it."""
    from vuer.schemas import AmbientLight, Urdf

    assets = tmp_path / "assets"
    shutil.copytree(f"{PD}/kuka_iiwa", assets / "kuka_iiwa")
    bot = meshgen.write_ros_package(assets)

    def scene(p):
        return [AmbientLight(key="amb", intensity=1.0),
                Urdf(key="kuka", src=rc.asset("kuka_iiwa/model.urdf"), position=[-0.5, 0, 0],
                     jointValues={"lbr_iiwa_joint_2": 0.7, "lbr_iiwa_joint_4": -0.9}),
                Urdf(key="bot", src=rc.asset("my_robot_description/urdf/bot.urdf"),
                     position=[0.6, 0, 0], jointValues={"swing": 0.5})]

    jobs = [{"camera": _cam((2.4, -2.0, 1.4), (0, 0, 0.5))}]
    results, run = render_all(jobs, scene=scene, assets=str(assets), workers=1, depth=True,
                              masks="links", up="z")
    assert run.summary["failed"] == 0, run.failures
    [r] = results.values()
    kuka_links = [f"kuka/lbr_iiwa_link_{i}" for i in range(8)]
    assert set(kuka_links) <= set(r.instances) and "bot/arm" in r.instances
    ref = reference.render([reference.Robot("kuka", str(assets / "kuka_iiwa/model.urdf"),
                                            (-0.5, 0, 0), {"lbr_iiwa_joint_2": 0.7,
                                                           "lbr_iiwa_joint_4": -0.9}),
                            reference.Robot("bot", str(bot), (0.6, 0, 0), {"swing": 0.5})],
                           np.asarray(r.camera["matrix"]), FOV, W, H, NEAR, FAR)
    # Whole robots: the links' ids together against pybullet's robot.
    whole = np.zeros_like(r.mask)
    for key, i in r.instances.items():
        whole[r.mask == i] = 1 if key.startswith("kuka/") else 2 if key.startswith("bot/") else 0
    for cmp in reference.compare(whole, r.depth, ref, [1, 2]):
        assert cmp["px"] > 200 and cmp["iou"] >= 0.95 and cmp["depth_median"] <= 1e-3, cmp
    # Each link with pixels of its own: its mask against pybullet's link segmentation.
    assert len({int(i) for i in np.unique(r.mask)} & {r.instances[k] for k in kuka_links}) >= 5
    for k, o in r.objects.items():
        if k.startswith("kuka/") and o["px"] > 150 and k.split("/", 1)[1] in ref.links["kuka"]:
            link = k.split("/", 1)[1]
            np.testing.assert_allclose(np.asarray(o["pose"]), ref.links["kuka"][link], atol=1e-4)


def test_robot_files_and_joints_are_checked_before_rendering(ray_local, chromium, tmp_path):
    """A URDF that names a mesh the folder lacks, and a joint the robot does not have, each
    fail their own job at once, naming the URDF and the file, or the joint and the robot's
    joints; the other job renders."""
    from vuer.schemas import Urdf

    assets = tmp_path / "assets"
    meshgen.write_arm_urdf(assets)
    broken = assets / "robot" / "broken.urdf"
    broken.write_text((assets / "robot" / "arm.urdf").read_text().replace(
        "meshes/link.stl", "package://robot/meshes/missing.stl"))

    def scene(p):
        return [Urdf(key="arm", src=rc.asset(f"robot/{p['urdf']}"), jointValues=p["joints"])]

    cam = {"matrix": rc.look_at([0, 0.5, 2], [0, 0.3, 0]).tolist(), "fov": 50, "width": 96,
           "height": 72}
    jobs = [{"urdf": "arm.urdf", "joints": {"shoulder": 0.3}, "camera": cam},
            {"urdf": "broken.urdf", "joints": {}, "camera": cam},
            {"urdf": "arm.urdf", "joints": {"elbow": 1.0}, "camera": cam}]
    results, run = render_all(jobs, scene=scene, assets=str(assets), workers=1, masks=True)
    assert len(results) == 1 and run.summary["failed"] == 2
    errors = sorted(f.error for f in run.failures)
    assert all(f.attempts == 1 for f in run.failures)
    assert "robot/broken.urdf references 'package://robot/meshes/missing.stl'" in errors[0] \
        or "robot/broken.urdf references 'package://robot/meshes/missing.stl'" in errors[1]
    joint_error = next(e for e in errors if "elbow" in e)
    assert "scene[0].jointValues" in joint_error and "shoulder" in joint_error


GLSL_VERSIONS = ["300 es", None]


def _shader(glsl):
    """A RawShaderMaterial's props drawing flat (0.2, 0.8, 0.3): GLSL ES 3.00 (no varying, no
    gl_FragColor: its own output) or GLSL ES 1.00 (glsl None)."""
    v3 = glsl == "300 es"
    vert = (("in vec3 position;\n" if v3 else "attribute vec3 position;\n") +
            "uniform mat4 modelViewMatrix;\nuniform mat4 projectionMatrix;\n"
            "void main() { gl_Position = projectionMatrix * modelViewMatrix * vec4(position, 1.0); }")
    frag = "precision highp float;\n" + (
        "out highp vec4 outColor;\nvoid main() { outColor = vec4(0.2, 0.8, 0.3, 1.0); }" if v3
        else "void main() { gl_FragColor = vec4(0.2, 0.8, 0.3, 1.0); }")
    return {"vertexShader": vert, "fragmentShader": frag, **({"glslVersion": glsl} if glsl else {})}


def shader_scene(p):
    from vuer.schemas import Box, Urdf

    return [Urdf(key="arm", src=rc.asset(f"robot/{p['urdf']}"), position=[-0.6, 0, 0],
                 materialType="rawShader", material=_shader(p["glsl"])),
            Box(key="box", args=[0.4, 0.4, 0.4], position=[0.6, 0, 0])]


@pytest.fixture(scope="module")
def shader_runs(chromium, tmp_path_factory):
    """Both shader versions in one run (a run each would pay the start-up of workers and
    browsers twice), each version's two jobs in a row: the first robot with that shader, then
    another robot with it."""
    assets = tmp_path_factory.mktemp("shader") / "assets"
    # Primitive visuals: urdf-loader makes them while it parses, so Vuer's materialType
    # reaches them (it replaces the materials of the meshes the robot has when it mounts).
    (assets / "robot").mkdir(parents=True)
    (assets / "robot" / "blocks.urdf").write_text(
        '<robot name="blocks"><link name="base"><visual><geometry><box size="0.4 0.2 0.4"/>'
        '</geometry></visual></link><link name="top"><visual><geometry><box size="0.12 0.6 '
        '0.12"/></geometry></visual></link><joint name="j" type="revolute"><parent link="base"/>'
        '<child link="top"/><origin xyz="0 0.4 0"/><axis xyz="0 0 1"/></joint></robot>')
    # A second job loads another robot: the page's errors of the first job's passes (before
    # they compiled) must not be read as that robot failing to load.
    (assets / "robot" / "blocks2.urdf").write_text((assets / "robot" / "blocks.urdf").read_text())
    cam = {"matrix": rc.look_at([0, 0, 3], [0, 0, 0]).tolist(), "fov": 50, "width": 160,
           "height": 120}
    jobs = [{"glsl": g, "urdf": u, "camera": cam} for g in GLSL_VERSIONS
            for u in ("blocks.urdf", "blocks2.urdf")]
    with local_ray():
        return render_all(jobs, scene=shader_scene, assets=str(assets), workers=1, depth=True,
                          masks=True)


@pytest.mark.parametrize("glsl", GLSL_VERSIONS)
def test_passes_work_for_shader_materials(shader_runs, glsl):
    """A RawShaderMaterial (what a robot gets with materialType="rawShader"), in GLSL ES 3.00
    (no varying, no gl_FragColor: its own output) and in GLSL ES 1.00 (no uint): the mask and
    depth passes compile for it and put the robot where it is, at its distance, while the
    frame shows the user's own shader."""
    results, run = shader_runs
    mine = [r for r in results.values() if r.params["glsl"] == glsl]
    assert len(mine) == 2, [f.error for f in run.failures]  # neither job of this version failed
    for r in mine:
        _shader_frame_checks(r)


def _shader_frame_checks(r):
    K, M = np.asarray(r.camera["K"]), np.asarray(r.camera["matrix"])
    # The arm's base is a 0.4 x 0.2 x 0.4 box around the robot's origin: its front face is
    # 2.8 m from the camera.
    u, v = (int(c) for c in rc.project(np.array([[-0.6, 0, 0.2]]), M, K)[0])
    assert r.mask[v, u] == r.instances["arm"]
    assert abs(float(r.depth[v, u]) - 2.8) < 1e-3, r.depth[v, u]
    arm = r.mask == r.instances["arm"]
    # (0.2, 0.8, 0.3) as the view writes it to its canvas: sRGB-encoded.
    assert arm.sum() > 200 and (r.image[arm] == (124, 231, 149)).all(axis=1).mean() > 0.95
    u, v = (int(c) for c in rc.project(np.array([[0.6, 0, 0.2]]), M, K)[0])
    assert r.mask[v, u] == r.instances["box"]
