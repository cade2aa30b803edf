"""End to end: real local Ray, real headless Chromium rendering the real Vuer client."""

from __future__ import annotations

import asyncio
import json
import os
import random
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request

import numpy as np
import pytest
import ray
from PIL import Image

import raycollect as rc
from conftest import check_output, read_jsonl, render_all
from raycollect.driver import FIRST_SUBMIT_CHUNK
from scenes import TARGET, dot_scene

pytestmark = pytest.mark.browser


def test_small_orbit_writes_frames_manifest_and_contact_sheet(ray_local, chromium, tmp_out):
    jobs = rc.orbit(12, 160, 120)
    results, run = render_all(jobs, out=tmp_out, workers=2)
    assert len(results) == 12 and run.summary["failed"] == 0
    manifest = check_output(tmp_out, results, run)
    assert len(manifest) == 12
    images = []
    for m in manifest:
        with Image.open(tmp_out / m["files"]["image"]) as im:
            assert im.size == (160, 120) and im.mode == "RGB"
            a = np.asarray(im)
        assert a.std() > 10, f"{m['job_id']} is blank"
        images.append(a)
        assert np.allclose(np.asarray(m["camera"]["K"]), rc.intrinsics(50, 160, 120))
        assert m["camera"]["matrix"] == m["params"]["camera"]["matrix"]
    for i in range(len(images)):
        for j in range(i + 1, len(images)):
            assert np.abs(images[i].astype(int) - images[j]).mean() > 1, (i, j)
    # 12 jobs are one worker's lease (14 views per update, and the next update prefetched):
    # a second worker could never have leased one, so the run starts only one.
    assert run.summary["workers"] == 1 and {m["worker"] for m in manifest} == {"w0"}
    assert (tmp_out / "contact_sheet.png").exists()
    assert read_jsonl(tmp_out / "failures.jsonl") == []
    r = next(iter(results.values()))
    assert r.image.shape == (120, 160, 3) and r.image.dtype == np.uint8
    assert set(r.camera) >= {"matrix", "K", "width", "height"}


def _centroid(image: np.ndarray) -> tuple[float, float]:
    lum = image.astype(float).mean(axis=2)
    mask = lum > 60
    assert mask.sum() >= 3, "the dot is not in the frame"
    vs, us = np.nonzero(mask)
    w = lum[mask]
    # pixel centres are at +0.5 in the pinhole model's continuous coordinates
    return float((us * w).sum() / w.sum()) + 0.5, float((vs * w).sum() / w.sum()) + 0.5


def test_geometry_the_dot_lands_where_K_projects_it(ray_local, chromium):
    target = np.array(TARGET)
    cams = [  # (eye, look-at point, fov, width, height): the dot off-centre in each
        ([2.0, 1.0, 2.5], [0.0, 0.0, 0.0], 50.0, 160, 120),
        ([-1.5, 0.5, 2.0], [0.2, 0.4, 0.0], 40.0, 200, 150),
        ([0.3, 2.5, 0.1], [0.0, 0.0, 0.0], 60.0, 128, 128),
        ([1.0, 0.2, -2.5], [0.5, 0.0, 0.0], 35.0, 240, 120),
        ([-2.0, 1.5, -1.0], [0.0, 0.5, 0.0], 55.0, 160, 120),
    ]
    jobs = [{"camera": {"matrix": rc.look_at(eye, at).tolist(), "fov": fov, "width": w,
                        "height": h}} for eye, at, fov, w, h in cams]
    results, run = render_all(jobs, scene=dot_scene, workers=1)
    assert run.summary["failed"] == 0
    for job in jobs:
        r = results[_job_id(job)]
        m = np.asarray(r.camera["matrix"])
        K = np.asarray(r.camera["K"])
        assert r.image.shape == (job["camera"]["height"], job["camera"]["width"], 3)
        expected = rc.project(target[None], m, K)[0]
        got = np.array(_centroid(r.image))
        err = np.linalg.norm(got - expected)
        assert err < 2.0, f"dot at {got}, K projects it to {expected} ({err:.2f} px off)"


