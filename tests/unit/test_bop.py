"""The BOP export (raycollect/output/bop.py, raycollect/output/models.py) against the BOP
toolkit's rules, written independently in tests/bop_reference.py: no Ray, no browser. The
output it exports is made here: frames, masks, amodal silhouettes and manifest lines of a
scene rasterised with this file's own camera maths."""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import bop_reference as ref
from raycollect.errors import RaycollectError
from raycollect.output import files, models
from raycollect.output.export import export

W, H, FOV = 80, 60, 50.0
FOCAL = (H / 2) / math.tan(math.radians(FOV) / 2)
K = [[FOCAL, 0.0, W / 2], [0.0, FOCAL, H / 2], [0.0, 0.0, 1.0]]
EYES = ([0.3, 0.8, 3.0], [-0.6, 1.1, 2.7])
TARGET = [0.0, 0.2, 0.0]


# --- this file's own scene maths ----------------------------------------------------------

def look_at(eye, target) -> np.ndarray:
    """Camera-to-world, OpenGL axes: the camera looks down its -Z, +Y up."""
    eye, target = np.asarray(eye, float), np.asarray(target, float)
    f = (target - eye) / np.linalg.norm(target - eye)
    r = np.cross(f, [0.0, 1.0, 0.0])
    r /= np.linalg.norm(r)
    u = np.cross(r, f)
    m = np.eye(4)
    m[:3, 0], m[:3, 1], m[:3, 2], m[:3, 3] = r, u, -f, eye
    return m


def rot(axis: str, deg: float) -> np.ndarray:
    c, s = math.cos(math.radians(deg)), math.sin(math.radians(deg))
    i, j = {"x": (1, 2), "y": (2, 0), "z": (0, 1)}[axis]
    m = np.eye(3)
    m[i, i], m[i, j], m[j, i], m[j, j] = c, -s, s, c
    return m


def pose(position, rotation=np.eye(3), scale=(1.0, 1.0, 1.0)) -> np.ndarray:
    p = np.eye(4)
    p[:3, :3] = rotation @ np.diag(scale)
    p[:3, 3] = position
    return p


def box_mesh(w, h, d):
    """8 corners and 12 triangles: not three.js's 24 vertices, the same solid."""
    c = np.array([[x, y, z] for x in (-w / 2, w / 2) for y in (-h / 2, h / 2) for z in (-d / 2, d / 2)])
    quads = [(0, 1, 3, 2), (4, 6, 7, 5), (0, 4, 5, 1), (2, 3, 7, 6), (0, 2, 6, 4), (1, 5, 7, 3)]
    return c, np.array([t for a, b, cc, dd in quads for t in ((a, b, cc), (a, cc, dd))])


# Two tetrahedra as two objects of one OBJ file (a model whose file has several parts).
DUCK_V = np.array([[0, 0, 0], [0.4, 0, 0], [0, 0.4, 0], [0, 0, 0.4],
                   [0.5, 0.5, 0.1], [0.8, 0.5, 0.1], [0.5, 0.8, 0.1], [0.5, 0.5, 0.4]], float)
DUCK_F = np.array([[0, 2, 1], [0, 1, 3], [0, 3, 2], [1, 2, 3],
                   [4, 6, 5], [4, 5, 7], [4, 7, 6], [5, 6, 7]])
DUCK_OBJ = ("o body\n" + "".join(f"v {x} {y} {z}\n" for x, y, z in DUCK_V[:4])
            + "".join(f"f {a + 1} {b + 1} {c + 1}\n" for a, b, c in DUCK_F[:4])
            + "o head\n" + "".join(f"v {x} {y} {z}\n" for x, y, z in DUCK_V[4:])
            + "".join(f"f {a + 1} {b + 1} {c + 1}\n" for a, b, c in DUCK_F[4:]))

