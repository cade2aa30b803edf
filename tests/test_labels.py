"""Every label the field's generators write, from real renders (real Ray, real Chromium),
each checked against something raycollect did not compute: analytic normals, the depth map's
own geometry, a second render, pybullet rendering each object alone, the BOP toolkit's maths
(tests/bop_reference.py) and pycocotools."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

import bop_reference as bref
import meshgen
import raycollect as rc
from conftest import local_ray, read_jsonl, render_all
from raycollect.output.export import export

pytestmark = pytest.mark.browser

W, H, FOV, NEAR, FAR = 200, 150, 50.0, 0.1, 20.0
# Several instances of a few models (y-up world), overlapping from the cameras below, one
# cut by the image's border in some views: two boxes of one model, two spheres of one model,
# a cylinder and a mesh file.
CLASSES = {"mug_1": "mug", "mug_2": "mug", "ball_1": "ball", "ball_2": "ball", "can": "can",
           "block": "block"}
SPHERES = {"ball_1": ((0.45, 0.13, -0.1), 0.13), "ball_2": ((-0.5, 0.13, 0.3), 0.13)}
BOXES = {"mug_1": ((0.0, 0.1, 0.0), (0.3, 0.2, 0.25), 0.4), "mug_2": ((-0.2, 0.1, -0.45), (0.3, 0.2, 0.25), -0.7)}
EYES = [(0.3, 1.2, 2.0), (1.5, 0.8, 1.2), (-1.2, 1.0, 1.6), (0.9, 0.5, 0.9)]
SHIFT = (0.12, 0.0, 0.05)  # where the second frame of a pair moves ball_1


def labelled_scene(params):
    from vuer.schemas import AmbientLight, Box, Cylinder, DirectionalLight, Obj, Sphere

    dx, dy, dz = params.get("shift", (0, 0, 0))
    els = [AmbientLight(key="amb", intensity=0.6),
           DirectionalLight(key="sun", position=[2, 4, 3], intensity=1.5)]
    for key, (pos, size, yaw) in BOXES.items():
        els.append(Box(key=key, args=list(size), position=list(pos), rotation=[0, yaw, 0],
                       materialType="standard", material={"color": "#c0504d"}))
    for key, (pos, r) in SPHERES.items():
        if key == "ball_1":
            pos = (pos[0] + dx, pos[1] + dy, pos[2] + dz)
        els.append(Sphere(key=key, args=[r, 48, 24], position=list(pos),
                          materialType="standard", material={"color": "#4f81bd"}))
    els.append(Cylinder(key="can", args=[0.08, 0.08, 0.3, 48], position=[0.25, 0.15, 0.45],
                        materialType="standard", material={"color": "#9bbb59"}))
    # A mesh file with its own (default) material: Vuer's Obj takes no material props.
    els.append(Obj(key="block", src=rc.asset("block.obj"), position=[-0.45, 0.1, -0.05],
                   rotation=[0, 0.3, 0]))
    return els


def _cam(eye, target=(0.0, 0.1, 0.0)):
    return {"matrix": rc.look_at(eye, target).tolist(), "fov": FOV, "width": W, "height": H,
            "near": NEAR, "far": FAR}


@pytest.fixture(scope="module")
def labelled(tmp_path_factory):
    """One run, every pass: 4 views, and each view again with ball_1 moved (for flow). In the
    local Ray the other tests share (a Ray of its own would cost a start and a stop)."""
    assets = tmp_path_factory.mktemp("label-assets")
    meshgen.write_obj(assets / "block.obj", *meshgen.box((0.2, 0.2, 0.2)))
    out = tmp_path_factory.mktemp("labels") / "out"
    jobs = [{"view": i, "shift": s, "camera": _cam(eye)} for i, eye in enumerate(EYES)
            for s in ((0, 0, 0), SHIFT)]
    with local_ray():
        results, run = render_all(jobs, scene=labelled_scene, out=out, workers=2,
                                  assets=str(assets), depth=True, masks=True, amodal=True,
                                  semantic=True, normals=True, coords=True, classes=CLASSES)
        rows = {r["job_id"]: r for r in rc.read(out).take_all()}
    assert run.summary["failed"] == 0, run.failures
    by = {(r.params["view"], tuple(r.params["shift"]) != (0, 0, 0)): r for r in results.values()}
    return out, by, rows, assets


def _world_points(r, v, u):
    """The depth map's own geometry: pixel centres back-projected, in world coordinates."""
    K, M = np.asarray(r.camera["K"]), np.asarray(r.camera["matrix"])
    z = r.depth[v, u].astype(np.float64)
    cam = np.stack([(u + 0.5 - K[0, 2]) / K[0, 0] * z, -(v + 0.5 - K[1, 2]) / K[1, 1] * z, -z,
                    np.ones_like(z)])
    return (M @ cam).T[:, :3]


