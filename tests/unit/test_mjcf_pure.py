"""MJCF worlds without Ray or a browser: geoms as elements, the mesh files, states, cameras,
bad input, and the per-view placements of moving elements (raycollect/mjcf/,
raycollect/scene.py)."""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np
import pytest

mujoco = pytest.importorskip("mujoco")

from raycollect import scene as scenes  # noqa: E402
from raycollect.errors import InvalidJob  # noqa: E402
from raycollect.mjcf import files, geoms, mjcf  # noqa: E402

XML = """<mujoco model="t">
  <asset><mesh name="tet" vertex="0 0 0  0.2 0 0  0 0.2 0  0 0 0.2"/>
         <material name="m" rgba="0.1 0.2 0.9 1"/></asset>
  <worldbody>
    <geom type="plane" size="0 0 1"/>
    <camera name="top" pos="0 0 3" fovy="40"/>
    <camera name="sensor" pos="0 -2 1" sensorsize="0.01 0.0075" focal="0.008 0.008"
            resolution="160 120"/>
    <body name="a" pos="0 0 1">
      <joint type="hinge" axis="0 1 0"/>
      <geom type="capsule" size="0.05 0.2" material="m"/>
      <geom type="cylinder" size="0.05 0.1" pos="0.3 0 0" rgba="1 0 0 0.5"/>
      <geom type="box" size="0.1 0.1 0.1" rgba="1 1 1 0"/>
      <geom type="sphere" size="0.1" group="4"/>
      <body name="b" pos="0.5 0 0"><joint type="slide" axis="1 0 0"/>
        <geom type="mesh" mesh="tet"/>
        <camera name="hand" pos="0.1 0 0"/>
      </body>
    </body>
    <body><geom type="ellipsoid" size="0.1 0.2 0.3" pos="1 1 1"/></body>
  </worldbody>
  <keyframe><key name="home" qpos="0.5 0.1"/></keyframe>
</mujoco>"""


@pytest.fixture
def world(tmp_path):
    (tmp_path / "t.xml").write_text(XML)
    return mjcf(tmp_path / "t.xml")


def test_bodies_hold_their_visible_geoms(world):
    els = world({"qpos": [0.3, 0.0]})
    keys = [e.key for e in els]
    assert keys[2:] == ["world", "a", "b", "body3"]  # lights first; an unnamed body gets its id
    a = els[3]
    # alpha 0 and group 4 are not drawn: a capsule and a cylinder are left, each a part
    # group at its geom's pose in the body holding its shape
    assert [c.children[0].tag for c in a.children] == ["Capsule", "Cylinder"]
    assert scenes.part_names(a) == ["geom1", "geom2"]
    cyl_part = a.children[1]
    np.testing.assert_allclose(cyl_part.position, world.model.geom_pos[2])
    capsule, cylinder = (c.children[0] for c in a.children)
    assert capsule.args[:2] == [0.05, 0.4]
    # the capsule's material colour (its own rgba is the default), the cylinder's own rgba
    assert capsule.material["color"] == "#1a33e5"
    assert cylinder.material["opacity"] == 0.5 and cylinder.material["transparent"]
    # three.js capsules run along Y: turned +90 degrees about X onto MuJoCo's Z
    q = np.asarray(capsule.quaternion)
    np.testing.assert_allclose(q, [np.sin(np.pi / 4), 0, 0, np.cos(np.pi / 4)], atol=1e-12)
    data = world.forward({"qpos": [0.3, 0.0]})
    np.testing.assert_allclose(a.position, data.xpos[1])
    np.testing.assert_allclose(a.quaternion, geoms.xyzw(data.xquat[1]))
    assert scenes.is_moving(a) and not scenes.is_moving(els[2])
    plane = els[2].children[0].children[0]
    assert plane.tag == "Plane" and plane.args[0] == 2 * world.model.vis.map.zfar * world.model.stat.extent
    ellipsoid = els[5].children[0].children[0]
    assert ellipsoid.tag == "Sphere" and ellipsoid.scale == [0.1, 0.2, 0.3]