_crate_a = pose([-0.5, 0.2, 0.0], rot("y", 20))
_eye = np.asarray(EYES[0])
_behind = _crate_a[:3, 3] + 0.6 * (_crate_a[:3, 3] - _eye) / np.linalg.norm(_crate_a[:3, 3] - _eye)
# key: (id, class, model, pose, model-frame mesh in metres)
SCENE = {
    "crate_a": (1, "crate", {"tag": "Box", "src": None, "args": [0.4, 0.4, 0.4], "scale": None},
                _crate_a, box_mesh(0.4, 0.4, 0.4)),
    "crate_b": (2, "crate", {"tag": "Box", "src": None, "args": [0.4, 0.4, 0.4], "scale": None},
                pose([0.3, 0.25, 1.0], rot("y", -30) @ rot("x", 10)), box_mesh(0.4, 0.4, 0.4)),
    "ball": (3, "ball", {"tag": "Sphere", "src": None, "args": [0.3, 16, 8], "scale": [1, 1.5, 1]},
             pose([0.45, 0.35, 0.1], rot("z", 15), (1, 1.5, 1)),
             models.primitive("Sphere", [0.3, 16, 8])),  # its tessellation: tested below
    "pipe": (4, "pipe", {"tag": "Cylinder", "src": None, "args": None, "scale": 0.2},
             pose([-1.75, 0.3, 0.8], rot("x", 30), (0.2, 0.2, 0.2)),
             models.primitive("Cylinder", None)),
    "duck": (5, "duck", {"tag": "Obj", "src": "/workspace/meshes/duck.obj", "args": None,
                         "scale": 0.5},
             pose([0.1, 0.7, -0.6], rot("y", 50), (0.5, 0.5, 0.5)), (DUCK_V, DUCK_F)),
    "hidden": (6, "crate", {"tag": "Box", "src": None, "args": [0.1, 0.1, 0.1], "scale": None},
               pose(_behind), box_mesh(0.1, 0.1, 0.1)),
}
ROBOT_ID, LINK_ID = 7, 8
HOLES = [(0, 0), (1, 0), (0, 1)]  # offsets from the ball's first visible pixel: no depth


def world_silhouette(c2w: np.ndarray, pose_: np.ndarray, mesh) -> tuple[np.ndarray, float]:
    """An object's silhouette on calc_gt_info's 3x canvas, and its centre's distance along
    the view, with OpenGL camera maths (nothing of bop.py's)."""
    v, f = mesh
    world = (pose_ @ np.column_stack([v, np.ones(len(v))]).T).T[:, :3]
    cam = (np.linalg.inv(c2w) @ np.column_stack([world, np.ones(len(world))]).T).T
    x = FOCAL * cam[:, 0] / -cam[:, 2] + W / 2
    y = FOCAL * -cam[:, 1] / -cam[:, 2] + H / 2
    big = ref.rasterise_xy(np.column_stack([x + W, y + H]), np.asarray(f), 3 * W, 3 * H)
    centre = np.linalg.inv(c2w) @ np.append(pose_[:3, 3], 1.0)
    return big, float(-centre[2])


def labels_box(hit: np.ndarray, offset=(0, 0)):
    """raycollect's labels box: [x, y, w, h], w pixels across."""
    if not hit.any():
        return None
    ys, xs = np.nonzero(hit)
    return [int(xs.min() - offset[0]), int(ys.min() - offset[1]),
            int(xs.max() - xs.min() + 1), int(ys.max() - ys.min() + 1)]


def encode_amodal(masks: dict) -> bytes:
    """The contract's .amodal.npz (the writer's encoder when it is there)."""
    if hasattr(files, "encode_amodal"):
        return files.encode_amodal(masks)
    from io import BytesIO

    ids = sorted(masks)
    buf = BytesIO()
    np.savez(buf, ids=np.asarray(ids, np.uint32), width=np.asarray(W),
             bits=np.stack([np.packbits(masks[i], axis=-1, bitorder="little") for i in ids]))
    return buf.getvalue()


