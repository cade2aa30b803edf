"""Real scenes: models served from an assets folder, and no frame before they have loaded."""

from __future__ import annotations

import urllib.error
import urllib.request

import numpy as np
import pytest
import ray

import raycollect as rc
from conftest import check_output, local_ray, read_jsonl, render_all
import meshgen
from scenes import MODEL_KINDS, arm_scene, kind_scene, model_scene

pytestmark = pytest.mark.browser


def _write_assets(root):
    meshgen.write_obj(root / "meshes" / "cube.obj", *meshgen.box((0.4, 0.4, 0.4)))
    v, f = meshgen.uv_sphere(0.25, 12, 24)
    meshgen.write_ply(root / "meshes" / "disc.ply", v, f)
    meshgen.write_arm_urdf(root)
    box = meshgen.box((0.4, 0.4, 0.4))
    meshgen.write_stl(root / MODEL_KINDS["stl"], *box)
    meshgen.write_glb(root / MODEL_KINDS["glb"], *box)
    meshgen.write_pcd(root / MODEL_KINDS["pcd"], meshgen.ball_points(0.25, 20_000))
    meshgen.write_textured_obj(root / "tex")
    return root


@pytest.fixture
def assets(tmp_path):
    return _write_assets(tmp_path / "assets")


def _cam(eye, at=(0, 0, 0), w=160, h=120):
    return {"matrix": rc.look_at(eye, at).tolist(), "fov": 50, "width": w, "height": h}


def _id_at(mask, point, matrix, K) -> int:
    u, v = rc.project(np.array([point]), np.asarray(matrix), np.asarray(K))[0]
    return int(mask[int(v), int(u)])


def test_obj_and_ply_show_where_they_are_in_every_frame(ray_local, chromium, assets, tmp_out):
    # Every job moves the models: each is a new scene, and a frame grabbed before the moved
    # (or any) model is on the page would miss it at its projected centre.
    jobs = [{"x": 0.15 * i - 0.3, "camera": _cam([0.3 * i - 0.6, 0.8, 2.5])} for i in range(6)]
    results, run = render_all(jobs, scene=model_scene, assets=str(assets), out=tmp_out,
                              workers=2, masks=True)
    assert run.summary["failed"] == 0 and len(results) == 6
    for m in check_output(tmp_out, results, run):
        ids, x = m["instances"], m["params"]["x"]
        mask = results[m["job_id"]].mask
        assert _id_at(mask, (x - 0.5, 0, 0), m["camera"]["matrix"], m["camera"]["K"]) == ids["cube"]
        assert _id_at(mask, (x + 0.5, 0, 0), m["camera"]["matrix"], m["camera"]["K"]) == ids["disc"]


@pytest.fixture(scope="module")
def kinds_rendered(tmp_path_factory, chromium):
    """One run for every model kind: 4 jobs of each, kind after kind, each job moving its
    model (a new scene). A run per kind would pay the workers' and browsers' start-up four
    times; in one page, each kind's first job is still the first use of its loader."""
    root = _write_assets(tmp_path_factory.mktemp("kinds") / "assets")
    jobs = [{"kind": kind, "x": 0.2 * i - 0.3, "camera": _cam([0.4 * i - 0.6, 0.4, 2.2])}
            for kind in sorted(MODEL_KINDS) for i in range(4)]
    with local_ray():
        return render_all(jobs, scene=kind_scene, assets=str(root), workers=1, masks=True)


@pytest.mark.parametrize("kind", sorted(MODEL_KINDS))
def test_every_model_kind_is_on_the_page_before_any_grab(kinds_rendered, kind):
    """Stl, Glb, Pcd, and an Obj with an MTL and a texture, moved by every job (each job a
    new scene): each frame shows the model at its projected centre, the textured one with
    its texture's colour (untextured it would be white)."""
    results, run = kinds_rendered
    mine = [r for r in results.values() if r.params["kind"] == kind]
    assert len(mine) == 4, [f.error for f in run.failures]  # none of this kind failed
    for r in mine:
        x, m, K = r.params["x"], r.camera["matrix"], r.camera["K"]
        assert _id_at(r.mask, (x, 0, 0), m, K) == r.instances["model"], (kind, x)
        if kind == "textured":
            u, v = rc.project(np.array([(x, 0, 0.2)]), np.asarray(m), np.asarray(K))[0]
            red, green, blue = r.image[int(v), int(u)].astype(int)
            assert green > red + 40 and green > blue + 40, (red, green, blue)


