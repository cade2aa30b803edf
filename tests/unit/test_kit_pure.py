"""The scene kit's pure parts (issue 27): seeding, the shell sampler and the visibility
filter, the randomisers, and pybullet physics. No Ray, no browser."""

from __future__ import annotations

import math
import os
import subprocess
import sys

import numpy as np
import pytest

import raycollect as rc
from raycollect import sample


# --- seeding -------------------------------------------------------------------------------
def test_rng_is_a_pure_function_of_the_params_without_the_camera():
    a = {"scene": 3, "objects": ["duck", "cube"], "camera": {"fov": 50}}
    b = {"camera": {"fov": 70, "matrix": [1]}, "objects": ["duck", "cube"], "scene": 3}
    assert np.array_equal(rc.rng(a).random(8), rc.rng(b).random(8))  # key order, camera
    assert not np.array_equal(rc.rng(a).random(8), rc.rng({**a, "scene": 4}).random(8))
    # Streams: another salt is independent, the same salt is the same stream.
    assert not np.array_equal(rc.rng(a, "lights").random(8), rc.rng(a).random(8))
    assert np.array_equal(rc.rng(a, ["lights", 1]).random(8), rc.rng(b, ["lights", 1]).random(8))
    # numpy values in params are their plain values, as in job ids.
    assert np.array_equal(rc.rng({"x": np.float64(0.5)}).random(4), rc.rng({"x": 0.5}).random(4))


def test_rng_is_the_same_in_another_process():
    """No per-process state (hash randomisation, import order) leaks into the seed."""
    code = ("import raycollect as rc; print(repr(rc.rng({'scene': 7, 'p': [1.5, 'a']}, 3)"
            ".integers(0, 2**62, 4).tolist()))")
    outs = {subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                           env={**os.environ, "PYTHONHASHSEED": h}).stdout
            for h in ("1", "2")}
    assert len(outs) == 1
    here = rc.rng({"scene": 7, "p": [1.5, "a"]}, 3).integers(0, 2**62, 4).tolist()
    assert outs.pop().strip() == repr(here)


def test_unseeded_draws_are_refused():
    with pytest.raises(ValueError, match="seed is required"):
        sample.shell([0, 0, 0], n=2)
    with pytest.raises(TypeError):
        rc.rng([1, 2])
    with pytest.raises(ValueError, match="params.x"):
        rc.rng({"x": object()})


# --- the shell sampler -----------------------------------------------------------------------
def _elevation_deg(eye, center, up):
    d = np.asarray(eye) - np.asarray(center)
    u = sample.FRAMES[up][2]
    return math.degrees(math.asin(np.dot(d, u) / np.linalg.norm(d)))


@pytest.mark.parametrize("up", ["y", "z"])
def test_shell_cameras_look_at_the_centre_within_their_bounds(up):
    center = [0.3, -0.2, 0.5]
    mats = rc.sample.shell(center, radius=(1.0, 2.5), elevation=(10, 60), azimuth=(0, 360),
                           inplane=(-30, 30), n=500, seed=11, up=up)
    assert len(mats) == 500
    for m in mats:
        assert np.allclose(m[:3, :3].T @ m[:3, :3], np.eye(3), atol=1e-12)
        assert np.isclose(np.linalg.det(m[:3, :3]), 1.0)
        assert np.allclose(m[3], [0, 0, 0, 1])
        eye = m[:3, 3]
        to_center = (np.asarray(center) - eye) / np.linalg.norm(np.asarray(center) - eye)
        angle = math.degrees(math.acos(min(1.0, float(np.dot(-m[:3, 2], to_center)))))
        assert angle < 0.1, angle  # the optical axis hits the centre
        r = np.linalg.norm(eye - center)
        assert 1.0 - 1e-9 <= r <= 2.5 + 1e-9
        assert 10 - 1e-6 <= _elevation_deg(eye, center, up) <= 60 + 1e-6
        # Through raycollect's own projection the centre lands on the principal point.
        K = rc.intrinsics(50, 160, 120)
        assert np.allclose(rc.project(np.array([center]), m, K), [[80, 60]], atol=1e-6)
    # Same seed, same matrices bit for bit; another seed, others.
    again = rc.sample.shell(center, radius=(1.0, 2.5), elevation=(10, 60), inplane=(-30, 30),
                            n=500, seed=11, up=up)
    assert all(np.array_equal(a, b) for a, b in zip(mats, again))
    other = rc.sample.shell(center, radius=(1.0, 2.5), elevation=(10, 60), inplane=(-30, 30),
                            n=500, seed=12, up=up)
    assert not any(np.array_equal(a, b) for a, b in zip(mats, other))


