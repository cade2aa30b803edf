"""The fast layer: the pure modules, no Ray, no browser. Runs in seconds:
`bash scripts/test.sh tests/unit`."""

from __future__ import annotations

import json
import socket
import struct
from io import BytesIO
from pathlib import Path

import numpy as np
import pytest

import raycollect as rc
from raycollect import assets, camera, cluster, constants as C
from raycollect.render import capture, stage
from raycollect.output import files
from raycollect.config import Config
from raycollect.errors import (BrokenModel, InvalidJob, NoBrowser, RenderError, RunFailed,
                               disposition)
from raycollect.jobs import MalformedJob, content_id, prepare, read_jsonl


# --- camera --------------------------------------------------------------------------------
def test_look_at_is_a_rigid_camera_looking_at_its_target():
    m = rc.look_at([1.0, 2.0, 3.0], [0.0, 0.5, 0.0])
    assert np.allclose(m[:3, :3].T @ m[:3, :3], np.eye(3))
    assert np.isclose(np.linalg.det(m[:3, :3]), 1.0)
    K = rc.intrinsics(50, 160, 120)
    assert np.allclose(rc.project(np.array([[0.0, 0.5, 0.0]]), m, K), [[80, 60]])


def test_camera_validation_names_the_field():
    good = {"camera": {"matrix": np.eye(4).tolist(), "fov": 50, "width": 64, "height": 48}}
    assert camera.validate("j", good)["near"] == camera.DEFAULT_NEAR
    for field, bad in (("camera.fov", {"fov": 0}), ("camera.width", {"width": 0}),
                       ("camera.matrix", {"matrix": [[1, 0], [0, 1]]}),
                       ("camera.far", {"far": -1})):
        with pytest.raises(InvalidJob) as e:
            camera.validate("j7", {"camera": {**good["camera"], **bad}})
        assert e.value.field == field and "j7" in str(e.value)


# --- jobs ------------------------------------------------------------------------------------
def test_job_ids_are_stable_and_keys_are_checked(tmp_path):
    a, b = {"x": 1, "camera": {"fov": 1}}, {"camera": {"fov": 1}, "x": 1}
    assert content_id(a) == content_id(b)
    with pytest.raises(InvalidJob):
        prepare([{"x": 1}], keys=["../etc"])
    path = tmp_path / "jobs.jsonl"
    path.write_text('{"a": 1}\n\nnot json\n[1]\n')
    jobs = list(read_jsonl(str(path)))
    assert jobs[0] == {"a": 1}
    assert [type(j) for j in jobs[1:]] == [MalformedJob, MalformedJob]


# --- options: bad ones are refused before anything starts ---------------------------------
def test_views_per_update_is_bounded_by_the_pages_webgl_contexts(capsys):
    from raycollect.cli import main

    assert Config(views_per_update=C.MAX_VIEWS_PER_UPDATE).views_per_update == 14
    with pytest.raises(ValueError, match=r"views_per_update must be at most 14.*got 15"):
        Config(views_per_update=15)
    with pytest.raises(ValueError, match="views_per_update"):
        rc.render(rc.orbit(2, 32, 24), views_per_update=16)  # before Ray or a browser starts
    with pytest.raises(SystemExit) as e:
        main(["run", "--views-per-update", "15", "--no-progress"])
    assert e.value.code == 2
    assert "--views-per-update must be at most 14, got 15" in capsys.readouterr().err


# --- errors: one place decides ------------------------------------------------------------
def test_disposition_follows_the_error_group():
    assert disposition(InvalidJob("j", "f", "m")) == "final"
    assert disposition(BrokenModel("x")) == "final"
    assert disposition(RenderError("x")) == "retry"
    assert disposition(NoBrowser("x")) == "abort"
    assert disposition(RunFailed("x")) == "abort"
    assert disposition(KeyError("a bug")) == "abort"