def _angles(a, b):
    return np.degrees(np.arccos(np.clip(np.sum(a * b, -1), -1, 1)))


def test_normals_agree_with_the_analytic_normals(labelled):
    _, by, _, _ = labelled
    errs = {"sphere": [], "box": [], "cylinder": []}
    for (view, moved), r in by.items():
        if moved:
            continue
        M = np.asarray(r.camera["matrix"])
        to_cam = np.linalg.inv(M)[:3, :3]
        for key, obj in r.objects.items():
            v, u = np.nonzero(r.mask == obj["id"])
            if key.startswith(("ball", "mug", "can")) and len(u) > 30:
                X = _world_points(r, v, u)
                pose = np.asarray(obj["pose"])
                local = (np.linalg.inv(pose) @ np.c_[X, np.ones(len(X))].T).T[:, :3]
                if key.startswith("ball"):
                    n_local, kind = local, "sphere"
                elif key.startswith("mug"):
                    half = np.asarray(BOXES[key][1]) / 2
                    axis = np.argmax(np.abs(local) / half, axis=1)
                    n_local = np.zeros_like(local)
                    n_local[np.arange(len(local)), axis] = np.sign(local[np.arange(len(local)), axis])
                    kind = "box"
                else:  # a cylinder along its local Y: the side's normal is radial (caps: Y)
                    side = np.abs(local[:, 1]) < 0.15 - 0.005
                    n_local = np.where(side[:, None], local * [1, 0, 1], [0, 1, 0] * np.sign(local[:, 1:2]))
                    kind = "cylinder"
                n_world = n_local @ pose[:3, :3].T
                n_world /= np.linalg.norm(n_world, axis=1, keepdims=True)
                got = r.normals[v, u].astype(np.float64)
                np.testing.assert_allclose(np.linalg.norm(got, axis=1), 1.0, atol=1e-4)
                errs[kind].append(_angles(got, n_world @ to_cam.T))
    for kind, e in errs.items():
        e = np.concatenate(e)
        assert e.size > 500 and np.median(e) <= 1.0, (kind, np.median(e))
    # Nothing drawn: 0.
    r = by[(0, False)]
    assert not r.normals[r.mask == 0].any() and not r.coords[r.mask == 0].any()


def test_object_coordinates_land_on_the_depth_maps_points(labelled):
    _, by, _, _ = labelled
    for r in by.values():
        for key, obj in r.objects.items():
            v, u = np.nonzero(r.mask == obj["id"])
            if len(u) < 30:
                continue
            pose = np.asarray(obj["pose"])
            c = r.coords[v, u].astype(np.float64)
            mapped = (pose @ np.c_[c, np.ones(len(c))].T).T[:, :3]
            err = np.linalg.norm(mapped - _world_points(r, v, u), axis=1)
            assert np.median(err) <= 0.001, (key, np.median(err))
    # In the model's own frame: a sphere's points lie on its radius, a box's within it.
    r = by[(0, False)]
    for key, (_, radius) in SPHERES.items():
        c = r.coords[r.mask == r.instances[key]]
        np.testing.assert_allclose(np.median(np.linalg.norm(c, axis=1)), radius, atol=0.002)