def test_shell_is_uniform_over_the_area_and_rolls_as_asked():
    # Uniform on the sphere's area: half the area of the upper hemisphere lies below
    # 30 degrees of elevation (sin 30 = 1/2), not a third as a uniform elevation would give.
    mats = rc.sample.shell([0, 0, 0], radius=1, elevation=(0, 90), n=20000, seed=1, up="z")
    el = np.array([_elevation_deg(m[:3, 3], [0, 0, 0], "z") for m in mats])
    assert abs((el < 30).mean() - 0.5) < 0.015
    az = np.degrees(np.arctan2([m[1, 3] for m in mats], [m[0, 3] for m in mats])) % 360
    assert abs((az < 90).mean() - 0.25) < 0.015
    # No roll: the image's right axis is horizontal. A roll of 30 degrees tilts it by 30.
    flat = rc.sample.shell([0, 0, 0], radius=2, elevation=(20, 20), n=5, seed=2, up="z")
    assert all(abs(m[2, 0]) < 1e-12 for m in flat)
    rolled = rc.sample.shell([0, 0, 0], radius=2, elevation=(20, 20), inplane=(30, 30), n=5,
                             seed=2, up="z")
    for f, m in zip(flat, rolled):  # the same eye (the roll is drawn last), turned about -Z
        assert np.allclose(f[:3, 2:], m[:3, 2:])
        turn = math.degrees(math.atan2(np.dot(m[:3, 0], f[:3, 1]), np.dot(m[:3, 0], f[:3, 0])))
        assert math.isclose(turn, 30, abs_tol=1e-9)
    # Straight above: still a rigid camera looking down at the centre.
    top = rc.sample.shell([0, 0, 0], radius=2, elevation=90, n=3, seed=3, up="y")
    for m in top:
        assert np.allclose(m[:3, 3], [0, 2, 0]) and np.allclose(m[:3, 2], [0, 1, 0])
        assert np.isclose(np.linalg.det(m[:3, :3]), 1.0)


def test_shell_y_and_z_give_the_same_views():
    """A Z-up scene and its Y-up rendering (raycollect/camera.py Z_UP_TO_Y_UP) get the same
    cameras from the same seed."""
    from raycollect.camera import Z_UP_TO_Y_UP

    z = rc.sample.shell([0, 0, 0], (1, 2), (5, 80), inplane=(-10, 10), n=20, seed=4, up="z")
    y = rc.sample.shell([0, 0, 0], (1, 2), (5, 80), inplane=(-10, 10), n=20, seed=4, up="y")
    assert all(np.allclose(Z_UP_TO_Y_UP @ a, b) for a, b in zip(z, y))


def test_shell_bounds_are_checked():
    for kwargs, word in (({"radius": (2, 1)}, "radius"), ({"radius": 0}, "radius"),
                         ({"elevation": (0, 95)}, "elevation"), ({"inplane": "x"}, "inplane"),
                         ({"up": "x"}, "up"), ({"n": -1}, "n"), ({"center": [0, 0]}, "center")):
        args = {"center": [0, 0, 0], "n": 1, "seed": 1, **kwargs}
        with pytest.raises(ValueError, match=word):
            rc.sample.shell(**args)


# --- the visibility filter -------------------------------------------------------------------
def _line(job, **fracts):
    return {"job_id": job, "objects": {k: {"id": i + 1, "px": int(v * 100), "visib_fract": v}
                                       for i, (k, v) in enumerate(fracts.items())}}


def test_keep_visible_splits_by_the_frames_own_labels():
    frames = [_line("a", duck=0.9, cube=0.8), _line("b", duck=0.2, cube=1.0),
              _line("c", cube=1.0), _line("d", duck=0.5, cube=0.5)]
    kept, rejected = rc.sample.keep_visible(frames, ["duck", "cube"], least=0.5)
    assert [f["job_id"] for f in kept] == ["a", "d"]
    assert [f["job_id"] for f in rejected] == ["b", "c"]  # c does not show the duck at all
    kept, _ = rc.sample.keep_visible(frames, {"duck": 0.1}, field="px")
    assert [f["job_id"] for f in kept] == ["a", "b", "d"]
    with pytest.raises(ValueError, match="masks=True"):
        rc.sample.keep_visible([{"job_id": "e", "objects": None}], ["duck"])
    with pytest.raises(ValueError, match="job f: field 'objects.duck.visib_fract'"):
        rc.sample.keep_visible([{"job_id": "f", "objects": {"duck": {"px": 3}}}], ["duck"])