def test_optics_that_change_every_job_keep_rendering(ray_local, chromium):
    """Each new fov or size means new views (the client keeps a view's first optics), and
    each view holds a WebGL context; Chromium drops the oldest past 16. 30 changes in a row
    must all render, each at its own size."""
    jobs = []
    for i in range(30):
        w, h = (64, 48) if i % 2 else (80, 60)
        jobs.append({"camera": {"matrix": rc.look_at([3, 1.5, 3], [0, 0.4, 0]).tolist(),
                                "fov": 30 + 1.5 * i, "width": w, "height": h}})
    results, run = render_all(jobs, workers=1)
    assert run.summary["failed"] == 0 and len(results) == 30
    for job in jobs:
        r = results[_job_id(job)]
        assert r.image.shape == (job["camera"]["height"], job["camera"]["width"], 3)
        assert r.image.std() > 10


def _job_id(params: dict) -> str:
    from raycollect.jobs import content_id, to_plain

    return content_id(to_plain(params))


def _pose_jobs(n: int, seed: int) -> list[dict]:
    """Clearly different poses: random eyes around the demo scene, random targets."""
    rnd = random.Random(seed)
    jobs = []
    for _ in range(n):
        a = rnd.uniform(0, 2 * np.pi)
        eye = [3.5 * np.cos(a), rnd.uniform(0.5, 3.0), 3.5 * np.sin(a)]
        at = [rnd.uniform(-0.8, 0.8), rnd.uniform(0, 0.8), rnd.uniform(-0.8, 0.8)]
        jobs.append({"camera": {"matrix": rc.look_at(eye, at).tolist(), "fov": 50,
                                "width": 96, "height": 72}})
    return jobs


def _stale_count(a: dict, b: dict, kind: str = "image") -> int:
    """Frames of the same job whose `kind` pass differs between two runs: RGB by a mean abs
    diff > 2/255, depth by > 1 mm, masks in more than 0.5% of their pixels."""
    def differs(x, y) -> bool:
        if kind == "image":
            return np.abs(x.astype(int) - y).mean() > 2
        if kind == "depth":
            return np.abs(x - y).mean() > 0.001
        return (x != y).mean() > 0.005
    return sum(differs(getattr(a[k], kind), getattr(b[k], kind)) for k in a)


def test_no_stale_frames_in_200_jobs(ray_local, chromium):
    """Every pass: RGB, depth and masks."""
    jobs = _pose_jobs(200, seed=1)
    first, _ = render_all(jobs, workers=2, depth=True, masks=True)
    # The reference renders every job again in another order and other batches: a stale
    # frame shows its predecessor's pose, and predecessors differ between the two runs.
    shuffled = jobs[:]
    random.Random(2).shuffle(shuffled)
    second, _ = render_all(shuffled, workers=2, views_per_update=3, depth=True, masks=True)
    assert len(first) == len(second) == 200
    for kind in ("image", "depth", "mask"):
        assert _stale_count(first, second, kind) == 0, kind
    # The comparison has the power to see staleness: give every job its predecessor's frame
    # (what a stale grab returns) and all but the poses that happen to look alike are caught.
    ids = [_job_id(j) for j in jobs]
    shifted = {ids[i]: first[ids[i - 1]] for i in range(1, len(ids))}
    for kind in ("image", "depth", "mask"):
        assert _stale_count(shifted, second, kind) >= 150, kind


def test_worker_serves_only_the_client_on_loopback_to_one_session(ray_local, chromium):
    from raycollect.browser import Browser
    from raycollect.render.worker import RenderWorker

    q = rc.JobQueue.create(name="sec")
    w = RenderWorker.remote(q, "sec0")
    info = ray.get(w.start.remote())
    base = f"http://127.0.0.1:{info['port']}"
    assert urllib.request.urlopen(base + "/", timeout=10).status == 200
    for path in ("/workspace/raycollect/render/worker.py", "/workspace/pyproject.toml", "/relay",
                 "/editor", "/assets/../../server.py", "/assets/%2e%2e/%2e%2e/server.py",
                 "/assets/..%2f..%2fserver.py", "/index.html"):
        with pytest.raises(urllib.error.HTTPError) as e:
            urllib.request.urlopen(base + path, timeout=10)
        assert e.value.code in (403, 404, 405), path
    if info["node_ip"] not in ("127.0.0.1", "localhost"):
        with pytest.raises(OSError):  # nothing listens on the node's network address
            urllib.request.urlopen(f"http://{info['node_ip']}:{info['port']}/", timeout=5)
    browser = Browser(info["url"])
    try:
        deadline = asyncio.run(_wait_session(w))
        assert deadline, "the browser never attached"
        codes = asyncio.run(_second_sessions(info["port"]))
        assert codes == {"same-origin": 4001, "foreign-origin": 4001}
        assert ray.get(w.status.remote())["refused_sessions"] == 1
        assert ray.get(w.status.remote())["session"] is True  # the first is untouched
    finally:
        browser.stop()
        ray.kill(w)