def test_flow_agrees_with_a_second_computation_and_a_second_render(labelled):
    _, by, _, _ = labelled
    # A camera move over a still scene: where a's depth map puts each pixel, projected by
    # b's camera (no object coordinates, no poses).
    a, b = by[(0, False)], by[(1, False)]
    fl, valid = rc.flow(a, b)
    v, u = np.nonzero(a.mask > 0)
    want = rc.project(_world_points(a, v, u), np.asarray(b.camera["matrix"]),
                      np.asarray(b.camera["K"])) - np.c_[u + 0.5, v + 0.5]
    err = np.linalg.norm(fl[v, u] - want, axis=1)
    assert np.median(err) < 0.05 and np.percentile(err, 99) < 0.5, np.median(err)
    assert 0.3 < valid[v, u].mean() < 1.0  # some of a is hidden in b, most is not
    # An object move, same camera: every pixel of a whose flow lands on a visible pixel of
    # b finds the same object there, in the second render.
    for view in range(len(EYES)):
        a, b = by[(view, False)], by[(view, True)]
        fl, valid = rc.flow(a, b)
        ball = a.mask == a.instances["ball_1"]
        if ball.sum() < 50:
            continue
        v, u = np.nonzero(ball)
        tu = np.floor(u + 0.5 + fl[v, u, 0]).astype(int)
        tv = np.floor(v + 0.5 + fl[v, u, 1]).astype(int)
        inside = (tu >= 0) & (tu < W) & (tv >= 0) & (tv < H)
        landed = b.mask[tv[inside], tu[inside]]
        shown = landed == b.instances["ball_1"]
        assert shown.mean() >= 0.99 * valid[v, u][inside].mean(), view
        assert valid[v, u].sum() > 0.5 * len(u)
        # The still objects do not move.
        still = np.linalg.norm(fl[(a.mask > 0) & ~ball & valid], axis=1)
        assert still.max() < 1e-4, still.max()


def test_classes_semantic_masks_and_amodal_labels(labelled):
    out, by, rows, _ = labelled
    meta = json.loads((out / "dataset.json").read_text())
    classes = meta["classes"]
    assert set(classes) == {"mug", "ball", "can", "block"}
    lines = read_jsonl(out / "manifest.jsonl")
    for m in lines:
        assert m["classes"] == classes  # one class id each, for the whole output
        r = next(x for x in by.values() if x.job_id == m["job_id"])
        lut = {o["id"]: classes[o["class"]] for o in m["objects"].values()}
        np.testing.assert_array_equal(r.semantic, np.vectorize(lambda i: lut.get(i, 0))(r.mask))
        for key, o in m["objects"].items():
            assert o["class"] == CLASSES[key]
            am = r.amodal[key]
            seen = r.mask == o["id"]
            assert not (seen & ~am).any(), key  # what shows is in the silhouette
            assert o["visib_fract"] == pytest.approx(o["px"] / o["px_all"], abs=1e-6)
            if o["bbox_all"][0] >= 0 and o["bbox_all"][1] >= 0 and \
                    o["bbox_all"][0] + o["bbox_all"][2] <= W and o["bbox_all"][1] + o["bbox_all"][3] <= H:
                assert o["px_all"] == int(am.sum()), key
    # Occlusion happened, and a border cut something: the checks above covered both.
    objs = [o for m in lines for o in m["objects"].values()]
    assert any(0.05 < o["visib_fract"] < 0.95 for o in objs)
    # rc.read rows carry every pass.
    row = rows[lines[0]["job_id"]]
    r = next(x for x in by.values() if x.job_id == lines[0]["job_id"])
    np.testing.assert_array_equal(row["semantic"], r.semantic)
    np.testing.assert_array_equal(row["normals"], r.normals)
    np.testing.assert_array_equal(row["coords"], r.coords)
    for i, m in zip(row["amodal_ids"], row["amodal"]):
        key = next(k for k, j in r.instances.items() if j == i)
        np.testing.assert_array_equal(m, r.amodal[key])
    assert json.loads(row["classes"]) == classes


