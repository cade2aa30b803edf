"""Shared fixtures: a real local Ray, real Chromium, real files. No mocks."""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import ray

logging.getLogger("raycollect").setLevel(logging.INFO)
# MuJoCo picks its offscreen GL backend when the mujoco package is first imported, and the unit
# layer imports it too: set here, before any test module, so that the order tests run in
# (tests/unit before tests/test_mujoco.py, say) cannot leave mujoco.Renderer without a context
# ("gladLoadGL error"). EGL works on Mesa's llvmpipe without a display or a GPU.
os.environ.setdefault("MUJOCO_GL", "egl")
# Example and test tooling that is not library code: examples/meshgen.py.
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "examples"))


@contextlib.contextmanager
def local_ray():
    """A real local Ray with 2 CPUs, shared by the tests that run in a row (and by the
    module-scoped fixtures that render for several tests): started once, restarted only after
    a test that needed a different cluster; each ray.init costs seconds of the suite."""
    if ray.is_initialized() and os.environ.get("_RC_RAY_KIND") != "local":
        ray.shutdown()
    if not ray.is_initialized():
        ray.init(num_cpus=2, include_dashboard=False, configure_logging=False)
        os.environ["_RC_RAY_KIND"] = "local"
    try:
        yield
    finally:
        # Kill anything named that a test created, so the next test starts clean.
        for actor in ray.util.list_named_actors(all_namespaces=True):
            try:
                ray.kill(ray.get_actor(actor["name"], namespace=actor["namespace"]))
            except ValueError:
                pass


@pytest.fixture
def ray_local():
    with local_ray():
        yield


def pytest_collection_modifyitems(config, items):
    """The tests that start a Ray of their own (ray_cluster_reset) run after all the others,
    in their files' order: the shared local Ray then starts once for the suite instead of
    again after each of them."""
    own = [item for item in items if "ray_cluster_reset" in getattr(item, "fixturenames", ())]
    if own:
        chosen = set(map(id, own))
        items[:] = [item for item in items if id(item) not in chosen] + own


@pytest.fixture
def ray_cluster_reset():
    """For tests that start their own Ray cluster: leave no local Ray behind them."""
    if ray.is_initialized():
        ray.shutdown()
    os.environ["_RC_RAY_KIND"] = "custom"
    yield
    if ray.is_initialized():
        ray.shutdown()


# Ray's GCS declares a node dead after health_check_failure_threshold health checks in a row
# went unanswered, health_check_period_ms apart, each given health_check_timeout_ms. Its
# defaults (5 checks, 3 s apart, 10 s each) saw a node removed mid-run gone only after ~15 s,
# which every node-loss test waited out. Still five misses in a row, but a second apart and
# 2 s each: a live raylet answers within that however busy the machine, and a killed one
# (its port closed: each check fails at once) is seen gone in ~5 s.
HEALTH_CHECKS = {"health_check_period_ms": 1000, "health_check_timeout_ms": 2000,
                 "health_check_failure_threshold": 5}


@contextlib.contextmanager
def worker_nodes(count: int, cpus: int):
    """A ray.cluster_utils.Cluster on this machine: a head with no CPU (so nothing runs
    there but the driver's queue) and `count` worker nodes; Ray is initialised on it."""
    from ray.cluster_utils import Cluster

    cluster = Cluster(initialize_head=True,
                      head_node_args={"num_cpus": 0, "_system_config": HEALTH_CHECKS})
    nodes = [cluster.add_node(num_cpus=cpus) for _ in range(count)]
    cluster.wait_for_nodes()
    ray.init(address=cluster.address)
    try:
        yield cluster, nodes
    finally:
        ray.shutdown()
        cluster.shutdown()


TAG_VAR = "RC_TEST_TAG"


def tagged_chromiums(tag: str) -> list[int]:
    """Chromium processes started under a process tree whose environment carries
    RC_TEST_TAG=tag: this test's own browsers, whatever else runs on the machine."""
    import psutil

    pids = []
    for p in psutil.process_iter(["cmdline"]):
        if "raycollect-chromium-" not in " ".join(p.info["cmdline"] or []):
            continue
        try:
            if p.environ().get(TAG_VAR) == tag:
                pids.append(p.pid)
        except psutil.Error:  # gone meanwhile, or not ours to read
            continue
    return pids