def _started(profile: str, timeout: float = 30.0) -> None:
    """Wait until Chromium has claimed its profile (it makes its singleton lock first)."""
    end = time.time() + timeout
    while not os.path.lexists(os.path.join(profile, "SingletonLock")):
        assert time.time() < end, "Chromium never started"
        time.sleep(0.1)


def test_a_stopped_browser_leaves_nothing_in_the_temp_folder(chromium):
    """Chromium makes a directory for its singleton socket in TMPDIR and leaves it when it is
    killed: one per browser launch (recycles, crashes, every run) piled up in /tmp."""
    from raycollect.browser import Browser

    from raycollect.testing.soak import TEMP_PREFIXES

    def ours() -> set[str]:  # what a browser can leave there; other programs' files are not
        return {n for n in os.listdir(tempfile.gettempdir()) if n.startswith(TEMP_PREFIXES)}

    before = ours()
    browser = Browser("about:blank", chromium)
    try:
        _started(browser.profile)
    finally:
        browser.stop()
    assert ours() - before == set()


def test_profiles_of_a_killed_process_are_removed_by_the_next_manager(chromium):
    from raycollect.browser import PROFILE_PREFIX, remove_orphan_profiles

    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    code = (f"import sys, time; sys.path.insert(0, {root!r}); "
            f"from raycollect.browser import Browser; "
            f"b = Browser('about:blank', {chromium!r}); print(b.profile, flush=True); time.sleep(600)")
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    mine = tempfile.mkdtemp(prefix=f"{PROFILE_PREFIX}{os.getpid()}-")  # a live owner's
    try:
        profile = proc.stdout.readline().strip()
        _started(profile)
        proc.kill()  # SIGKILL: it cannot remove its browser's profile (its browser dies too)
        proc.wait()
        assert os.path.isdir(profile)
        assert remove_orphan_profiles() >= 1
        assert not os.path.exists(profile)
        assert os.path.isdir(mine)
    finally:
        proc.kill()
        os.rmdir(mine)


async def _wait_session(w, timeout: float = 60.0) -> bool:
    loop = asyncio.get_running_loop()
    end = loop.time() + timeout
    while loop.time() < end:
        if (await w.status.remote())["session"]:
            return True
        await asyncio.sleep(0.2)
    return False


async def _second_sessions(port: int) -> dict:
    import aiohttp

    out = {}
    async with aiohttp.ClientSession() as s:
        for name, origin in (("same-origin", f"http://127.0.0.1:{port}"),
                             ("foreign-origin", "http://evil.example")):
            async with s.ws_connect(f"ws://127.0.0.1:{port}/", origin=origin) as ws:
                await ws.send_bytes(b"")
                msg = await ws.receive(timeout=10)
                assert msg.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED,
                                    aiohttp.WSMsgType.CLOSING), msg
                out[name] = ws.close_code
    return out


def test_cli_run_writes_the_demo_layout(ray_local, chromium, tmp_path, monkeypatch):
    from raycollect.cli import main

    out = tmp_path / "renders"
    assert main(["run", "--views", "6", "--size", "96x72", "--workers", "1", "--out", str(out),
                 "--no-progress"]) == 0
    check_output(out, [m["job_id"] for m in read_jsonl(out / "manifest.jsonl")])
    assert len(read_jsonl(out / "manifest.jsonl")) == 6
    assert (out / "contact_sheet.png").exists()
    status = json.loads(_capture(main, ["status", "--out", str(out)]))
    assert status["done"] == 6 and status["failed"] == 0


def _capture(fn, argv) -> str:
    import contextlib
    import io

    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        fn(argv)
    return buf.getvalue()


