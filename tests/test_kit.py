"""The scene kit in real renders (issue 27): randomised looks reach the page, settled poses
are the rendered poses, the generator is deterministic. Real Ray, real Chromium, small frames.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from PIL import Image
from vuer.schemas import Plane

import raycollect as rc
from conftest import render_all
from raycollect import randomize
from raycollect.jobs import content_id, to_plain

pytestmark = pytest.mark.browser
W, H = 160, 120


def _srgb(linear: float) -> float:
    """The sRGB transfer function (IEC 61966-2-1), as the page encodes its output."""
    return 12.92 * linear if linear <= 0.0031308 else 1.055 * linear ** (1 / 2.4) - 0.055


def _srgb_inverse(encoded: float) -> float:
    return encoded / 12.92 if encoded <= 0.04045 else ((encoded + 0.055) / 1.055) ** 2.4


def _top_camera(height: float = 2.0) -> dict:
    return {"matrix": rc.look_at([0, 0, height], [0, 0, 0], up=(0, 1, 0)).tolist(), "fov": 40,
            "width": W, "height": H}


def _sun(params):
    """The one randomised light of light_scene: a pure function of the params."""
    return randomize.lights(rc.rng(params, "lights"), count=1, kinds=["directional"],
                            intensity={"directional": (0.3, 2.8)}, radius=(2, 4),
                            elevation=(35, 85), up="z")[0]


def light_scene(params):
    """A white Lambert plane (Z-up: facing up) under one randomised directional light, no tone
    mapping: every pixel of the plane is sRGB(I cos(theta) / pi) (three.js r182's Lambert
    BRDF: irradiance I cos(theta) times albedo / pi)."""
    return [_sun(params),
            Plane(key="floor", args=[20, 20], materialType="lambert",
                  material={"color": "#ffffff", "toneMapped": False})]


def test_the_light_intensity_drawn_is_the_one_the_page_rendered(ray_local, chromium):
    jobs = [{"scene": s, "camera": _top_camera()} for s in range(3)]
    results, run = render_all(jobs, scene=light_scene, workers=1, up="z")
    assert run.summary["failed"] == 0 and len(results) == 3
    measured = []
    for r in results.values():
        light = vars(_sun(r.params))
        pos = np.asarray(light["position"])
        cos = pos[2] / np.linalg.norm(pos)  # towards the target, the origin; normal is +Z
        centre = r.image[H // 4: 3 * H // 4, W // 4: 3 * W // 4].astype(float)
        # The tint is part of the draw: per channel, colour x intensity.
        tint = np.array([int(light["color"][i:i + 2], 16) for i in (1, 3, 5)]) / 255.0
        tint = np.array([_srgb_inverse(c) for c in tint])
        expected = np.array([255 * _srgb(min(1.0, t * light["intensity"] * cos / math.pi))
                             for t in tint])
        assert np.abs(centre - expected).max() <= 1.0, (r.params, light, centre.mean((0, 1)),
                                                        expected)
        # Read back: the intensity the page used, from the brightest channel's pixels.
        c = int(np.argmax(tint))
        got = _srgb_inverse(centre[..., c].mean() / 255) * math.pi / (cos * tint[c])
        assert math.isclose(got, light["intensity"], rel_tol=0.02), (got, light["intensity"])
        measured.append(got)
    assert len({round(m, 2) for m in measured}) == 3  # three draws, three intensities


def _checker(path, size=64, square=16):
    """A red and blue checkerboard PNG, size x size pixels of square x square squares."""
    a = np.zeros((size, size, 3), np.uint8)
    y, x = np.mgrid[:size, :size]
    red = ((x // square + y // square) % 2) == 0
    a[red] = (255, 0, 0)
    a[~red] = (0, 0, 255)
    Image.fromarray(a).save(path)


def texture_scene(params):
    g = rc.rng(params, "looks")
    look = randomize.material(g, colors=False, textures=params["textures"], repeat=(1, 1),
                              material_type="basic")
    look["material"]["toneMapped"] = False
    return [randomize.background(g, value=(0.5, 0.9)),
            Plane(key="floor", args=[1, 1], position=[0, 0, 0], **look)]


def test_textures_and_backgrounds_reach_the_page(ray_local, chromium, tmp_path):
    (tmp_path / "tex").mkdir()
    _checker(tmp_path / "tex" / "checker.png")
    urls = randomize.textures(tmp_path, "tex")
    jobs = [{"scene": s, "textures": urls, "camera": _top_camera(2.5)} for s in range(2)]
    results, run = render_all(jobs, scene=texture_scene, workers=1, up="z",
                              assets=str(tmp_path), masks=True)
    assert run.summary["failed"] == 0 and len(results) == 2
    for r in results.values():
        img, mask = r.image, r.mask
        floor = mask == r.instances["floor"]
        assert 0.1 < floor.mean() < 0.9
        red = np.all(img == (255, 0, 0), axis=-1)
        blue = np.all(img == (0, 0, 255), axis=-1)
        # The texture's two colours cover the plane (but its edges, where texels blend).
        assert red[floor].mean() > 0.3 and blue[floor].mean() > 0.3
        bg = vars(texture_scene(r.params)[0])["color"]
        rgb = tuple(int(bg[i:i + 2], 16) for i in (1, 3, 5))
        assert np.all(img[~floor] == rgb), (bg, np.unique(img[~floor].reshape(-1, 3), axis=0)[:5])


# --- the visibility loop ---------------------------------------------------------------------
# The shell the loop draws from, and its seed: of the 6 first views, 3 are behind the wall
# (azimuths 197-225 degrees, the wall at -X) and 3 show the crate, and every replacement
# shell_redraw makes of those 3 shows it. The loop then takes two rounds, each a render with
# its own start-up of workers and browsers; seed 1 took four (a replacement behind the wall
# again). Any seed is deterministic: this one is chosen for the time, not for luck.
SHELL = dict(center=[0, 0, 0.15], radius=(2.0, 2.0), elevation=(5, 15), up="z")
SHELL_SEED = 26


def crate_scene(params):
    """A box at the origin of a Z-up world, and a wall that hides it from -X."""
    from vuer.schemas import AmbientLight, Box

    return [AmbientLight(key="amb", intensity=1.0),
            Box(key="crate", args=[0.3, 0.3, 0.3], position=[0, 0, 0.15],
                materialType="basic", material={"color": "#e63946"}),
            Box(key="wall", args=[0.05, 4, 2], position=[-0.6, 0, 0.5],
                materialType="basic", material={"color": "#457b9d"})]


def test_render_visible_replaces_the_views_that_do_not_show_the_object(ray_local, chromium,
                                                                        tmp_out):
    """Cameras all round the crate: those behind the wall (and the wall's side) are rejected
    by their own frame's labels and replaced by redraws until every kept frame shows it."""
    least = 400  # pixels of the crate, of about 1,400 when nothing hides it
    cams = rc.sample.shell(n=6, seed=SHELL_SEED, **SHELL)
    jobs = [{"camera": {"matrix": m.tolist(), "fov": 40, "width": W, "height": H}} for m in cams]
    redraw = rc.sample.shell_redraw(**SHELL)
    got = rc.sample.render_visible(jobs, {"crate": least}, redraw, field="px", rounds=6,
                                   scene=crate_scene, workers=1, up="z", masks=True,
                                   out=tmp_out, progress=False)
    assert got.rejected, "every first view showed the crate: the test shows nothing"
    assert len(got.kept) == len(jobs) and not got.unresolved
    for r in got.kept:
        assert r.objects["crate"]["px"] >= least
        # Checked on the frame itself too: the crate's id covers that many pixels.
        assert (r.mask == r.instances["crate"]).sum() >= least
    # Every rejected frame is in the output, and really does not show the crate enough.
    import json

    lines = {json.loads(x)["job_id"]: json.loads(x)
             for x in (tmp_out / "manifest.jsonl").read_text().splitlines()}
    assert set(got.rejected) <= set(lines)
    assert all(lines[j]["objects"]["crate"]["px"] < least for j in got.rejected)
    # The loop again on the same output: nothing is rendered, the same frames are kept.
    again = rc.sample.render_visible(jobs, {"crate": least}, redraw, field="px", rounds=6,
                                     scene=crate_scene, workers=1, up="z", masks=True,
                                     out=tmp_out, progress=False)
    assert sum(run.summary["rendered"] for run in again.runs) == 0
    assert sorted(again.rejected) == sorted(got.rejected)
    assert sorted(_job_id(r) for r in again.kept) == sorted(r.job_id for r in got.kept)


def test_render_visible_by_the_visible_fraction(ray_local, chromium):
    """The default field: visib_fract, from the amodal masks (BOP's px / px_all)."""
    jobs = [{"camera": {"matrix": m.tolist(), "fov": 40, "width": W, "height": H}}
            for m in rc.sample.shell(n=6, seed=SHELL_SEED, **SHELL)]
    got = rc.sample.render_visible(jobs, {"crate": 0.9}, rc.sample.shell_redraw(**SHELL),
                                   rounds=6, scene=crate_scene, workers=1, up="z", masks=True,
                                   amodal=True, progress=False)
    assert got.rejected and len(got.kept) == len(jobs) and not got.unresolved
    assert all(r.objects["crate"]["visib_fract"] >= 0.9 for r in got.kept)


def _job_id(r):
    return r["job_id"] if isinstance(r, dict) else r.job_id


# --- the generator ---------------------------------------------------------------------------
ARGS = {"scenes": 2, "views": 3, "size": (160, 120)}


def _read(out) -> dict:
    """{job_id: (manifest line, {kind: file bytes})} of an output."""
    import json

    lines = [json.loads(x) for x in (out / "manifest.jsonl").read_text().splitlines()]
    return {m["job_id"]: (m, {k: (out / f).read_bytes() for k, f in m["files"].items()})
            for m in lines}


def _generator():
    import bop_generator  # examples/, on the path by conftest
    import ray.cloudpickle

    # Its scene function is pickled by value, as when the generator runs as a script: the
    # workers cannot import examples/.
    ray.cloudpickle.register_pickle_by_value(bop_generator)
    return bop_generator


def _generate(out, assets, seed: int, workers: int):
    """examples/bop_generator.py as its command line runs it: (outputs, the run)."""
    w, h = ARGS["size"]
    run = _generator().main(["--out", str(out), "--assets", str(assets), "--scenes",
                             str(ARGS["scenes"]), "--views", str(ARGS["views"]), "--seed",
                             str(seed), "--workers", str(workers), "--size", f"{w}x{h}",
                             "--views-per-update", "1"])
    return _read(out), run


def _generate_reversed(out, assets, seed: int):
    """The generator's jobs submitted last scene first, last view first, to one worker: the
    queue hands them out in that order, so every element key is met in another order."""
    bg = _generator()
    models = bg.keys(bg.prepare_assets(assets, None, 1.0), 1)
    jobs = bg.jobs(ARGS["scenes"], ARGS["views"], seed, *ARGS["size"], models, assets,
                   rc.randomize.textures(assets, "pb"))
    results, run = render_all(jobs[::-1], scene=bg.scene, workers=1, out=out,
                              assets=str(assets), **bg.render_options(models))
    assert run.summary["failed"] == 0
    return _read(out)


LABEL_FIELDS = ("params", "camera", "instances", "objects", "classes")


def _same(a: dict, b: dict) -> None:
    passes = {"image", "depth", "mask", "amodal"}
    assert set(a) == set(b)
    for job, (m, files) in a.items():
        m2, files2 = b[job]
        for f in LABEL_FIELDS:
            assert m.get(f) == m2.get(f), (job, f)
        assert files.keys() == files2.keys() == passes
        for kind in files:
            assert files[kind] == files2[kind], (job, kind)  # byte for byte


def test_the_generator_is_deterministic_across_workers_and_order(ray_local, chromium, tmp_path):
    from raycollect import physics

    assets = tmp_path / "assets"
    # Two workers sharing the jobs in the queue's order, against one worker taking them in
    # the reverse order: every element key met in another order, by another process.
    one, run = _generate(tmp_path / "w2", assets, seed=5, workers=2)
    assert len(one) == ARGS["scenes"] * ARGS["views"]
    _same(one, _generate_reversed(tmp_path / "rev", assets, seed=5))
    print("frames per worker with 2 workers:",
          {k: w["frames"] for k, w in run.summary["by_worker"].items()})
    for job, (m, _) in one.items():
        # The objects are drawn at the poses pybullet settled them in (with their scale).
        for key, (pos, quat) in m["params"]["poses"].items():
            expected = physics.matrix(pos, quat)
            expected[:3, :3] *= m["params"]["models"][key][1]
            assert np.allclose(m["objects"][key]["pose"], expected, atol=1e-6), key
        assert sum(m["objects"][k]["px"] > 0 for k in m["params"]["poses"]) >= 4
    # The BOP export ran (its layout is raycollect/output/bop.py's: a split folder or not).
    assert len(list((tmp_path / "w2" / "bop").rglob("scene_gt.json"))) == 1
    # Another seed, other scenes: other jobs (so other frames) and other poses. Rendering
    # them would show only that other poses draw other pixels.
    bg = _generator()
    models = bg.keys(bg.prepare_assets(assets, None, 1.0), 1)
    other = bg.jobs(ARGS["scenes"], ARGS["views"], 6, *ARGS["size"], models, assets,
                    rc.randomize.textures(assets, "pb"))
    assert len(other) == len(one)
    assert not {content_id(to_plain(j)) for j in other} & set(one)
    poses = [m["params"]["poses"] for m, _ in one.values()]
    assert all(to_plain(j)["poses"] not in poses for j in other)