def make_output(root: Path, with_dataset: bool = True) -> dict:
    """An output of two frames of SCENE, as a run writes it; returns the truth per frame:
    {im: {key: (big silhouette, visible mask)}} and the depth holes."""
    out, assets = root / "out", root / "assets"
    (out / "frames").mkdir(parents=True)
    (assets / "meshes").mkdir(parents=True)
    (assets / "meshes" / "duck.obj").write_text(DUCK_OBJ)
    (assets / "meshes" / "cloud.ply").write_text(  # a point cloud: no model
        "ply\nformat ascii 1.0\nelement vertex 1\nproperty float x\nproperty float y\n"
        "property float z\nend_header\n0 0 0\n")
    lines, truth = [], {}
    for im, eye in enumerate(EYES):
        c2w = look_at(eye, TARGET)
        sil = {k: world_silhouette(c2w, p, mesh) for k, (_, _, _, p, mesh) in SCENE.items()}
        mask = np.zeros((H, W), np.uint16)
        depth = np.zeros((H, W), np.float32)
        for key in sorted(sil, key=lambda k: -sil[k][1]):  # far to near: near ones paint over
            inner = sil[key][0][H:2 * H, W:2 * W]
            mask[inner], depth[inner] = SCENE[key][0], sil[key][1]
        ball = np.argwhere(mask == SCENE["ball"][0])[0]
        holes = [(ball[0] + dy, ball[1] + dx) for dx, dy in HOLES]
        for y, x in holes:
            depth[y, x] = 0.0
        objects, amodal = {}, {}
        for key, (i, cls, model, p, _) in SCENE.items():
            big = sil[key][0]
            visib = mask == i
            px_all = int(big.sum())
            objects[key] = {"id": i, "class": cls, "pose": p.tolist(), "bbox": labels_box(visib),
                            "px": int(visib.sum()), "px_all": px_all,
                            "bbox_all": labels_box(big, (W, H)),
                            "visib_fract": round(int(visib.sum()) / px_all, 6) if px_all else 0.0,
                            "model": model}
            if big[H:2 * H, W:2 * W].any():
                amodal[i] = big[H:2 * H, W:2 * W]
        objects["robot"] = {"id": ROBOT_ID, "class": "robot", "pose": np.eye(4).tolist(),
                            "bbox": None, "px": 0, "px_all": 0, "bbox_all": None,
                            "visib_fract": 0.0, "links": {"link0": np.eye(4).tolist()},
                            "model": {"tag": "Urdf", "src": "/workspace/r.urdf", "args": None,
                                      "scale": None}}
        objects["robot/link0"] = {"id": LINK_ID, "class": "robot", "pose": np.eye(4).tolist(),
                                  "bbox": None, "px": 0, "px_all": 0, "bbox_all": None,
                                  "visib_fract": 0.0}
        for i, (key, tag, src) in enumerate((("cloud", "Ply", "/workspace/meshes/cloud.ply"),
                                             ("knot", "TorusKnot", None)), start=LINK_ID + 1):
            objects[key] = {"id": i, "class": key, "pose": pose([0, -5, 0]).tolist(), "bbox": None,
                            "px": 0, "px_all": 0, "bbox_all": None, "visib_fract": 0.0,
                            "model": {"tag": tag, "src": src, "args": None, "scale": None}}
        job = f"job{im}"
        for kind, data in (("image", files.encode_image(np.full((H, W, 3), 40 * im, np.uint8))),
                           ("depth", files.encode_depth(depth)), ("mask", files.encode_mask(mask)),
                           ("amodal", encode_amodal(amodal))):
            suffix = {"image": ".png", "depth": ".depth.npy", "mask": ".mask.png",
                      "amodal": ".amodal.npz"}[kind]
            (out / "frames" / f"{job}{suffix}").write_bytes(data)
        lines.append({"job_id": job, "params": {},
                      "camera": {"matrix": c2w.tolist(), "K": K, "width": W, "height": H,
                                 "fov": FOV, "near": 0.01, "far": 100.0},
                      "files": {k: f"frames/{job}{s}" for k, s in
                                (("image", ".png"), ("depth", ".depth.npy"),
                                 ("mask", ".mask.png"), ("amodal", ".amodal.npz"))},
                      "instances": {k: o["id"] for k, o in objects.items()},
                      "objects": objects})
        truth[im] = {"sil": {k: sil[k][0] for k in SCENE}, "mask": mask, "holes": holes}
    (out / "manifest.jsonl").write_text("".join(json.dumps(m) + "\n" for m in lines))
    if with_dataset:
        (out / "dataset.json").write_text(json.dumps(
            {"classes": {}, "assets": str(assets.resolve()), "up": "y"}))
    return {"out": out, "assets": assets, "truth": truth, "lines": lines}


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    made = make_output(tmp_path_factory.mktemp("bop"))
    scene = export(made["out"], "bop")
    return {**made, "scene": Path(scene), "bop": made["out"] / "bop"}


# --- primitives: three.js r182's tessellations ---------------------------------------------

def test_box_is_three_js_box_geometry():
    m = models.primitive("Box", [1, 1, 1])
    assert m.vertices.shape == (24, 3) and m.faces.shape == (12, 3)
    # BoxGeometry's +x face first: u = z (udir -1), v = y (vdir -1), at x = depth / 2.
    np.testing.assert_array_equal(m.vertices[:4], [[0.5, 0.5, 0.5], [0.5, 0.5, -0.5],
                                                   [0.5, -0.5, 0.5], [0.5, -0.5, -0.5]])
    np.testing.assert_array_equal(m.faces[:2], [[0, 2, 1], [2, 3, 1]])
    # the -z face last, at z = -depth / 2, x running from +0.5 (udir -1)
    np.testing.assert_array_equal(m.vertices[20], [0.5, 0.5, -0.5])
    segmented = models.primitive("Box", [2, 1, 1, 2, 3, 1])
    assert segmented.vertices.shape == (2 * (2 * 4) + 2 * (3 * 2) + 2 * (3 * 4), 3)
    assert segmented.faces.shape == (2 * 2 * (1 * 3 + 2 * 1 + 2 * 3), 3)  # +-x, +-y, +-z