def test_mesh_file_is_float32_as_mujoco_holds_it(world):
    model = world.model
    mesh_el = world({})[4].children[0].children[0]
    assert mesh_el.tag == "Ply" and mesh_el.src == "/workspace/" + files.mesh_file(0)
    data = (world.folder and open(f"{world.folder}/{files.mesh_file(0)}", "rb").read())
    head, _, body = data.partition(b"end_header\n")
    n = int(head.split(b"element vertex ")[1].split(b"\n")[0])
    assert n == 3 * model.mesh_facenum[0]
    verts = np.frombuffer(body[:n * 24], dtype="<f4").reshape(n, 6)
    faces = model.mesh_face[:model.mesh_facenum[0]]
    np.testing.assert_array_equal(verts[:, :3], model.mesh_vert[faces].reshape(-1, 3).astype(np.float32))
    assert struct.unpack("<B3i", body[n * 24:n * 24 + 13]) == (3, 0, 1, 2)


def test_scenes_of_two_states_differ_only_in_per_view_placements(world):
    one, two = world({"qpos": [0.1, 0.0]}), world({"qpos": [0.9, 0.2]})
    assert [scenes.view_state_free(e) for e in one] == [scenes.view_state_free(e) for e in two]
    assert scenes.poses(one) != scenes.poses(two)
    assert set(scenes.poses(one)) == {"a", "b", "body3"}


def test_state_fields_and_keyframes(world):
    assert list(world.forward({"keyframe": "home"}).qpos) == [0.5, 0.1]
    assert list(world.forward({"keyframe": "home", "qpos": [0.2, 0.0]}).qpos) == [0.2, 0.0]
    with pytest.raises(InvalidJob, match=r"has 3 values; t.xml takes 2 \(2 values\)") as e:
        world.forward({"qpos": [0, 0, 0]})
    assert e.value.field == "qpos"
    with pytest.raises(InvalidJob, match="its keyframes: home"):
        world.forward({"keyframe": "away"})
    with pytest.raises(InvalidJob, match="non-finite"):
        world.forward({"qpos": [float("nan"), 0]})
    # the scene function's refusal gets its job id from scene.build
    with pytest.raises(InvalidJob, match="job j1: field 'qpos'"):
        scenes.build(world, "j1", {"qpos": [1]})


def test_cameras(world):
    cam = world.camera("top", 160, 120)
    np.testing.assert_allclose(np.asarray(cam["matrix"])[:3, 3], [0, 0, 3])
    assert cam["fov"] == pytest.approx(40)
    # sensorsize + focal: fovy = 2 atan(h/2 / f)
    assert world.camera("sensor", 160, 120)["fov"] == pytest.approx(
        np.degrees(2 * np.arctan(0.0075 / 2 / 0.008)))
    a = np.asarray(world.camera("hand", 160, 120, state={"qpos": [0.0, 0.0]})["matrix"])
    b = np.asarray(world.camera("hand", 160, 120, state={"qpos": [0.0, 0.3]})["matrix"])
    np.testing.assert_allclose(b[:3, 3] - a[:3, 3], [0.3, 0, 0], atol=1e-12)
    with pytest.raises(ValueError, match="no camera 'side' in t.xml; its cameras: top, sensor, hand"):
        world.camera("side", 160, 120)


def test_unloadable_mjcf_names_the_file_and_mujocos_message(tmp_path):
    bad = tmp_path / "broken.xml"
    bad.write_text("<mujoco><worldbody><geom type='mesh' mesh='nope'/></worldbody></mujoco>")
    with pytest.raises(ValueError, match=r"MuJoCo cannot load .*broken\.xml: .*nope"):
        mjcf(bad)
    with pytest.raises(ValueError, match="cannot load .*missing.xml"):
        mjcf(tmp_path / "missing.xml")


def test_world_pickles_as_its_path(world):
    import pickle

    again = pickle.loads(pickle.dumps(world))
    assert again.folder == world.folder and again.path == world.path
    assert [e.key for e in again({})] == [e.key for e in world({})]
    assert world.render_defaults() == {"up": "z", "assets": world.folder}


def test_moving_elements_are_placed_by_position_and_quaternion():
    from vuer.schemas import Box

    with pytest.raises(ValueError, match="not rotation"):
        scenes.moving(Box(key="b", rotation=[0, 1, 0]))
    b = scenes.moving(Box(key="b", position=[1, 2, 3]))
    assert scenes.poses([b]) == {"b": [1.0, 2.0, 3.0, 0.0, 0.0, 0.0, 1.0]}
    assert "position" not in scenes.view_state_free(b) and "_rc_moving" not in b._serialize()


