"""Ground truth: lossless RGB, metric depth, instance masks (real Ray, real Chromium)."""

from __future__ import annotations

from io import BytesIO

import numpy as np
import pytest
from PIL import Image

import raycollect as rc
from conftest import check_output, local_ray, read_jsonl, render_all
from raycollect.output.files import load
from scenes import (BOX_SIDE, BOXES, FLAT_COLORS, WALL_Z, depth_scene, depth_scene_separate,
                    flat_scene)

pytestmark = pytest.mark.browser


def _colours_outside(image: np.ndarray, allowed: list[tuple[int, int, int]]) -> int:
    """How many pixels are neither black nor one of `allowed`."""
    ok = np.zeros(image.shape[:2], bool)
    for c in [(0, 0, 0), *allowed]:
        ok |= np.all(image == np.array(c, np.uint8), axis=-1)
    return int((~ok).sum())


def _hex(c: str) -> tuple[int, int, int]:
    return tuple(int(c[i:i + 2], 16) for i in (1, 3, 5))


def test_rgb_is_lossless(ray_local, chromium, tmp_out):
    jobs = [{"camera": {"matrix": rc.look_at([0.3 * i, 0.5, 3.0], [0, 0, 0]).tolist(),
                        "fov": 50, "width": 320, "height": 240}} for i in range(4)]
    results, run = render_all(jobs, scene=flat_scene, out=tmp_out, workers=1)
    assert run.summary["failed"] == 0 and len(results) == 4
    allowed = [_hex(c) for c in FLAT_COLORS]
    for m in check_output(tmp_out, results, run):
        png = load(tmp_out / m["files"]["image"], "image")
        assert np.array_equal(png, results[m["job_id"]].image)  # Result.image is the file
        for c in allowed:  # every colour is on screen, so the check below means something
            assert np.all(png == np.array(c, np.uint8), axis=-1).sum() > 100, c
        assert _colours_outside(png, allowed) == 0
        # The same check catches a frame that went through JPEG, as the client's grab did.
        buf = BytesIO()
        Image.fromarray(png).save(buf, format="JPEG", quality=95)
        jpeg = np.asarray(Image.open(BytesIO(buf.getvalue())).convert("RGB"))
        assert _colours_outside(jpeg, allowed) > 0.01 * png.shape[0] * png.shape[1]


def _backproject(depth: np.ndarray, matrix, K) -> np.ndarray:
    """World points of every pixel with depth, (N, 3), at the pixel centres."""
    v, u = np.nonzero(depth > 0)
    z = depth[v, u].astype(np.float64)
    x = (u + 0.5 - K[0, 2]) / K[0, 0] * z
    y = -(v + 0.5 - K[1, 2]) / K[1, 1] * z  # v counts down, camera +Y is up
    cam = np.stack([x, y, -z, np.ones_like(z)])  # the camera looks down its -Z
    return (np.asarray(matrix) @ cam).T[:, :3]


CAMERAS = [  # (eye, target, near, far): the wall and boxes seen from several poses and ranges
    ([0.0, 0.0, 0.0], [0.0, 0.0, -1.0], 0.1, 20.0),
    ([0.4, 0.3, 0.5], [0.0, 0.0, -2.0], 0.05, 100.0),
    ([-0.5, -0.2, 1.0], [0.2, 0.1, -2.0], 0.5, 10.0),
    ([0.8, 0.6, 1.5], [-0.2, 0.0, -2.5], 0.2, 50.0),
]


def _depth_jobs() -> list[dict]:
    return [{"camera": {"matrix": rc.look_at(eye, at).tolist(), "fov": 55, "width": 200,
                        "height": 150, "near": near, "far": far}}
            for eye, at, near, far in CAMERAS]


@pytest.fixture(scope="module")
def depth_run(chromium, tmp_path_factory):
    """The wall and boxes from CAMERAS, colour, depth and ids in one render, two workers, to
    an output: (output, results, run). Rendered once for the two tests that check it, one
    against geometry and one against the separate passes (a render each would pay the
    start-up of workers and browsers twice for the same frames)."""
    out = tmp_path_factory.mktemp("depth") / "out"
    with local_ray():
        results, run = render_all(_depth_jobs(), scene=depth_scene, out=out, workers=2,
                                  depth=True, masks=True)
    return out, results, run