def test_sphere_cylinder_cone_plane_capsule_circle_are_three_js_geometries():
    s = models.primitive("Sphere", [1, 32, 16])
    assert s.vertices.shape == (33 * 17, 3) and s.faces.shape == (32 * 16 * 2 - 64, 3)
    np.testing.assert_allclose(s.vertices[0], [0, 1, 0], atol=1e-7)
    np.testing.assert_allclose(s.vertices[8 * 33], [-1, 0, 0], atol=1e-7)      # equator, phi 0
    np.testing.assert_allclose(s.vertices[8 * 33 + 8], [0, 0, 1], atol=1e-7)   # phi pi / 2
    # the first row has no (a, b, d) triangles: the pole
    assert s.faces[0].tolist() == [0, 33, 34] and s.faces[32:34].tolist() == [[34, 33, 67], [33, 66, 67]]
    # Vuer's Cylinder without args has 8 sides; args without segments take three.js's 32.
    c8 = models.primitive("Cylinder", None)
    assert c8.vertices.shape == (2 * 9 + 2 * (8 + 9), 3) and c8.faces.shape == (32, 3)
    c32 = models.primitive("Cylinder", [0.5, 0.5, 2])
    assert c32.vertices.shape == (2 * 33 + 2 * (32 + 33), 3) and c32.faces.shape == (128, 3)
    np.testing.assert_allclose(c32.vertices[0], [0, 1, 0.5], atol=1e-7)
    np.testing.assert_allclose(c32.vertices[33 + 8], [0.5, -1, 0], atol=1e-7)  # theta pi / 2
    assert c32.faces[:2].tolist() == [[0, 33, 1], [33, 34, 1]]
    assert c32.faces[64].tolist() == [66 + 32, 66 + 33, 66]                       # top cap
    assert models.primitive("Cylinder", [1, 1, 1, 8, 1, True]).faces.shape == (16, 3)
    cone = models.primitive("Cone", None)  # apex row: one triangle per side, no top cap
    assert cone.vertices.shape == (18 + 17, 3) and cone.faces.shape == (16, 3)
    p = models.primitive("Plane", [2, 1])
    np.testing.assert_array_equal(p.vertices, [[-1, 0.5, 0], [1, 0.5, 0], [-1, -0.5, 0], [1, -0.5, 0]])
    np.testing.assert_array_equal(p.faces, [[0, 2, 1], [2, 3, 1]])
    cap = models.primitive("Capsule", None)  # r182: 4 cap rows each end, 1 body row, 8 sides
    assert cap.vertices.shape == (10 * 9, 3) and cap.faces.shape == (9 * 8 * 2, 3)
    np.testing.assert_allclose(cap.vertices[0], [0, -1.5, 0], atol=1e-7)
    np.testing.assert_allclose(cap.vertices[4 * 9], [-1, -0.5, 0], atol=1e-7)
    np.testing.assert_allclose(cap.vertices[-1], [0, 1.5, 0], atol=1e-7)
    circ = models.primitive("Circle", None)
    assert circ.vertices.shape == (10, 3) and circ.faces.shape == (8, 3)
    np.testing.assert_allclose(circ.vertices[1], [1, 0, 0])
    assert circ.faces[0].tolist() == [1, 2, 0]
    with pytest.raises(RaycollectError, match="not a number"):
        models.primitive("Box", [1, "2", 1])


def test_positions_are_float32_as_three_js_buffers():
    s = models.primitive("Sphere", [0.3, 7, 5])
    assert np.array_equal(s.vertices, s.vertices.astype(np.float32).astype(np.float64))
    assert not np.array_equal(s.vertices[1], [-0.3 * math.cos(0) * math.sin(math.pi / 5),
                                              0.3 * math.cos(math.pi / 5), 0.0])


# --- asset files ---------------------------------------------------------------------------