def test_redraw_is_a_pure_function_of_the_rejected_job_and_round():
    redraw = rc.sample.shell_redraw([0, 0, 0], radius=(1, 2), elevation=(10, 80), up="z")
    job = {"scene": 1, "camera": {"matrix": np.eye(4).tolist(), "fov": 50, "width": 160,
                                  "height": 120}}
    a, b = redraw(job, 1), redraw(dict(job), 1)
    assert a == b and a["scene"] == 1 and a["camera"]["fov"] == 50
    assert a["camera"]["matrix"] != job["camera"]["matrix"]
    assert redraw(job, 2)["camera"]["matrix"] != a["camera"]["matrix"]
    moved = {**job, "camera": {**job["camera"], "matrix": a["camera"]["matrix"]}}
    assert redraw(moved, 1)["camera"]["matrix"] != a["camera"]["matrix"]


# --- looks -----------------------------------------------------------------------------------
def _props(el):
    return {k: v for k, v in vars(el).items() if not k.startswith("_")}


def test_lights_are_seeded_and_within_their_bounds():
    from raycollect import randomize

    made = [randomize.lights(rc.rng({"scene": s}, "lights"), count=(1, 4), center=[0, 0, 0.2],
                             radius=(2, 3), elevation=(30, 60), up="z") for s in range(200)]
    kinds = set()
    for ls in made:
        assert 1 <= len(ls) <= 4
        for el in ls:
            p = _props(el)
            kind = {"DirectionalLight": "directional", "PointLight": "point",
                    "SpotLight": "spot"}[el.tag]
            kinds.add(kind)
            lo, hi = randomize.INTENSITY[kind]
            assert lo <= p["intensity"] <= hi
            d = np.asarray(p["position"]) - [0, 0, 0.2]
            assert 2 - 1e-9 <= np.linalg.norm(d) <= 3 + 1e-9
            assert 30 - 1e-6 <= math.degrees(math.asin(d[2] / np.linalg.norm(d))) <= 60 + 1e-6
            assert p["color"].startswith("#") and len(p["color"]) == 7
    assert kinds == set(randomize.LIGHT_KINDS)
    assert {len(ls) for ls in made} == {1, 2, 3, 4}
    again = randomize.lights(rc.rng({"scene": 5}, "lights"), count=(1, 4), center=[0, 0, 0.2],
                             radius=(2, 3), elevation=(30, 60), up="z")
    assert [_props(a) for a in again] == [_props(a) for a in made[5]]
    one = randomize.lights(rc.rng({}, 1), count=1, kinds=["directional"],
                           intensity={"directional": (2.5, 2.5)})
    assert one[0].tag == "DirectionalLight" and _props(one[0])["intensity"] == 2.5
    with pytest.raises(ValueError, match="kinds"):
        randomize.lights(rc.rng({}, 1), kinds=["laser"])
    with pytest.raises(TypeError, match="Generator"):
        randomize.lights(7)


def test_materials_and_textures(tmp_path):
    from raycollect import randomize

    (tmp_path / "tex" / "b").mkdir(parents=True)
    for name in ("tex/b/z.png", "tex/a.jpg", "tex/notes.txt", "other.png"):
        (tmp_path / name).write_bytes(b"x")
    urls = randomize.textures(tmp_path, "tex")
    assert urls == ["/workspace/tex/a.jpg", "/workspace/tex/b/z.png"]  # sorted, images only
    with pytest.raises(ValueError, match="leaves"):
        randomize.textures(tmp_path, "../..")
    with pytest.raises(ValueError, match="no .png"):
        (tmp_path / "empty").mkdir()
        randomize.textures(tmp_path, "empty")
    seen = set()
    for s in range(50):
        m = randomize.material(rc.rng({"s": s}), roughness=(0.3, 0.4), metalness=(0, 0.1),
                               textures=urls, repeat=(2, 3))
        assert m["materialType"] == "standard"
        mat = m["material"]
        assert 0.3 <= mat["roughness"] <= 0.4 and 0 <= mat["metalness"] <= 0.1
        assert mat["map"] in urls and 2 <= mat["mapRepeat"][0] == mat["mapRepeat"][1] <= 3
        seen.add(mat["map"])
        assert m == randomize.material(rc.rng({"s": s}), roughness=(0.3, 0.4),
                                       metalness=(0, 0.1), textures=urls, repeat=(2, 3))
    assert seen == set(urls)
    plain = randomize.material(rc.rng({}, 2), colors=False)
    assert plain["material"]["color"] == "#ffffff" and "map" not in plain["material"]
    bg = _props(randomize.background(rc.rng({}, 3)))
    assert bg["color"].startswith("#")