def test_coco_categories_are_the_classes(labelled):
    from pycocotools.coco import COCO

    out, by, _, _ = labelled
    coco = COCO(str(export(out, "coco")))
    cats = {c["id"]: c["name"] for c in coco.loadCats(coco.getCatIds())}
    assert sorted(cats.values()) == ["ball", "block", "can", "mug"]
    for ann in coco.loadAnns(coco.getAnnIds()):
        assert cats[ann["category_id"]] == CLASSES[ann["key"]]


# Where two rasterisers may disagree: a pixel centre this close to an edge of the model's
# projection is a tie that WebGL's fill rule and float32 maths decide one way, the reference's
# float64 inside test the other (measured: 0.003-0.021 px for every such pixel of a box).
EDGE_TIE_PX = 0.05


def test_bop_export_is_what_the_toolkit_computes(labelled):
    out, by, _, assets = labelled
    root = export(out, "bop")
    bop = out / "bop"
    scene = bop / "train" / "000000"
    assert str(root).endswith("000000")
    gts = bref.load_json_int_keys(scene / "scene_gt.json")
    infos = bref.load_json_int_keys(scene / "scene_gt_info.json")
    cams = bref.load_json_int_keys(scene / "scene_camera.json")
    infos_m = bref.load_json_int_keys(bop / "models" / "models_info.json")
    obj_ids = json.loads((bop / "obj_ids.json").read_text())
    assert (bop / "camera.json").exists()
    lines = read_jsonl(out / "manifest.jsonl")
    # One model per box size, sphere size, cylinder and file: 2 mugs share one obj_id.
    assert len(infos_m) == 4
    ious = []
    for im, m in enumerate(lines):
        K = np.reshape(cams[im]["cam_K"], (3, 3))
        np.testing.assert_allclose(K, m["camera"]["K"])
        r = next(x for x in by.values() if x.job_id == m["job_id"])
        from PIL import Image

        depth = np.asarray(Image.open(scene / "depth" / f"{im:06d}.png")).astype(float)
        scale = cams[im]["depth_scale"]
        assert np.abs(depth * scale - r.depth * 1000).max() <= scale / 2 + 1e-3
        by_key = {}
        for gt_id, (gt, info) in enumerate(zip(gts[im], infos[im])):
            model = bref.load_ply(bop / "models" / f"obj_{gt['obj_id']:06d}.ply")
            R, t = np.reshape(gt["cam_R_m2c"], (3, 3)), np.asarray(gt["cam_t_m2c"])
            big = bref.rasterise(model["pts"], model["faces"], K, R, t, W, H, canvas=3)
            inner = big[H:2 * H, W:2 * W]
            mask = np.asarray(Image.open(scene / "mask" / f"{im:06d}_{gt_id:06d}.png")) > 0
            visib = np.asarray(Image.open(scene / "mask_visib" / f"{im:06d}_{gt_id:06d}.png")) > 0
            union = (mask | inner).sum()
            ious.append((mask & inner).sum() / union if union else 1.0)
            # Every pixel the two disagree on is a tie on an edge of the model.
            ys, xs = np.nonzero(mask ^ inner)
            xy = bref.project(model["pts"], K, R, t)[:, :2]
            ties = bref.edge_distance(xy, model["faces"], np.c_[xs, ys])
            assert (ties <= EDGE_TIE_PX).all(), (im, gt_id, ties.max())
            # Outside the image (the 3x canvas), the silhouettes' counts agree as closely.
            outside_ours = info["px_count_all"] - int(mask.sum())
            outside_ref = int(big.sum() - inner.sum())
            assert abs(outside_ours - outside_ref) <= max(2, 0.02 * outside_ref), (outside_ours, outside_ref)
            ref_box = bref.calc_2d_bbox(big, offset=(W, H)) if big.any() else [-1] * 4
            assert np.abs(np.subtract(info["bbox_obj"], ref_box)).max() <= 1
            assert info["px_count_visib"] == int(visib.sum())
            assert not (visib & ~mask).any()
            assert info["visib_fract"] == pytest.approx(info["px_count_visib"] / info["px_count_all"]
                                                        if info["px_count_all"] else 0, abs=1e-6)
            by_key.setdefault(gt["obj_id"], []).append(gt_id)
    assert np.median(ious) >= 0.99 and min(ious) >= 0.95, ious
    for entry in obj_ids.values() if isinstance(obj_ids, dict) else obj_ids:
        text = json.dumps(entry)
        assert not ("mug_1" in text) ^ ("mug_2" in text)  # one model, both instances
    for oid, info in infos_m.items():
        model = bref.load_ply(bop / "models" / f"obj_{oid:06d}.ply")
        ref = bref.model_info(model["pts"])
        for k in ("diameter", "min_x", "min_y", "min_z", "size_x", "size_y", "size_z"):
            assert info[k] == pytest.approx(ref[k], abs=1e-3), k