def test_asset_files_keep_every_part_and_every_vertex(tmp_path):
    (tmp_path / "two.obj").write_text(DUCK_OBJ + "o quad\nv 2 0 0\nv 3 0 0\nv 3 1 0\nv 2 1 0\n"
                                      "f 9 10 11 12\n")
    m = models.load_asset(tmp_path / "two.obj")
    np.testing.assert_array_equal(m.vertices[:8], DUCK_V)
    assert len(m.vertices) == 12 and len(m.faces) == 10  # the quad is two triangles
    tri = m.vertices[m.faces]
    area = np.linalg.norm(np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0]), axis=1).sum() / 2
    assert area == pytest.approx(_tetra_area(DUCK_V[:4]) + _tetra_area(DUCK_V[4:]) + 1.0)
    # STL: a triangle soup whose vertices stay as written (no merging)
    import trimesh

    trimesh.Trimesh(DUCK_V[:4], DUCK_F[:4], process=False).export(tmp_path / "t.stl")
    stl = models.load_asset(tmp_path / "t.stl")
    assert len(stl.vertices) == 12 and len(stl.faces) == 4
    assert {tuple(v) for v in stl.vertices.round(6)} == {tuple(v) for v in DUCK_V[:4]}
    (tmp_path / "points.ply").write_text("ply\nformat ascii 1.0\nelement vertex 1\n"
                                         "property float x\nproperty float y\nproperty float z\n"
                                         "end_header\n0 0 0\n")
    with pytest.raises(models.Unmodelled, match="no triangles"):
        models.load_asset(tmp_path / "points.ply")


def _tetra_area(v):
    faces = [(0, 1, 2), (0, 1, 3), (0, 2, 3), (1, 2, 3)]
    return sum(np.linalg.norm(np.cross(v[b] - v[a], v[c] - v[a])) / 2 for a, b, c in faces)


def test_trimesh_is_imported_only_by_the_export_and_named_when_missing(monkeypatch, tmp_path):
    import subprocess

    code = ("import sys, raycollect, raycollect.cli, raycollect.output.export, "
            "raycollect.output.bop, raycollect.output.models; "
            "print('trimesh' in sys.modules)")
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          check=True).stdout.strip() == "False"
    monkeypatch.setitem(sys.modules, "trimesh", None)
    (tmp_path / "a.obj").write_text(DUCK_OBJ)
    with pytest.raises(RaycollectError, match=r"raycollect\[models\]"):
        models.load_asset(tmp_path / "a.obj")


# --- the export ----------------------------------------------------------------------------

def test_files_parse_as_the_bop_toolkit_reads_them(exported):
    bop, scene = exported["bop"], exported["scene"]
    assert scene == bop / "train" / "000000"
    cam = json.loads((bop / "camera.json").read_text())
    assert cam == {"cx": W / 2, "cy": H / 2, "fx": FOCAL, "fy": FOCAL, "width": W, "height": H,
                   "depth_scale": cam["depth_scale"]} and cam["depth_scale"] in (0.1, 1.0)
    cams = ref.load_json_int_keys(scene / "scene_camera.json")
    gts = ref.load_json_int_keys(scene / "scene_gt.json")
    infos = ref.load_json_int_keys(scene / "scene_gt_info.json")
    assert sorted(cams) == sorted(gts) == sorted(infos) == [0, 1]
    for im in (0, 1):
        assert np.reshape(cams[im]["cam_K"], (3, 3)).tolist() == K
        assert len(gts[im]) == len(infos[im]) == len(SCENE)  # the robot and its link left out
        for gt, info in zip(gts[im], infos[im]):
            R = np.reshape(gt["cam_R_m2c"], (3, 3))  # 9 numbers, row-major
            assert len(gt["cam_R_m2c"]) == 9 and len(gt["cam_t_m2c"]) == 3
            np.testing.assert_allclose(R @ R.T, np.eye(3), atol=1e-9)
            assert np.linalg.det(R) == pytest.approx(1.0)
            assert isinstance(gt["obj_id"], int)
            assert set(info) == {"bbox_obj", "bbox_visib", "px_count_all", "px_count_valid",
                                 "px_count_visib", "visib_fract"}
        for gt_id in range(len(gts[im])):
            for kind in ("mask", "mask_visib"):
                with Image.open(scene / kind / f"{im:06d}_{gt_id:06d}.png") as png:
                    a = np.asarray(png)
                assert a.shape == (H, W) and a.dtype == np.uint8 and set(np.unique(a)) <= {0, 255}
        assert (scene / "rgb" / f"{im:06d}.png").exists() and (scene / "depth" / f"{im:06d}.png").exists()