def test_depth_is_metric_and_masks_name_the_elements(depth_run):
    out, results, run = depth_run
    assert run.summary["failed"] == 0 and len(results) == len(CAMERAS)
    manifest = read_jsonl(out / "manifest.jsonl")
    instances = manifest[0]["instances"]
    assert set(instances) >= {"wall", *BOXES}
    assert all(m["instances"] == instances for m in manifest)  # stable across frames, workers
    for m in manifest:
        r = results[m["job_id"]]
        depth = load(out / m["files"]["depth"], "depth")
        mask = load(out / m["files"]["mask"], "mask")
        assert m["files"]["depth"].endswith(".depth.npy") and m["files"]["mask"].endswith(".mask.png")
        assert depth.dtype == np.float32 and depth.shape == (150, 200)
        assert np.array_equal(depth, r.depth) and np.array_equal(mask, r.mask)
        # Workers encode; the files land byte for byte as the worker produced them.
        for kind, name in m["files"].items():
            assert (out / name).read_bytes() == r.files[kind], kind
        assert set(np.unique(mask)) <= {0, *instances.values()}
        # Background: nothing drawn has depth 0 and id 0, and only there.
        assert np.array_equal(depth == 0, mask == 0)
        matrix, K = np.asarray(m["camera"]["matrix"]), np.asarray(m["camera"]["K"])
        # The wall's pixels back-project onto its plane z = -WALL_Z.
        wall = np.where(mask == instances["wall"], depth, 0)
        assert (wall > 0).sum() > 1000
        pts = _backproject(wall, matrix, K)
        err = np.abs(pts[:, 2] + WALL_Z)
        assert np.median(err) < 0.001 and err.max() < 0.002, (m["camera"], err.max())
        # Each box's centre projects onto a pixel holding its id; its depth is that of the
        # box's surface (within half a side of the centre's depth).
        for name, centre in BOXES.items():
            u, v = rc.project(np.array([centre]), matrix, K)[0]
            iu, iv = int(u), int(v)
            assert mask[iv, iu] == instances[name], (name, m["camera"])
            z_centre = -(np.linalg.inv(matrix) @ np.r_[centre, 1.0])[2]
            assert abs(depth[iv, iu] - z_centre) <= BOX_SIDE / 2 * 1.8, name


def _modes(run) -> dict:
    """How the pages made the run's frames: {"mrt" or "separate: why": frames}."""
    out: dict = {}
    for w in run.summary.by_worker.values():
        for mode, n in w.get("pass_modes", {}).items():
            out[mode] = out.get(mode, 0) + n
    return out


def test_one_render_and_separate_passes_agree(depth_run, ray_local, chromium):
    """Colour, depth and ids drawn in one render (multiple render targets) are, pixel for
    pixel, what a render per pass makes of the same scene: the test above checks the one-
    render path against geometry; this one checks it against the separate passes, which a
    scene with a material the one render cannot draw exactly still takes."""
    jobs = _depth_jobs()
    _, one, run1 = depth_run
    sep, run2 = render_all(jobs, scene=depth_scene_separate, workers=1, depth=True, masks=True)
    assert run1.summary["failed"] == 0 and run2.summary["failed"] == 0
    assert _modes(run1) == {"mrt": len(jobs)}
    [(mode, n)] = _modes(run2).items()
    assert n == len(jobs) and mode.startswith("separate: a material that does not"), mode
    assert one.keys() == sep.keys()
    for job_id, r in one.items():
        s = sep[job_id]
        assert np.array_equal(r.image, s.image)
        assert np.array_equal(r.depth, s.depth), np.abs(r.depth - s.depth).max()
        assert np.array_equal(r.mask, s.mask)
        assert (r.mask > 0).mean() > 0.5  # the comparison covers the scene, not black


def test_a_straight_wall_reads_its_distance(ray_local, chromium):
    """A wall 2.5 m in front of the camera (near 0.1, far 20) reads 2.5 m within 1 mm."""
    jobs = [{"camera": {"matrix": np.eye(4).tolist(), "fov": 40, "width": 160, "height": 120,
                        "near": 0.1, "far": 20.0}}]
    results, run = render_all(jobs, scene=depth_scene, workers=1, depth=True)
    [r] = results.values()
    wall = r.depth[r.depth > WALL_Z - 0.01]
    assert wall.size > 0.3 * r.depth.size
    assert abs(float(np.median(wall)) - WALL_Z) < 0.001