# --- amodal masks against pybullet rendering each object alone ------------------------------
PYBULLET_OBJECTS = {"duck": ("duck_vhacd.urdf", (0.0, 0.0, 0.0)),
                    "block": ("jenga/jenga.urdf", (0.03, -0.09, 0.015)),
                    "duck2": ("duck_vhacd.urdf", (-0.07, 0.1, 0.0)),
                    "block2": ("jenga/jenga.urdf", (0.1, 0.08, 0.015))}
PB_EYES = [(0.05, -0.45, 0.2), (0.35, -0.3, 0.25), (-0.3, -0.35, 0.12)]


def pybullet_scene(params):
    from vuer.schemas import AmbientLight, DirectionalLight, Urdf

    return [AmbientLight(key="amb", intensity=0.8),
            DirectionalLight(key="sun", position=[1, -2, 3], intensity=1.5),
            *[Urdf(key=k, src=rc.asset(path), position=list(pos))
              for k, (path, pos) in PYBULLET_OBJECTS.items()]]


def test_amodal_masks_and_visibility_agree_with_pybullet(tmp_path, ray_local, chromium):
    import pybullet_data

    from raycollect.testing import reference

    pd = pybullet_data.getDataPath()
    assets = tmp_path / "objs"
    assets.mkdir()
    for name in ("duck_vhacd.urdf", "duck.obj", "duck.mtl", "duckCM.png", "duck_vhacd.obj"):
        shutil.copy(f"{pd}/{name}", assets / name)
    shutil.copytree(f"{pd}/jenga", assets / "jenga")
    cams = [{"matrix": rc.look_at(e, (0.0, 0.0, 0.03), up=(0, 0, 1)).tolist(), "fov": 45,
             "width": 160, "height": 120, "near": 0.05, "far": 5.0} for e in PB_EYES]
    results, run = render_all([{"camera": c} for c in cams], scene=pybullet_scene,
                              assets=str(assets), workers=1, masks=True, amodal=True, up="z")
    assert run.summary["failed"] == 0, run.failures
    checked = 0
    for r in results.values():
        c = r.camera
        robots = {k: reference.Robot(k, f"{assets}/{p}", pos) for k, (p, pos) in PYBULLET_OBJECTS.items()}
        together = reference.render(list(robots.values()), np.asarray(c["matrix"]), c["fov"],
                                    c["width"], c["height"], c["near"], c["far"])
        for i, key in enumerate(robots):
            alone = reference.render([robots[key]], np.asarray(c["matrix"]), c["fov"],
                                     c["width"], c["height"], c["near"], c["far"]).seg == 0
            ours = r.amodal[key]
            iou = (ours & alone).sum() / max(1, (ours | alone).sum())
            assert iou >= 0.95, (key, iou)
            ref_fract = (together.seg == i).sum() / max(1, alone.sum())
            o = r.objects[key]
            assert abs(o["visib_fract"] - ref_fract) <= 0.02, (key, o["visib_fract"], ref_fract)
            checked += ref_fract < 0.98  # an object another one hides, in part
    assert checked >= 2