def test_obj_ids_are_models_shared_by_instances(exported):
    bop, scene = exported["bop"], exported["scene"]
    named = ref.load_json_int_keys(bop / "obj_ids.json")
    # crate_a and crate_b: one Box model; hidden: another Box (other args); ball, pipe, duck
    assert sorted(named) == [1, 2, 3, 4, 5]
    by_key = {k: i for i, e in named.items() for k in e["keys"]}
    assert by_key["crate_a"] == by_key["crate_b"] != by_key["hidden"]
    assert named[by_key["crate_a"]]["classes"] == ["crate"]
    assert not {"robot", "robot/link0", "cloud", "knot"} & set(by_key)  # no single mesh
    assert named[by_key["duck"]]["model"] == {"tag": "Obj", "src": "/workspace/meshes/duck.obj",
                                              "scale": (np.eye(3) * 0.5).tolist()}
    assert named[by_key["pipe"]]["model"]["args"] == [1.0, 1.0, 1.0, 8.0, 1.0, False, 0.0, 2 * math.pi]
    # sorted by identity: the same scene gives the same ids
    idents = [json.dumps(named[i]["model"], sort_keys=True) for i in sorted(named)]
    assert idents == sorted(idents)
    gts = ref.load_json_int_keys(scene / "scene_gt.json")
    for im in (0, 1):  # scene_gt[im] is the frame's objects by instance id
        assert [g["obj_id"] for g in gts[im]] == [by_key[k] for k in
                                                 sorted(SCENE, key=lambda k: SCENE[k][0])]


def test_model_plys_and_models_info(exported):
    bop = exported["bop"]
    infos = ref.load_json_int_keys(bop / "models" / "models_info.json")
    named = ref.load_json_int_keys(bop / "obj_ids.json")
    for obj_id, entry in named.items():
        model = ref.load_ply(bop / "models" / f"obj_{obj_id:06d}.ply")
        assert model["normals"] is not None
        np.testing.assert_allclose(np.linalg.norm(model["normals"], axis=1), 1.0, atol=1e-6)
        want = ref.model_info(model["pts"])
        assert set(infos[obj_id]) == set(want)
        for k, v in want.items():
            assert infos[obj_id][k] == pytest.approx(v, rel=1e-12, abs=1e-9), (obj_id, k)
        key = entry["keys"][0]
        _, _, model_, p, (v, f) = SCENE[key]
        if model_["tag"] == "Box":  # SCENE draws its own 8-corner box; the model is three.js's
            v = models.primitive("Box", model_["args"]).vertices
        s = np.diag(np.linalg.norm(p[:3, :3], axis=0))  # pose = T R diag(s) here
        np.testing.assert_allclose(model["pts"], (v @ s.T) * 1000, rtol=1e-6, atol=1e-4)
        if key.startswith("crate"):  # three.js's box: 24 vertices, its faces point out
            assert len(model["pts"]) == 24 and len(model["faces"]) == 12
            tri = model["pts"][model["faces"]]
            n = np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0])
            assert (np.einsum("ij,ij->i", n, tri.mean(axis=1)) > 0).all()


def test_models_drawn_in_their_poses_give_the_rendered_silhouettes(exported):
    """The exported model, cam_K, cam_R_m2c and cam_t_m2c rasterised as the toolkit renders
    them cover the pixels of the silhouette this file drew in the world, and
    scene_gt_info's px_count_all and bbox_obj are that silhouette's."""
    bop, scene, truth = exported["bop"], exported["scene"], exported["truth"]
    cams = ref.load_json_int_keys(scene / "scene_camera.json")
    gts = ref.load_json_int_keys(scene / "scene_gt.json")
    infos = ref.load_json_int_keys(scene / "scene_gt_info.json")
    keys = sorted(SCENE, key=lambda k: SCENE[k][0])
    cut = False
    for im in (0, 1):
        for gt_id, (gt, info, key) in enumerate(zip(gts[im], infos[im], keys)):
            model = ref.load_ply(bop / "models" / f"obj_{gt['obj_id']:06d}.ply")
            big = ref.rasterise(model["pts"], model["faces"], cams[im]["cam_K"], gt["cam_R_m2c"],
                                gt["cam_t_m2c"], W, H, canvas=ref.CANVAS)
            want = truth[im]["sil"][key]
            assert (big != want).sum() == 0, (im, key, int((big != want).sum()))
            assert info["px_count_all"] == int(big.sum()) > 0
            visib = truth[im]["mask"] == SCENE[key][0]
            if visib.any():
                assert info["bbox_obj"] == ref.calc_2d_bbox(big, (W, H))
                assert info["bbox_visib"] == ref.calc_2d_bbox(visib)
            cut |= info["bbox_obj"][0] < 0
            with Image.open(scene / "mask" / f"{im:06d}_{gt_id:06d}.png") as png:
                np.testing.assert_array_equal(np.asarray(png) > 0, big[H:2 * H, W:2 * W])
            with Image.open(scene / "mask_visib" / f"{im:06d}_{gt_id:06d}.png") as png:
                np.testing.assert_array_equal(np.asarray(png) > 0, visib)
    assert cut  # the pipe's silhouette leaves the image: its box starts left of it