# --- capture payloads and files ----------------------------------------------------------
def _payload(w, h, passes, buffers, status=None) -> bytes:
    """A page's answer as capture_js/grab.js lays it out: RGB of each pass, as bytes or float32."""
    body = [np.ascontiguousarray(b[..., :3]) for b in buffers]
    blocks = [{"name": p, "type": "f32x3" if b.dtype == np.float32 else "u8x3", "bytes": b.nbytes}
              for p, b in zip(passes, body)]
    head = json.dumps({"w": w, "h": h, "passes": passes, "blocks": blocks,
                       "status": status or {}}).encode()
    return b"RCF1" + struct.pack("<I", len(head)) + head + b"".join(b.tobytes() for b in body)


def test_capture_decodes_rows_bottom_up_and_each_pass_exactly():
    w, h, far = 4, 3, 20.0
    rgba = np.zeros((h, w, 4), np.uint8)
    rgba[0, 0] = (10, 20, 30, 255)  # readPixels' first row is the image's bottom row
    q = np.arange(w * h, dtype=np.uint32).reshape(h, w) * 1000
    depth = np.stack([(q >> 16) & 255, (q >> 8) & 255, q & 255, q * 0 + 255], -1).astype(np.uint8)
    ids = np.array([[0, 1, 2, 300]] * h, np.uint32)
    mask = np.stack([ids & 255, (ids >> 8) & 255, ids * 0, ids * 0 + 255], -1).astype(np.uint8)
    cap = capture.decode(_payload(w, h, ["rgb", "depth", "mask"], [rgba, depth, mask]), far=far)
    assert tuple(cap.rgb[h - 1, 0]) == (10, 20, 30)
    assert np.allclose(cap.depth[::-1], q * far / capture.DEPTH_LEVELS, rtol=1e-6)
    assert np.array_equal(cap.mask, ids[::-1])
    with pytest.raises(RenderError):
        capture.decode(b"\xff\xd8\xff\xe0 a JPEG")


def test_files_round_trip_exactly():
    rgb = np.random.default_rng(0).integers(0, 256, (7, 9, 3), dtype=np.uint8)
    depth = np.random.default_rng(1).random((7, 9), dtype=np.float32) * 50
    mask = np.random.default_rng(2).integers(0, 65536, (7, 9)).astype(np.uint16)
    assert np.array_equal(files.decode("image", files.encode_image(rgb)), rgb)
    assert np.array_equal(files.decode("depth", files.encode_depth(depth)), depth)
    assert np.array_equal(files.decode("mask", files.encode_mask(mask)), mask)