HFIELD_XML = """<mujoco><asset>
  <hfield name="h" nrow="5" ncol="6" size="0.3 0.25 0.12 0.02"
          elevation="0 1 2 3 2 1  1 2 3 4 3 2  0 0 1 5 1 0  2 2 2 2 2 2  0 1 0 1 0 1"/>
  <texture name="c" type="2d" builtin="checker" rgb1="1 1 1" rgb2="0 0 0" width="8" height="8"/>
  <material name="tiles" texture="c" texrepeat="3 2"/>
  <material name="even" texture="c" texrepeat="2 2" texuniform="true"/>
  <mesh name="tri" vertex="0 0 0  1 0 0  0 1 0  0 0 1" texcoord="0 0  1 0  0 1  0.5 0.5"/>
</asset><worldbody>
  <geom name="floor" type="plane" size="1.4 1 0.1" material="tiles"/>
  <geom name="ground" type="plane" size="0 0 0.1" material="tiles" pos="0 0 -1"/>
  <body name="t" pos="0.1 0.2 0.05" euler="0 0 0.3">
    <geom name="hf" type="hfield" hfield="h" pos="0.02 0 0.01"/>
    <geom name="m" type="mesh" mesh="tri" material="even" pos="2 2 0"/>
  </body>
</worldbody></mujoco>"""


@pytest.fixture
def terrain(tmp_path):
    (tmp_path / "h.xml").write_text(HFIELD_XML)
    return mjcf(tmp_path / "h.xml")


def test_hfield_is_the_surface_mujoco_collides_with(terrain):
    """The height field's top triangles give, at random points, the height MuJoCo's own
    ray cast (mj_ray, a computation apart from its renderer) finds; the solid closes at
    -size[3]; the element is the PLY in the body's frame."""
    model = terrain.model
    pos, normals = files.hfield_arrays(model, 0)
    assert pos.dtype == np.float32 and len(pos) % 3 == 0
    tris = pos.reshape(-1, 3, 3).astype(np.float64)
    nr, nc = model.hfield_nrow[0], model.hfield_ncol[0]
    top = tris[:2 * (nr - 1) * (nc - 1)]
    np.testing.assert_allclose(pos[:, 2].min(), -model.hfield_size[0][3], rtol=1e-6)
    np.testing.assert_allclose(pos[:, 2].max(), model.hfield_size[0][2], rtol=1e-6)
    data = terrain.forward({})
    g = model.geom("hf").id
    rot, origin = data.geom_xmat[g].reshape(3, 3), data.geom_xpos[g]
    rng = np.random.default_rng(0)
    sx, sy = model.hfield_size[0][:2]
    for x, y in zip(rng.uniform(-sx, sx, 100) * 0.99, rng.uniform(-sy, sy, 100) * 0.99):
        heights = []
        for a, b, c in top:
            lam = np.linalg.solve(np.array([b[:2] - a[:2], c[:2] - a[:2]]).T, [x - a[0], y - a[1]])
            if lam.min() >= -1e-9 and lam.sum() <= 1 + 1e-9:
                heights.append(a[2] + lam[0] * (b[2] - a[2]) + lam[1] * (c[2] - a[2]))
        hit = np.zeros(1, np.int32)
        dist = mujoco.mj_ray(model, data, origin + rot @ [x, y, 1.0], -rot[:, 2], None, 1, -1, hit)
        assert hit[0] == g
        assert abs(max(heights) - (1.0 - dist)) < 1e-6, (x, y, heights, 1.0 - dist)
    # outward normals: the bottom faces down, the top up
    assert normals[-1, 2] == pytest.approx(-1) and (normals[:len(top) * 3, 2] > 0).all()
    el = terrain({})[3].children[0].children[0]
    assert el.tag == "Ply" and el.src == "/workspace/" + files.hfield_file(0)
    assert (Path(terrain.folder) / files.hfield_file(0)).is_file()