def test_counts_and_boxes_are_calc_gt_info_s(exported):
    scene, truth = exported["scene"], exported["truth"]
    infos = ref.load_json_int_keys(scene / "scene_gt_info.json")
    keys = sorted(SCENE, key=lambda k: SCENE[k][0])
    for im in (0, 1):
        with Image.open(scene / "depth" / f"{im:06d}.png") as png:
            depth = np.asarray(png)
        for info, key in zip(infos[im], keys):
            big = truth[im]["sil"][key]
            visib = truth[im]["mask"] == SCENE[key][0]
            inner = big[H:2 * H, W:2 * W]
            assert info["px_count_visib"] == int(visib.sum())
            assert info["px_count_valid"] == int((inner & (depth > 0)).sum())
            assert info["visib_fract"] == pytest.approx(visib.sum() / big.sum(), abs=1e-12)
            if key == "ball":  # the holes in its depth are not valid
                assert info["px_count_valid"] == int(inner.sum()) - len(truth[im]["holes"])
            if key == "hidden":  # behind crate_a: seen nowhere, so no boxes (calc_gt_info)
                assert info["px_count_visib"] == 0 and info["visib_fract"] == 0.0
                assert info["bbox_obj"] == info["bbox_visib"] == [-1, -1, -1, -1]
                assert info["px_count_all"] > 0
        # crate_b hides part of the ball in the first view
    ball = infos[0][keys.index("ball")]
    assert 0 < ball["visib_fract"] < 1


def test_poses_are_opencv_and_millimetres(exported):
    scene, lines = exported["scene"], exported["lines"]
    cams = ref.load_json_int_keys(scene / "scene_camera.json")
    gts = ref.load_json_int_keys(scene / "scene_gt.json")
    keys = sorted(SCENE, key=lambda k: SCENE[k][0])
    for im, m in enumerate(lines):
        c2w = np.asarray(m["camera"]["matrix"])
        R_w2c = np.diag([1.0, -1, -1]) @ c2w[:3, :3].T
        t_w2c = -R_w2c @ c2w[:3, 3]
        np.testing.assert_allclose(np.reshape(cams[im]["cam_R_w2c"], (3, 3)), R_w2c, atol=1e-9)
        np.testing.assert_allclose(cams[im]["cam_t_w2c"], t_w2c * 1000, atol=1e-6)
        for gt, key in zip(gts[im], keys):
            p = SCENE[key][3]
            R_el = p[:3, :3] @ np.diag(1 / np.linalg.norm(p[:3, :3], axis=0))
            np.testing.assert_allclose(np.reshape(gt["cam_R_m2c"], (3, 3)), R_w2c @ R_el, atol=1e-9)
            np.testing.assert_allclose(gt["cam_t_m2c"], (R_w2c @ p[:3, 3] + t_w2c) * 1000, atol=1e-6)


def test_split_assets_option_and_clear_errors(tmp_path):
    made = make_output(tmp_path, with_dataset=False)
    out = made["out"]
    with pytest.raises(RaycollectError, match=r"objects\['duck'\].*--assets DIR"):
        export(out, "bop")
    assert not (out / "bop").exists()  # nothing written before the error
    scene = export(out, "bop", split="test", assets=made["assets"])
    assert Path(scene) == out / "bop" / "test" / "000000"
    with pytest.raises(RaycollectError, match="split '../x'"):
        export(out, "bop", split="../x", assets=made["assets"])
    with pytest.raises(RaycollectError, match="no such directory"):
        export(out, "bop", assets=tmp_path / "nowhere")
    from raycollect.cli import main

    assert main(["export", str(out), "--format", "bop", "--split", "val", "--assets",
                 str(made["assets"])]) == 0
    assert (out / "bop" / "val" / "000000" / "scene_gt.json").exists()
    # a frame without the amodal pass, or an object without its model: named
    lines = [json.loads(x) for x in (out / "manifest.jsonl").read_text().splitlines()]
    del lines[1]["files"]["amodal"]
    (out / "manifest.jsonl").write_text("".join(json.dumps(m) + "\n" for m in lines))
    with pytest.raises(RaycollectError, match="frame job1 has no amodal: the bop export needs depth, masks and labels.*--amodal"):
        export(out, "bop", assets=made["assets"])
    lines[1]["files"]["amodal"] = "frames/job1.amodal.npz"
    del lines[0]["objects"]["ball"]["model"]
    (out / "manifest.jsonl").write_text("".join(json.dumps(m) + "\n" for m in lines))
    with pytest.raises(RaycollectError, match=r"frame job0: objects\['ball'\] has no field 'model'"):
        export(out, "bop", assets=made["assets"])
    lines[0]["objects"]["ball"]["model"] = {"tag": "Sphere", "args": [0.3, "x"]}
    (out / "manifest.jsonl").write_text("".join(json.dumps(m) + "\n" for m in lines))
    with pytest.raises(RaycollectError, match=r"frame job0: objects\['ball'\].*args\[1\]"):
        export(out, "bop", assets=made["assets"])
    lines[0]["objects"]["ball"]["model"] = {"tag": "Box", "args": [1, 1, 1, 0]}
    (out / "manifest.jsonl").write_text("".join(json.dumps(m) + "\n" for m in lines))
    with pytest.raises(RaycollectError, match=r"frame job0: objects\['ball'\].*widthSegments 0"):
        export(out, "bop", assets=made["assets"])