def test_every_image_format_round_trips_and_is_told_by_its_bytes():
    from PIL import Image

    rng = np.random.default_rng(3)
    for h, w in ((7, 9), (480, 640)):  # odd rows (no alignment to lean on) and a real size
        rgb = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
        rgb[h // 2:] = rgb[h // 2]  # flat rows too, what the "up" filter turns into zeros
        for fmt, (suffix, _) in C.IMAGE_FORMATS.items():
            data = files.encode_image(rgb, fmt)
            assert files.suffix("image", data) == suffix, fmt
            assert np.array_equal(files.decode("image", data), rgb), fmt
        # The default PNG, read by a decoder raycollect did not write: PIL's own.
        png = files.encode_image(rgb)
        with Image.open(BytesIO(png)) as im:
            assert im.format == "PNG" and im.mode == "RGB"
            assert np.array_equal(np.asarray(im), rgb)
        ids = rng.integers(0, C.MAX_INSTANCES + 1, (h, w)).astype(np.uint16)
        with Image.open(BytesIO(files.encode_mask(ids))) as im:
            assert np.array_equal(np.asarray(im).astype(np.uint16), ids)
    with pytest.raises(ValueError, match="image format"):
        files.encode_image(rgb, "jpeg")


def test_config_names_a_bad_image_format():
    with pytest.raises(ValueError, match="image_format must be one of"):
        Config(image_format="jpeg")
    assert Config(image_format="webp").image_format == "webp"


def test_the_summary_shows_where_a_frame_s_time_goes():
    from raycollect.metrics import STAGES, StageClock, per_worker

    clock = StageClock()
    for stage_name, s in (("page", 3.0), ("transfer", 1.0), ("encode", 0.5)):
        clock.add(stage_name, s)
    clock.mode("mrt")
    clock.mode("separate", "a GLSL ES 1.00 raw shader")
    out = per_worker({"w0": {"frames": 100, "seconds": 10.0, **clock.snapshot()}})["w0"]
    assert set(out["stage_ms_per_frame"]) == set(STAGES)
    assert out["stage_ms_per_frame"]["page"] == 30.0 and out["limit"] == "page"
    assert out["pass_modes"] == {"mrt": 1, "separate: a GLSL ES 1.00 raw shader": 1}


# --- stage: the revision marker -------------------------------------------------------------
def test_marker_colours_tell_neighbouring_revisions_apart():
    for rev in range(len(stage.PALETTE) * 2):
        image = np.full((8, 8, 3), stage.PALETTE[rev % len(stage.PALETTE)], np.uint8)
        assert stage.marker_revision_matches(image, rev)
        assert not stage.marker_revision_matches(image, rev + 1)


# --- writer: what a crash leaves is repaired ------------------------------------------------
def test_keys_the_client_keeps_for_itself_reach_the_page_renamed():
    """An element keyed "root" or "bgChildren" (the Vuer client's scene containers), at any
    depth, goes to the page under another key; its labels keep its own; the caller's
    elements are not changed; other elements go as they are."""
    from vuer.schemas import Box, group

    root = group(Box(key="bgChildren"), Box(key="x"), key="root")
    plain = Box(key="fine")
    out = stage.instance_groups([root, plain], [1, 2])
    assert [g.userData["rcKey"] for g in out] == ["root", "fine"]
    sent = out[0].children[0]
    assert sent.key not in stage.CLIENT_KEYS
    assert [c.key for c in sent.children] == [f"{stage.CLIENT_KEY_PREFIX}bgChildren", "x"]
    assert root.key == "root" and [c.key for c in root.children] == ["bgChildren", "x"]
    assert out[1].children[0] is plain


def test_writer_repairs_a_cut_manifest_and_orphan_files(tmp_path):
    from raycollect.output.writer import OutputWriter

    (tmp_path / "frames").mkdir()
    (tmp_path / "manifest.jsonl").write_text(json.dumps({"job_id": "a", "files": {}}) +
                                             '\n{"job_id": "b", "fi')
    for name in ("a.png", "b.png", ".a.png.tok.tmp", "c.depth.npy"):
        (tmp_path / "frames" / name).write_bytes(b"x")
    w = OutputWriter(tmp_path)
    w.close()
    assert w.done == {"a"}
    assert sorted(p.name for p in (tmp_path / "frames").iterdir()) == ["a.png"]
    assert (tmp_path / "manifest.jsonl").read_text().count("\n") == 1


# --- assets ----------------------------------------------------------------------------------
def test_asset_urls_and_source_checks(tmp_path):
    from vuer.schemas import Obj, group

    assert rc.asset("meshes/a.obj") == "/workspace/meshes/a.obj"
    with pytest.raises(ValueError):
        rc.asset("../secret")
    (tmp_path / "a.obj").write_text("v 0 0 0\n")
    ok = [Obj(key="a", src="/workspace/a.obj")]
    assets.check_sources("j", ok, tmp_path)
    for bad in ([group(Obj(key="b", src="/workspace/b.obj"), key="g")],
                [Obj(key="c", src="/workspace/../a.obj")]):
        with pytest.raises(InvalidJob):
            assets.check_sources("j", bad, tmp_path)
    with pytest.raises(InvalidJob, match="needs an assets folder"):
        assets.check_sources("j", ok, None)
    assert assets.is_model(group(Obj(key="d", src="/workspace/a.obj"), key="g"))


# --- cluster: no hang on a dead record ------------------------------------------------------
def test_a_dead_recorded_cluster_means_a_local_ray_and_a_dead_given_one_an_error(tmp_path,
                                                                                    monkeypatch):
    monkeypatch.setenv("RAY_TMPDIR", str(tmp_path))
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    assert cluster.resolve(None) is None  # no record: start a local Ray
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        dead = f"127.0.0.1:{s.getsockname()[1]}"
    (tmp_path / "ray").mkdir()
    (tmp_path / "ray" / "ray_current_cluster").write_text(dead)
    assert cluster.resolve(None) == "local"
    with pytest.raises(rc.ClusterUnreachable, match="ray stop"):
        cluster.resolve("auto")
    with pytest.raises(rc.ClusterUnreachable, match=dead):
        cluster.resolve(dead)
    with socket.socket() as live:
        live.bind(("127.0.0.1", 0))
        live.listen()
        alive = f"127.0.0.1:{live.getsockname()[1]}"
        (tmp_path / "ray" / "ray_current_cluster").write_text(alive)
        assert cluster.resolve(None) == alive


# --- export: per-frame intrinsics when frames differ ---------------------------------------
def test_nerfstudio_export_lists_per_frame_intrinsics_when_they_differ(tmp_path):
    from raycollect.output.export import nerfstudio
    from raycollect.result import Result
    from raycollect.output.writer import OutputWriter

    w = OutputWriter(tmp_path)
    for i, (fov, size) in enumerate(((40, (32, 24)), (60, (48, 32)))):
        cam = camera.camera_record(camera.validate(str(i), {"camera": {
            "matrix": np.eye(4).tolist(), "fov": fov, "width": size[0], "height": size[1]}}))
        r = Result(f"j{i}", {}, camera=cam, files={
            "image": files.encode_image(np.zeros((size[1], size[0], 3), np.uint8)),
            "depth": files.encode_depth(np.full((size[1], size[0]), 1.2345, np.float32))})
        w.commit_many([(r, w.stage(r, "t"))])
    w.close()
    doc = json.loads(Path(nerfstudio(tmp_path)).read_text())
    assert "fl_x" not in doc and [f["w"] for f in doc["frames"]] == [32, 48]
    from PIL import Image

    mm = np.asarray(Image.open(tmp_path / doc["frames"][0]["depth_file_path"]))
    assert mm.dtype == np.uint16 and (mm == 1235).all()  # 1.2345 m to the nearest mm


def test_a_folder_too_big_to_ship_must_exist_on_the_node(tmp_path):
    import asyncio

    from raycollect.assets import Assets, materialize

    shared = Assets(str(tmp_path / "nowhere"), size=10**12)  # over the limit: not shipped
    with pytest.raises(rc.AssetsError, match="node 10.0.0.7"):
        asyncio.run(materialize(shared, "10.0.0.7"))
    (tmp_path / "here").mkdir()
    assert asyncio.run(materialize(Assets(str(tmp_path / "here"), 1), "n")) == tmp_path / "here"


def test_a_bad_job_is_named_by_its_index_in_the_whole_list():
    """validate_jobs checks one job at a time; a non-dict job at index 12 is job #12, not #0
    (and in a later chunk, its index counts from the start of the whole list)."""
    from raycollect.driver import validate_jobs
    from raycollect.scene import orbit

    jobs = orbit(12, 64, 48) + [5]
    valid, invalid = validate_jobs(jobs)
    assert len(valid) == 12 and [f.job for f in invalid] == ["#12"]
    assert "job #12" in invalid[0].error and invalid[0].field == "params"
    _, invalid = validate_jobs(["not a job"], start=500)
    assert invalid[0].job == "#500"


def test_a_run_starts_no_worker_that_could_never_lease_a_job():
    from raycollect.driver import workers_for
    from raycollect.render.leases import jobs_per_lease

    per_lease = jobs_per_lease(14)  # the next update and the prefetched one
    assert per_lease == 28
    assert workers_for(2, 2, 14) == 1
    assert workers_for(2, 28, 14) == 1 and workers_for(2, 29, 14) == 2
    assert workers_for(8, 100, 2) == 8 and workers_for(8, 9, 2) == 3
    assert workers_for(2, None, 14) == 2  # a generator longer than the first chunk
    assert workers_for(3, 0, 14) == 1