@pytest.fixture(scope="session")
def chromium() -> str:
    from raycollect.browser import find_chromium

    path = find_chromium(required=False)
    if path is None:
        pytest.fail("Chromium is required for the end-to-end tests: run scripts/test.sh, which "
                    "installs Debian's chromium, or set RAYCOLLECT_CHROMIUM")
    return path


def count_by(items):
    out: dict = {}
    for x in items:
        out[x] = out.get(x, 0) + 1
    return out


@pytest.fixture
def tmp_out(tmp_path):
    path = tmp_path / "out"
    yield path
    shutil.rmtree(path, ignore_errors=True)


def read_jsonl(path) -> list[dict]:
    import json

    with open(path, encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def render_all(jobs, **kwargs):
    """rc.render, drained: (results by job id, the Run with its summary)."""
    import raycollect as rc

    kwargs.setdefault("progress", False)
    results = {}
    with rc.render(jobs, **kwargs) as run:
        for r in run:
            assert r.job_id not in results, f"{r.job_id} yielded twice"
            results[r.job_id] = r
    return results, run


def check_renders(run, faults: int = 0) -> None:
    """Renders counted where they happen: the frames the workers produced (their own
    counters), against the frames this run recorded. The writer drops a second frame of a
    done job before the manifest, so the manifest alone cannot show a job rendered twice.
    With no fault in the run, every frame produced was recorded, once; with faults, at most
    the batches the faults cut short (each up to two updates of views: in hand and
    prefetched) were rendered again. `faults`: those the test made that the summary does not
    count (a queue killed)."""
    s = run.summary
    produced = sum(w["frames"] for w in s["by_worker"].values())
    faults += s["workers_restarted"] + s["browsers_restarted"] + s["stale_refused"]
    if faults == 0:
        assert produced == s["rendered"], (f"workers produced {produced} frames for "
                                           f"{s['rendered']} recorded: a job rendered twice")
    else:
        # A lost worker's count is its last registry entry (up to a few seconds old), so it
        # may undercount: the bound is only an upper one.
        bound = s["rendered"] + faults * 2 * run.config.views_per_update
        assert produced <= bound, f"{produced} frames produced for {s['rendered']} recorded"


def replacements_rendered(run, first: int) -> int:
    """Frames rendered by workers started after the first `first` (w0..w{first-1}): a
    replacement that rendered, not only a death seen."""
    return sum(w["frames"] for name, w in run.summary["by_worker"].items()
               if int(name[1:]) >= first)


def check_output(out, expected_ids, run=None, faults: int = 0) -> list[dict]:
    """The output invariants after any run: one manifest line per job, its files whole and
    all there, no temporary files, nothing else in frames/; with `run`, its renders counted
    where they happen (check_renders)."""
    from pathlib import Path

    from raycollect import constants as C
    from raycollect.output.files import load

    manifest = read_jsonl(out / "manifest.jsonl")
    ids = [m["job_id"] for m in manifest]
    dupes = {k: n for k, n in count_by(ids).items() if n > 1}
    assert not dupes, f"duplicates in the manifest: {dupes}"
    missing = set(expected_ids) - set(ids)
    assert not missing, f"{len(missing)} jobs missing from the manifest"
    files = sorted(p.name for p in (out / "frames").iterdir())
    listed = sorted(Path(f).name for m in manifest for f in m["files"].values())
    assert files == listed, "frames/ differs from the manifest"
    suffixes = {suffix for suffix, _ in C.IMAGE_FORMATS.values()}
    assert all(Path(m["files"]["image"]).name in {f"{m['job_id']}{s}" for s in suffixes}
               for m in manifest)
    for m in manifest:
        for kind, name in m["files"].items():
            load(out / name, kind)  # a truncated file raises here
    if run is not None:
        check_renders(run, faults)
    return manifest


@contextlib.contextmanager
def tmpfs(mnt: Path, size: str):
    """A real tmpfs of `size` (mount's size=, e.g. "1m") mounted at `mnt` for a test: a
    filesystem that fills. Needs root, as CI runs; skips the test without."""
    if os.geteuid() != 0:
        pytest.skip("mounting a filesystem needs root")
    mnt.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(mnt)], check=True)
    try:
        yield mnt
    finally:
        subprocess.run(["umount", "-l", str(mnt)], check=False)