def test_textures_are_mujocos_pixels(terrain):
    """A builtin texture is written as the PNG of MuJoCo's tex_data; a mesh's texture
    coordinates are (s, 1 - t); planes take MuJoCo's repeat with its offset rolled into the
    image: finite axes from the -x and +y edges, infinite ones about the centre."""
    from PIL import Image

    model = terrain.model
    far = float(model.vis.map.zfar * model.stat.extent)
    floor, ground = model.geom("floor").id, model.geom("ground").id
    name, repeat, roll = files.plane_map(model, floor, far)
    assert repeat == [3.0, 2.0] and roll == (0, 0)  # R v + (1 - R) = R v mod 1 for R = 2
    name, repeat, roll = files.plane_map(model, ground, far)
    assert repeat == [3 * far, 2 * far]
    assert roll == (round(-((-0.5 * (3 * far + 1)) % 1) * 8) % 8,
                    round(((-0.5 * (2 * far + 1)) % 1) * 8) % 8)
    pixels = np.asarray(Image.open(Path(terrain.folder) / name))
    np.testing.assert_array_equal(pixels, np.roll(files.texture_image(model, 0),
                                                  (roll[1], roll[0]), axis=(0, 1)))
    plane = terrain({})[2].children[0].children[0]
    assert plane.material["map"] == "/workspace/" + files.plane_map(model, floor, far)[0]
    assert plane.material["mapRepeat"] == [3.0, 2.0]
    mesh = terrain({})[3].children[1].children[0]
    assert mesh.src == "/workspace/" + files.textured_mesh_file(0, 0)
    assert mesh.assets == {files.PLY_TEXTURE: "/workspace/" + files.texture_file(0)}
    st = files.mesh_texcoords(model, 0)
    f = model.mesh_facetexcoord[:model.mesh_facenum[0]].reshape(-1)
    np.testing.assert_array_equal(st[:, 0], model.mesh_texcoord[f, 0].astype(np.float32))
    np.testing.assert_array_equal(st[:, 1], np.float32(1) - model.mesh_texcoord[f, 1].astype(np.float32))
    head = (Path(terrain.folder) / files.textured_mesh_file(0, 0)).read_bytes().split(b"end_header")[0]
    assert b"comment TextureFile texture.png" in head and b"property float s" in head


def test_states_of_a_world_share_one_digest_key(world):
    """A rollout's jobs differ only in the state, which only places bodies: the worker
    serialises the world's elements once for all of them (raycollect/scene.py digest_key),
    not once a job; any other scene keeps a key per params."""
    a, b = {"qpos": [0.1, 0.0], "step": 1}, {"qpos": [0.9, 0.2], "step": 2}
    assert scenes.digest_key(world, a) == scenes.digest_key(world, b)
    assert scenes.view_state_free(world(a)[3]) == scenes.view_state_free(world(b)[3])

    def plain(params):
        return []

    assert scenes.digest_key(plain, a) == scenes.scene_key(a) != scenes.digest_key(plain, b)


def test_planes_are_grids_as_mujoco_draws_them(world):
    """A plane is a grid of cells of at most 1 m (at most 100 a side), not one quad: the
    page's depth is the clip w interpolated over each triangle, and over one quad hundreds
    of metres wide it strayed by millimetres to metres (docs/mjcf-sweep.md)."""
    plane = world({})[2].children[0].children[0]
    w, h, nw, nh = plane.args
    assert (nw, nh) == (geoms.PLANE_SEGMENTS, geoms.PLANE_SEGMENTS) and w > 100
    assert geoms._plane(world.model, 0, [1.4, 0.3, 0.1], 10.0)[0].args == pytest.approx([2.8, 0.6, 3, 1])


def test_a_skybox_is_a_background_of_six_checked_images(tmp_path):
    """rc.skybox checks its faces; a skybox is waited for as a model, its images are checked
    against the assets folder, and it never gets an instance id. An MJCF world's skybox is
    written as six faces (tests/test_mujoco.py compares them with MuJoCo's renderer)."""
    from vuer.schemas import Box

    import raycollect as rc
    from raycollect import assets, labels

    for bad in (["a.png"] * 5, "a.png", ["a.png"] * 5 + [3]):
        with pytest.raises(ValueError, match="6 image URLs"):
            rc.skybox(bad)
    faces = [rc.asset(f"sky/{i}.png") for i in range(6)]
    sky = rc.skybox(faces, key="sky")
    assert assets.is_model(sky) and assets.sources(sky) == faces
    assert not labels.draws(sky) and labels.draws(Box(key="b"))
    with pytest.raises(InvalidJob, match="sky/0.png"):
        assets.check_sources("j", [sky], tmp_path)
    xml = ('<mujoco><asset><texture type="skybox" builtin="gradient" rgb1="1 1 1" rgb2="0 0 0"'
           ' width="8" height="8"/></asset><worldbody><geom size=".1"/></worldbody></mujoco>')
    (tmp_path / "sky.xml").write_text(xml)
    world = mjcf(tmp_path / "sky.xml")
    assert files.skybox(world.model) == 0
    faces = files.skybox_images(world.model)
    assert [f.shape for f in faces] == [(8, 8, 3)] * 6
    # three.js's +Y face is MuJoCo's +Y face (the texture's up, the world's +Z) mirrored.
    np.testing.assert_array_equal(faces[2], files.texture_image(world.model, 0)[16:24, ::-1])
    sky_el = [el for el in world({}) if scenes.skybox_faces(el)]
    assert len(sky_el) == 1 and scenes.skybox_faces(sky_el[0]) == [
        rc.asset(f) for f in files.skybox_files(world.model)]
    (tmp_path / "plain.xml").write_text("<mujoco><worldbody><geom size='.1'/></worldbody></mujoco>")
    plain = mjcf(tmp_path / "plain.xml")
    assert files.skybox(plain.model) == -1 and files.skybox_files(plain.model) == []
    assert not [el for el in plain({}) if scenes.skybox_faces(el)]