def test_a_textured_primitive_is_waited_for_and_its_image_checked(tmp_path):
    """A primitive whose material names a texture loads something: the worker waits for it
    like a model, and a texture missing from the assets folder fails the job at once."""
    from vuer.schemas import Box

    from raycollect import assets
    from raycollect.errors import InvalidJob

    (tmp_path / "wood.png").write_bytes(b"x")
    box = Box(key="b", materialType="standard", material={"map": rc.asset("wood.png")})
    assert assets.is_model(box) and assets.sources(box) == ["/workspace/wood.png"]
    assets.check_sources("j1", [box], tmp_path)
    gone = Box(key="c", material={"map": rc.asset("stone.png"), "color": "#fff"})
    with pytest.raises(InvalidJob, match="stone.png") as e:
        assets.check_sources("j2", [box, gone], tmp_path)
    assert e.value.field == "scene[1].src"
    assert not assets.is_model(Box(key="d", material={"color": "#fff"}))


# --- physics ---------------------------------------------------------------------------------
pybullet = pytest.importorskip("pybullet", reason="the reference extra brings pybullet")
import pybullet_data  # noqa: E402

from raycollect import physics  # noqa: E402

PD = pybullet_data.getDataPath()
TABLE = physics.Support(size=(0.5, 0.4), z=0.1)


def _bodies():
    """pybullet_data's objects: a concave mesh decomposed by V-HACD, meshes by convex hull,
    a shipped decomposition as the collision mesh, a URDF."""
    return [physics.Body("duck", f"{PD}/duck.obj", 0.05, concave=True),
            physics.Body("duck2", f"{PD}/duck.obj", 0.05, collision=f"{PD}/duck_vhacd.obj"),
            physics.Body("cube", f"{PD}/cube.obj", 0.05),
            physics.Body("blob0", f"{PD}/random_urdfs/000/000.obj", 0.015),
            physics.Body("blob1", f"{PD}/random_urdfs/001/001.obj", 0.015, mass=0.3),
            physics.Body("teddy", f"{PD}/teddy2_VHACD_CHs.obj", 0.1),
            physics.Body("brick", f"{PD}/lego/lego.urdf", 1.0)]


def _fresh_world(bodies, poses, support):
    """The resting poses in a new pybullet world built here, not by raycollect.physics: each
    body from its file, the support as a box of its own."""
    cid = pybullet.connect(pybullet.DIRECT)
    sx, sy = support.size
    box = pybullet.createCollisionShape(pybullet.GEOM_BOX, halfExtents=[sx / 2, sy / 2, 0.05],
                                        physicsClientId=cid)
    table = pybullet.createMultiBody(0, box, basePosition=[support.x, support.y, support.z - 0.05],
                                     physicsClientId=cid)
    uids = {}
    for b in bodies:
        pose = poses[b.key]
        if b.mesh.endswith(".urdf"):
            uids[b.key] = pybullet.loadURDF(b.mesh, pose.position, pose.quaternion,
                                            globalScaling=b.scale, physicsClientId=cid)
            continue
        source = physics.decompose(b.mesh) if b.concave else (b.collision or b.mesh)
        shape = pybullet.createCollisionShape(pybullet.GEOM_MESH, fileName=source,
                                              meshScale=[b.scale] * 3, physicsClientId=cid)
        uids[b.key] = pybullet.createMultiBody(0, shape, basePosition=pose.position,
                                               baseOrientation=pose.quaternion,
                                               physicsClientId=cid)
    return cid, table, uids


def test_dropped_objects_rest_without_interpenetrating():
    bodies = _bodies()
    poses = rc.physics.drop(bodies, on=TABLE, seed=3)
    assert set(poses) == {b.key for b in bodies}
    cid, table, uids = _fresh_world(bodies, poses, TABLE)
    try:
        keys = list(uids)
        for i, a in enumerate(keys):
            # No two objects interpenetrate by more than 2 mm, nor any object and the table.
            for b in keys[i + 1:]:
                pts = pybullet.getClosestPoints(uids[a], uids[b], 0.0, physicsClientId=cid)
                assert all(p[8] >= -0.002 for p in pts), (a, b, min(p[8] for p in pts))
            pts = pybullet.getClosestPoints(uids[a], table, 0.0, physicsClientId=cid)
            assert all(p[8] >= -0.002 for p in pts), (a, "table", min(p[8] for p in pts))
            # Rests on the table or on another object: something within 5 mm below its centre.
            centre = np.add(*pybullet.getAABB(uids[a], physicsClientId=cid)) / 2
            below = [p for o in [table] + [uids[k] for k in keys if k != a]
                     for p in pybullet.getClosestPoints(uids[a], o, 0.005, physicsClientId=cid)
                     if p[6][2] < centre[2]]  # the point on the other body, below
            assert below, f"{a} rests on nothing"
            # Did not fall off: its centre is over the table, above its top.
            assert abs(centre[0] - TABLE.x) < TABLE.size[0] / 2
            assert abs(centre[1] - TABLE.y) < TABLE.size[1] / 2 and centre[2] > TABLE.z
        # The URDF's pose is its link frame: loading it there puts its inertial frame where
        # the drop had it (raycollect.physics undoes the URDF's inertial offset).
        assert np.allclose(poses["brick"].matrix, physics.matrix(poses["brick"].position,
                                                                 poses["brick"].quaternion))
    finally:
        pybullet.disconnect(cid)