def test_scenes_of_scene_size_images_and_the_job_ids_that_made_them(tmp_path):
    """A scene folder per scene_size frames of the manifest (BlenderProc's chunks), image ids
    from 0 in each, and job_ids.json saying which manifest line each image is."""
    made = make_output(tmp_path)
    out = made["out"]
    first = export(out, "bop", scene_size=1)
    split = out / "bop" / "train"
    assert Path(first) == split / "000000"
    for scene_id, job in ((0, "job0"), (1, "job1")):
        scene = split / f"{scene_id:06d}"
        assert sorted(ref.load_json_int_keys(scene / "scene_gt.json")) == [0]
        assert (scene / "rgb" / "000000.png").exists()
        assert (scene / "mask_visib" / "000000_000000.png").exists()
    assert json.loads((split / "job_ids.json").read_text()) == {"0": {"0": "job0"},
                                                                "1": {"0": "job1"}}
    # The same frame in one scene or in its own: the same labels.
    whole = ref.load_json_int_keys(make_and_export(tmp_path / "b") / "scene_gt_info.json")
    alone = ref.load_json_int_keys(split / "000001" / "scene_gt_info.json")
    assert alone[0] == whole[1]
    with pytest.raises(RaycollectError, match="scene_size 0"):
        export(out, "bop", scene_size=0)


def make_and_export(root: Path) -> Path:
    made = make_output(root)
    return Path(export(made["out"], "bop"))


def test_a_group_is_its_parts_placed_in_its_frame():
    """An MJCF body's model (raycollect/labels.py model_of of a group): its parts' shapes,
    each turned, scaled and moved into the group's frame as three.js places them (the
    matrices written out here by hand); a skinned group has no model."""
    from vuer.schemas import Box, Sphere, group

    from raycollect import labels, scene as scenes
    from raycollect.output.bop import Catalog

    half = 0.3  # a turn of 0.6 rad about z, as an (x, y, z, w) quaternion
    body = group(group(Box(args=[0.2, 0.1, 0.3], key="b"), key="g0", position=[0.1, 0, 0],
                       quaternion=[0, 0, math.sin(half), math.cos(half)]),
                 group(Sphere(args=[0.05, 8, 6], scale=[1, 2, 1], key="s"), key="g1",
                       position=[0, 0, 0.2]), key="body")
    model = labels.model_of(body)
    assert model["tag"] == "group" and len(model["parts"]) == 2
    catalog = Catalog(None)
    text = catalog.identity("here", "body", {"model": model, "pose": np.eye(4).tolist()})
    mesh, _ = catalog.mesh(text)
    c, s = math.cos(2 * half), math.sin(2 * half)
    turn = np.array([[c, -s, 0], [s, c, 0], [0, 0, 1]])
    box, ball = models.primitive("Box", [0.2, 0.1, 0.3]), models.primitive("Sphere", [0.05, 8, 6])
    want = np.concatenate([box.vertices @ turn.T + [0.1, 0, 0],
                           ball.vertices * [1, 2, 1] + [0, 0, 0.2]]) * 1000
    np.testing.assert_allclose(mesh.vertices, want, atol=1e-3)  # float32 millimetres
    assert len(mesh.faces) == len(box.faces) + len(ball.faces)
    # the same body elsewhere is the same model; a skin is none
    again = catalog.identity("here", "body2", {"model": labels.model_of(body),
                                               "pose": np.eye(4).tolist()})
    assert again == text
    skin = group(Box(key="x"), key="skin", userData={scenes.SKIN_DATA: "/assets/skin.bones"})
    with pytest.raises(models.Unmodelled, match="skin"):
        catalog.identity("here", "skin", {"model": labels.model_of(skin),
                                          "pose": np.eye(4).tolist()})
    with pytest.raises(RaycollectError, match=r"here: field 'model'.parts\[0\]: placement"):
        bad = dict(model, parts=[dict(model["parts"][0], position=[0, "x"])])
        catalog.identity("here", "bad", {"model": bad, "pose": np.eye(4).tolist()})