def test_urdf_links_load_from_relative_paths(ray_local, chromium, assets):
    jobs = [{"camera": _cam([1.6, 0.9, 1.6], (0, 0.25, 0))}]
    results, run = render_all(jobs, scene=arm_scene, assets=str(assets), workers=1, masks=True)
    assert run.summary["failed"] == 0
    [r] = results.values()
    arm = r.instances["arm"]
    assert (r.mask == arm).sum() > 200
    m, K = r.camera["matrix"], r.camera["K"]
    # The upper link sits above the base: its mesh loaded if its centre shows the arm.
    assert _id_at(r.mask, (0, meshgen.ARM_LINK_OFFSET + 0.15, 0), m, K) == arm
    assert _id_at(r.mask, (0, 0, 0), m, K) == arm


def test_missing_and_corrupt_models_fail_their_jobs_only(ray_local, chromium, assets, tmp_out):
    (assets / "meshes" / "broken.ply").write_bytes(
        b"ply\nformat binary_little_endian 1.0\nelement vertex 1000\nproperty float x\n"
        b"property float y\nproperty float z\nelement face 10\n"
        b"property list uchar int vertex_indices\nend_header\n" + b"\x00\x01" * 10)
    good = [{"x": 0.1 * i, "camera": _cam([0.5 * i, 0.5, 2.5])} for i in range(3)]
    missing = {"x": 0.0, "obj": "meshes/nope.obj", "camera": _cam([0, 0.5, 2.5])}
    corrupt = {"x": 0.0, "ply": "meshes/broken.ply", "camera": _cam([0, 0.5, 2.5])}
    results, run = render_all(good + [missing, corrupt], scene=model_scene,
                              assets=str(assets), out=tmp_out, workers=1)
    assert len(results) == 3
    check_output(tmp_out, results, run)
    failures = {f["params"].get("obj", f["params"].get("ply")): f
                for f in read_jsonl(tmp_out / "failures.jsonl")}
    assert set(failures) == {"meshes/nope.obj", "meshes/broken.ply"}
    assert "nope.obj" in failures["meshes/nope.obj"]["error"]
    assert failures["meshes/nope.obj"]["attempts"] == 1  # failed at validation, no retries
    assert "broken.ply" in failures["meshes/broken.ply"]["error"]
    assert failures["meshes/broken.ply"]["attempts"] == 1  # a broken file is not retried


def test_assets_are_served_read_only_and_nothing_else(ray_local, chromium, assets, tmp_path):
    from raycollect.assets import prepare
    from raycollect.config import Config
    from raycollect.render.worker import RenderWorker

    secret = tmp_path / "secret.txt"
    secret.write_text("not for the browser")
    (assets / "link-out").symlink_to(secret)
    (assets / "dir-out").symlink_to(tmp_path)
    q = rc.JobQueue.create(name="assets-sec")
    # Not shipped (limit 0): the worker serves the folder itself, links and all.
    w = RenderWorker.remote(q, "as0", None, Config(assets=prepare(assets, limit=0)))
    try:
        info = ray.get(w.start.remote())
        base = f"http://127.0.0.1:{info['port']}"
        ok = urllib.request.urlopen(base + "/workspace/meshes/cube.obj", timeout=10)
        assert ok.status == 200 and ok.read().startswith(b"v ")
        assert "max-age" in ok.headers["Cache-Control"]
        for path in ("/workspace/", "/workspace/meshes/", "/workspace/../secret.txt",
                     "/workspace/%2e%2e/secret.txt", "/workspace/meshes/..%2f..%2fsecret.txt",
                     "/workspace/link-out", "/workspace/dir-out/secret.txt",
                     "/workspace/raycollect/render/worker.py", "/workspace/pyproject.toml"):
            with pytest.raises(urllib.error.HTTPError) as e:
                urllib.request.urlopen(base + path, timeout=10)
            assert e.value.code in (403, 404), path
    finally:
        ray.kill(w)