def test_the_same_seed_gives_the_same_poses_bit_for_bit():
    bodies = _bodies()[2:6]
    a = rc.physics.drop(bodies, on=TABLE, seed=7)
    physics._drop.cache_clear()  # computed again, not remembered
    b = rc.physics.drop(bodies, on=TABLE, seed=7)
    assert all(a[k].position == b[k].position and a[k].quaternion == b[k].quaternion
               and a[k].matrix == b[k].matrix for k in a)
    c = rc.physics.drop(bodies, on=TABLE, seed=8)
    assert all(a[k].position != c[k].position for k in a)
    # In another process too.
    code = ("import json, sys, raycollect as rc; from raycollect import physics as ph; "
            "bodies = [ph.Body(**b) for b in json.loads(sys.argv[1])]; "
            "p = rc.physics.drop(bodies, on=ph.Support(size=(0.5, 0.4), z=0.1), seed=7); "
            "print(json.dumps({k: [v.position, v.quaternion] for k, v in p.items()}))")
    import dataclasses
    import json

    out = subprocess.run([sys.executable, "-c", code,
                          json.dumps([dataclasses.asdict(x) for x in bodies])],
                         capture_output=True, text=True, check=True).stdout.strip().splitlines()[-1]
    there = json.loads(out)
    assert all(there[k] == [list(a[k].position), list(a[k].quaternion)] for k in a)


def test_drop_errors_name_the_object(tmp_path):
    with pytest.raises(physics.PhysicsError, match=r"objects\[0\] \(x\): no file"):
        rc.physics.drop([physics.Body("x", str(tmp_path / "none.obj"))], seed=1)
    (tmp_path / "m.glb").write_bytes(b"x")
    with pytest.raises(physics.PhysicsError, match=r"\.glb is not a mesh"):
        rc.physics.drop([{"key": "y", "mesh": str(tmp_path / "m.glb")}], seed=1)
    with pytest.raises(physics.PhysicsError, match="does not fit in the drop area"):
        rc.physics.drop([physics.Body("big", f"{PD}/cube.obj", 1.0)],
                        on=physics.Support(size=(0.3, 0.3)), seed=1)
    with pytest.raises(physics.PhysicsError, match="unique"):
        rc.physics.drop([physics.Body("a", f"{PD}/cube.obj", 0.05)] * 2, seed=1)


def test_the_generators_room_faces_inwards():
    """examples/bop_generator.py: planes are drawn from the front only, so every wall and the
    floor must face the room's centre, or the cameras see through them."""
    import bop_generator as bg

    def euler_xyz(a, b, c):  # three.js order "XYZ": R = Rx(a) Ry(b) Rz(c)
        rx = np.array([[1, 0, 0], [0, math.cos(a), -math.sin(a)], [0, math.sin(a), math.cos(a)]])
        ry = np.array([[math.cos(b), 0, math.sin(b)], [0, 1, 0], [-math.sin(b), 0, math.cos(b)]])
        rz = np.array([[math.cos(c), -math.sin(c), 0], [math.sin(c), math.cos(c), 0], [0, 0, 1]])
        return rx @ ry @ rz

    params = {"textures": ["/workspace/t.png"], "models": {}, "poses": {}}
    planes = [e for e in bg.scene(params) if e.tag == "Plane"]
    assert len(planes) == 5
    for p in planes:
        props = vars(p)
        normal = euler_xyz(*props.get("rotation", [0, 0, 0])) @ [0, 0, 1]
        to_centre = np.array([0, 0, 0.5]) - np.asarray(props.get("position", [0, 0, 0]))
        assert np.dot(normal, to_centre) > 0, p.key