WORM_XML = """<mujoco><worldbody>
  <body name="worm" pos="-0.25 -0.75 0.12">
    <geom type="capsule" fromto="0 0 0 0.25 0 0" size="0.06" group="3"/>
    <body name="worm-tail" pos="0.25 0 0"><joint name="bend" type="hinge" axis="0 0.3 1"/>
      <geom type="capsule" fromto="0 0 0 0.25 0 0" size="0.06" group="3"/></body>
  </body></worldbody>
  <deformable>%s</deformable></mujoco>"""


@pytest.fixture
def worm(tmp_path):
    from worm import worm_skin

    (tmp_path / "worm.xml").write_text(WORM_XML % worm_skin())
    return mjcf(tmp_path / "worm.xml")


def _mujocos_skin(world, qpos):
    data = world.forward({"qpos": qpos})
    scn = mujoco.MjvScene(world.model, maxgeom=10)
    update = getattr(mujoco, "mjv_updateActiveSkin", None) or mujoco.mjv_updateSkin
    update(world.model, data, scn)
    return data, scn.skinvert.reshape(-1, 3).astype(np.float64)


def test_a_skin_is_skinned_per_view_as_mujoco_skins_it(worm, tmp_path):
    """A skin is one element in the world frame, drawn from its bind-pose PLY and moved per
    view by its bones: what the bones make of it (skins.skin_points, the page's formula) is
    MuJoCo's own skin in every state, inflation included; two states share one scene update
    and differ only in the bones; its files are in the world's folder and named as sources."""
    from raycollect import assets
    from raycollect.mjcf import skins

    model = worm.model
    assert worm.skin_keys() == {0: "worm-skin"}
    for bend in (0.0, 0.7, -1.3):
        data, theirs = _mujocos_skin(worm, [bend])
        ours = skins.skin_points(model, 0, data.xpos, data.xquat)
        np.testing.assert_allclose(ours, theirs, atol=1e-6)
    a, b = worm({"qpos": [0.2]}), worm({"qpos": [0.9]})
    (ska,), (skb,) = ([el for el in els if scenes.is_skinned(el)] for els in (a, b))
    assert ska.key == "worm-skin" and scenes.view_state_free(ska) == scenes.view_state_free(skb)
    assert scenes.digest_key(worm, {"qpos": [0.2]}) == scenes.digest_key(worm, {"qpos": [0.9]})
    bones_a, bones_b = scenes.skins(a)["worm-skin"], scenes.skins(b)["worm-skin"]
    assert len(bones_a) == 7 * model.skin_bonenum[0] and bones_a != bones_b
    folder = Path(worm.folder)
    srcs = assets.sources(ska)
    assert sorted(srcs) == sorted(assets.asset(p) for p in (skins.ply_file(model, 0), skins.bones_file(0)))
    assert all((folder / s[len(assets.URL_PREFIX):]).is_file() for s in srcs)
    assert assets.is_model(ska) and not assets.check_sources("j", [ska], folder)
    head = (folder / skins.ply_file(model, 0)).read_bytes().split(b"end_header")[0]
    assert f"element vertex {3 * model.skin_facenum[0]}".encode() in head


