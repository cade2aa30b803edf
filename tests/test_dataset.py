"""Datasets where users train: rc.read (Ray Data) and the nerfstudio export, over real runs,
in every image format."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

import raycollect as rc
from conftest import check_output, local_ray, read_jsonl, render_all
from raycollect.cli import main
from scenes import TARGET, dot_scene

pytestmark = pytest.mark.browser

CAMS = [([2.0, 1.0, 2.5], [0.0, 0.0, 0.0]), ([-1.5, 0.5, 2.0], [0.2, 0.4, 0.0]),
        ([1.0, 0.2, -2.5], [0.5, 0.0, 0.0]), ([-2.0, 1.5, -1.0], [0.0, 0.5, 0.0])]


def _dot_jobs(cams):
    return [{"camera": {"matrix": rc.look_at(eye, at).tolist(), "fov": 50, "width": 160,
                        "height": 120}} for eye, at in cams]


@pytest.fixture(scope="module")
def dot_run(chromium, tmp_path_factory):
    """One output the reading tests share (they only read it, and the export writes beside
    the frames), in the default image format: (output, results). A render per test would pay
    the start-up of workers and browsers again."""
    out = tmp_path_factory.mktemp("dot") / "out"
    with local_ray():
        results, run = render_all(_dot_jobs(CAMS), scene=dot_scene, out=out, workers=1,
                                  depth=True, masks=True)
    assert run.summary["failed"] == 0 and len(results) == len(CAMS)
    return out, results


@pytest.fixture
def dot_output(dot_run):
    return dot_run[0]


@pytest.fixture
def png_reference(dot_run):
    """The default format's (PNG's) frames of CAMS[:2], by job id: the shared output's."""
    from raycollect.jobs import content_id, to_plain

    results = dot_run[1]
    return {k: results[k] for k in (content_id(to_plain(j)) for j in _dot_jobs(CAMS[:2]))}


def test_read_gives_one_row_per_frame_with_its_passes(dot_output, ray_local):
    manifest = {m["job_id"]: m for m in read_jsonl(dot_output / "manifest.jsonl")}
    rows = rc.read(dot_output).take_all()
    assert sorted(r["job_id"] for r in rows) == sorted(manifest)
    for r in rows:
        m = manifest[r["job_id"]]
        assert r["image"].shape == (120, 160, 3) and r["image"].dtype == np.uint8
        assert r["depth"].shape == (120, 160) and r["depth"].dtype == np.float32
        assert r["mask"].shape == (120, 160) and r["mask"].dtype == np.uint16
        assert np.allclose(r["K"], m["camera"]["K"]) and np.allclose(r["matrix"], m["camera"]["matrix"])
        assert json.loads(r["params"]) == m["params"]
        assert json.loads(r["instances"]) == m["instances"]
        with Image.open(dot_output / m["files"]["image"]) as im:
            assert np.array_equal(np.asarray(im), r["image"])


def _centroid(image: np.ndarray) -> np.ndarray:
    lum = image.astype(float).mean(axis=2)
    vs, us = np.nonzero(lum > 60)
    w = lum[vs, us]
    return np.array([(us * w).sum() / w.sum() + 0.5, (vs * w).sum() / w.sum() + 0.5])


def test_nerfstudio_export_places_the_dot_where_it_is(dot_output):
    assert main(["export", str(dot_output), "--format", "nerfstudio"]) == 0
    doc = json.loads((dot_output / "transforms.json").read_text())
    manifest = read_jsonl(dot_output / "manifest.jsonl")
    assert len(doc["frames"]) == len(manifest)
    assert len({f["file_path"] for f in doc["frames"]}) == len(manifest)  # each frame once
    by_file = {m["files"]["image"]: m for m in manifest}
    for f in doc["frames"]:
        m = by_file[f["file_path"]]
        assert f["transform_matrix"] == m["camera"]["matrix"]
        K = m["camera"]["K"]
        assert (doc["fl_x"], doc["fl_y"], doc["cx"], doc["cy"], doc["w"], doc["h"]) == \
            (K[0][0], K[1][1], K[0][2], K[1][2], 160, 120)  # shared intrinsics: top level
        image = np.asarray(Image.open(dot_output / f["file_path"]).convert("RGB"))
        # Project the dot with nothing but transforms.json (OpenGL: the camera looks down -Z).
        p = np.linalg.inv(np.asarray(f["transform_matrix"])) @ np.r_[TARGET, 1.0]
        uv = np.array([doc["fl_x"] * p[0] / -p[2] + doc["cx"], doc["cy"] - doc["fl_y"] * p[1] / -p[2]])
        assert np.linalg.norm(uv - _centroid(image)) < 2.0
        depth_mm = np.asarray(Image.open(dot_output / f["depth_file_path"]))
        depth = np.load(dot_output / m["files"]["depth"])
        assert depth_mm.dtype == np.uint16
        assert np.array_equal(depth_mm > 0, depth > 0)
        assert np.abs(depth_mm[depth > 0] - depth[depth > 0] * 1000).max() <= 0.5
        mask = np.asarray(Image.open(dot_output / f["mask_path"]))
        assert set(np.unique(mask)) <= {0, 255} and (mask == 255).sum() >= 3


@pytest.mark.parametrize("fmt", ["webp", "npy"])
def test_every_image_format_holds_the_pixels_of_the_default(png_reference, ray_local, chromium,
                                                            tmp_path, fmt):
    """image_format="webp" / "npy" frames are the default PNG's pixels, and every reader
    reads them: Result.image, rc.read, the contact sheet, the nerfstudio and BOP exports."""
    jobs = _dot_jobs(CAMS[:2])
    png = png_reference
    out = tmp_path / fmt
    results, run = render_all(jobs, scene=dot_scene, out=out, workers=1, depth=True,
                              masks=True, amodal=True, image_format=fmt)
    manifest = check_output(out, png, run)
    for m in manifest:
        assert m["files"]["image"].endswith(f".{fmt}")
        assert np.array_equal(results[m["job_id"]].image, png[m["job_id"]].image)
        assert (png[m["job_id"]].image > 60).any()  # the dot is there to compare
    rows = {r["job_id"]: r for r in rc.read(out).take_all()}
    assert all(np.array_equal(rows[k]["image"], png[k].image) for k in png)
    assert (out / "contact_sheet.png").exists()
    assert main(["export", str(out), "--format", "nerfstudio"]) == 0
    for f in json.loads((out / "transforms.json").read_text())["frames"]:
        job_id = next(m["job_id"] for m in manifest if m["camera"]["matrix"] == f["transform_matrix"])
        with Image.open(out / f["file_path"]) as im:  # what nerfstudio's loader does
            assert np.array_equal(np.asarray(im.convert("RGB")), png[job_id].image)
    assert main(["export", str(out), "--format", "bop"]) == 0
    for im_id, m in enumerate(manifest):
        with Image.open(out / "bop" / "train" / "000000" / "rgb" / f"{im_id:06d}.png") as im:
            assert im.format == "PNG" and np.array_equal(np.asarray(im), png[m["job_id"]].image)