def test_the_most_views_per_update_render(ray_local, chromium):
    """MAX_VIEWS_PER_UPDATE views, the marker's view and the page's canvas all keep their
    WebGL contexts (two views more and the page drops the marker view's: every job fails)."""
    from raycollect import constants as C

    k = C.MAX_VIEWS_PER_UPDATE
    results, run = render_all(rc.orbit(2 * k, 64, 48), workers=1, views_per_update=k,
                              max_attempts=1)
    assert run.summary["failed"] == 0 and len(results) == 2 * k
    [w] = run.summary["by_worker"].values()
    assert w["scene_updates"] == 1, w  # 2 batches of k views: one scene, one camera update


def test_labels_the_scene_ignores_do_not_cost_a_new_scene(ray_local, chromium):
    """Batches are keyed by what the scene function returns: a label in the params that the
    scene does not read leaves the jobs camera-only (one whole scene, then moved cameras)."""
    jobs = [{**job, "view": i, "split": "train"} for i, job in enumerate(rc.orbit(24, 64, 48))]
    results, run = render_all(jobs, workers=1, views_per_update=8)
    assert run.summary["failed"] == 0 and len(results) == 24
    [w] = run.summary["by_worker"].values()
    assert w["frames"] == 24
    assert w["scene_updates"] == 1, w  # keyed by params, it would be 24
    # A param the scene does read still makes a new scene.
    jobs = [{**job, "box_color": c} for job, c in zip(rc.orbit(4, 64, 48), ("#f00", "#0f0") * 2)]
    results, run = render_all(jobs, workers=1, views_per_update=8)
    [w] = run.summary["by_worker"].values()
    assert w["scene_updates"] >= 2


# Where the generator below holds its jobs until the first frame has arrived: past the
# driver's first chunk (raycollect/driver.py), so that chunk is queued and can render. A
# driver that read the whole generator first would wait here in vain, then read on to the end
# (and fail the test); a lazy one gets its first frame, and the generator ends there.
LAZY_GATE = FIRST_SUBMIT_CHUNK + 1
LAZY_GATE_WAIT = 300.0  # seconds: far past any first frame, even on a loaded machine


def test_a_generator_of_jobs_is_consumed_lazily(ray_local, chromium):
    """Jobs are validated and submitted in chunks while rendering runs: the first frame
    arrives long before a large generator is exhausted. The generator waits at LAZY_GATE
    for that frame, so the test validates and queues a few hundred jobs, not the tens of
    thousands read while the first frame rendered, and the outcome is a condition, not a
    race between the first frame and the driver's reading."""
    total, taken = 200_000, 0
    arrived = threading.Event()
    cam = rc.orbit(1, 32, 24)[0]["camera"]

    def jobs():
        nonlocal taken
        for i in range(total):
            if taken == LAZY_GATE and arrived.wait(LAZY_GATE_WAIT):
                return  # the first frame came: the test needs no more jobs
            taken += 1
            yield {"i": i, "camera": cam}

    try:
        with rc.render(jobs(), workers=1, progress=False) as run:
            first = next(iter(run))
            at_first = taken
            arrived.set()  # before the run's end, which waits for its feeder
    finally:
        arrived.set()  # never leave the driver's feeder waiting
    assert first.image.shape == (24, 32, 3)
    assert at_first < total, "the whole generator was read before the first frame"


def test_frames_are_counted_in_ray_metrics(ray_cluster_reset, chromium):
    """`raycollect_frames` (ray.util.metrics) reaches the node's Prometheus endpoint with
    every frame the workers rendered. A Ray of its own: counters add up over a session."""
    import re
    import urllib.request

    ray.init(num_cpus=2, include_dashboard=False, configure_logging=False)
    results, run = render_all(rc.orbit(30, 64, 48), workers=2)
    node = ray._private.worker._global_node
    url = f"http://{node.node_ip_address}:{node.metrics_export_port}/metrics"
    counted, deadline = 0.0, time.time() + 60  # metrics are reported every few seconds
    while time.time() < deadline:
        text = urllib.request.urlopen(url, timeout=10).read().decode()
        counted = sum(float(v) for v in re.findall(
            r'^ray_raycollect_frames(?:_total)?\{[^}]*\} ([0-9.e+]+)$', text, re.M))
        if counted >= 30:
            break
        time.sleep(2)
    assert counted == 30, f"raycollect_frames sums to {counted} at {url}"