def test_the_page_skins_as_mujoco_does(worm, tmp_path):
    """raycollect/render/capture_js/skin.js, run by node on the world's bones file and one
    state's bones: every corner where MuJoCo puts its vertex (inflation included)."""
    import json
    import shutil
    import subprocess

    from raycollect.mjcf import skins
    from raycollect.render.server import CAPTURE_DIR

    if shutil.which("node") is None:
        pytest.skip("no node to run the page's skinning with")
    model = worm.model
    data, theirs = _mujocos_skin(worm, [0.8])
    bones = skins.bones(model, 0, data.xpos, data.xquat)
    script = tmp_path / "skin.js"
    script.write_text((CAPTURE_DIR / "skin.js").read_text() + """
const fs = require("fs");
const buf = fs.readFileSync(process.argv[2]);
const s = parseSkin(buf.buffer.slice(buf.byteOffset, buf.byteOffset + buf.length));
const pos = skinVertices(s, JSON.parse(process.argv[3]));
const nrm = skinNormals(s, pos);
for (let k = 0; k < pos.length; k++) pos[k] += s.inflate * nrm[k];
process.stdout.write(JSON.stringify({corners: Array.from(s.corners), pos: Array.from(pos)}));
""")
    out = json.loads(subprocess.run(
        ["node", str(script), str(Path(worm.folder) / skins.bones_file(0)), json.dumps(bones)],
        check=True, capture_output=True, text=True).stdout)
    np.testing.assert_array_equal(out["corners"], skins.faces(model, 0).reshape(-1))
    np.testing.assert_allclose(np.reshape(out["pos"], (-1, 3)), theirs, atol=1e-6)


TENDON_XML = """<mujoco><worldbody>
  <site name="a" pos="0 0 1" size="0.01"/>
  <body name="arm" pos="0 0 1"><joint name="swing" type="hinge" axis="0 1 0"/>
    <geom type="capsule" fromto="0 0 0 0.5 0 0" size="0.02"/>
    <site name="mid" pos="0.25 0 -0.1" size="0.01"/><site name="end" pos="0.5 0 0" size="0.01"/>
  </body></worldbody>
  <tendon><spatial name="cord" width="0.01"><site site="a"/><site site="mid"/><site site="end"/>
  </spatial><spatial name="hidden" width="0.01" group="3"><site site="a"/><site site="end"/>
  </spatial></tendon></mujoco>"""


def test_a_tendon_is_drawn_where_mujocos_renderer_draws_its_pieces(tmp_path):
    """A visible spatial tendon is one skinned element whose bind mesh, moved by the state's
    bones, lies on the capsules MuJoCo's renderer draws for it (every vertex at the tendon's
    width from its piece's axis); unused pieces fold onto the first; a tendon of group 3 is
    not drawn."""
    from raycollect.mjcf import skins, tendons

    (tmp_path / "t.xml").write_text(TENDON_XML)
    world = mjcf(tmp_path / "t.xml")
    model = world.model
    assert world.tendon_keys() == {0: "cord"}
    for swing in (0.0, 0.8):
        els = world({"qpos": [swing]})
        (cord,) = [el for el in els if scenes.is_skinned(el)]
        _, _, paths = world._state({"qpos": [swing]})
        assert len(paths[0]) == 2  # a -> mid -> end
        verts, tris, counts, ids, _ = tendons.mesh(model, 0)
        pose = np.asarray(scenes.skins(els)["cord"]).reshape(-1, 7)
        moved, start = np.zeros_like(verts, dtype=float), 0
        for j, n in enumerate(counts):
            sel = ids[start:start + n]
            start += n
            rot = skins._rot_wxyz(np.concatenate([pose[j, 6:7], pose[j, 3:6]])[None])[0]
            moved[sel] = verts[sel] @ rot.T + pose[j, :3]
        per = len(verts) // tendons.pieces(model, 0)
        for k, (centre, rot, half) in enumerate(paths[0] + [paths[0][0]]):
            p0, p1 = centre - half * rot[:, 2], centre + half * rot[:, 2]
            v = moved[k * per:(k + 1) * per]
            if k == len(paths[0]):  # a piece the state does not use: a sphere at p0
                p1 = p0
            t = np.clip(((v - p0) @ (p1 - p0)) / max((p1 - p0) @ (p1 - p0), 1e-12), 0, 1)
            dist = np.linalg.norm(v - (p0 + t[:, None] * (p1 - p0)), axis=1)
            np.testing.assert_allclose(dist, model.tendon_width[0], atol=1e-6)
    assert (Path(world.folder) / tendons.bones_file(0)).is_file()
