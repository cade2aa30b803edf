"""Outputs in an object store and in shards, against a real S3 server process on loopback
(moto's server mode), checked with an independent client (boto3): exactly once under kills
of workers and of the driver, no orphan objects, reruns render only the missing, a store
that goes away and comes back, workers on two nodes with no shared disk, bad URLs, buckets
and credentials, and shards that the webdataset package and Ray Data read as they are."""

from __future__ import annotations

import io
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path

import numpy as np
import pytest
import ray

import raycollect as rc
from conftest import TAG_VAR, check_renders, count_by, tagged_chromiums, worker_nodes
from raycollect.jobs import content_id, to_plain
from scenes import depth_scene

pytestmark = pytest.mark.browser
HERE = Path(__file__).resolve().parent
CREDS = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
         "AWS_DEFAULT_REGION": "us-east-1"}
# What the workers need to reach the store, passed the way users pass it (Ray workers do not
# see a test's environment).
OPTIONS = {"key": "testing", "secret": "testing", "client_kwargs": {"region_name": "us-east-1"}}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_port(port: int, timeout: float = 30.0) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.1)
    raise TimeoutError(f"nothing listens on {port}")


def _server(port: int, env: dict | None = None) -> subprocess.Popen:
    proc = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p",
                             str(port)], env={**os.environ, **(env or {})},
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    _wait_port(port)
    return proc


@pytest.fixture(scope="module")
def s3():
    """A moto S3 server process for this module: (endpoint URL, boto3 client)."""
    import boto3

    port = _free_port()
    proc = _server(port)
    url = f"http://127.0.0.1:{port}"
    client = boto3.client("s3", endpoint_url=url, aws_access_key_id="testing",
                          aws_secret_access_key="testing", region_name="us-east-1")
    yield url, client
    proc.kill()
    proc.wait()


@pytest.fixture
def bucket(s3):
    url, client = s3
    name = f"rc-{uuid.uuid4().hex[:12]}"
    client.create_bucket(Bucket=name)
    return name


def _keys(client, bucket: str, prefix: str = "") -> list[str]:
    keys, token = [], None
    while True:
        page = client.list_objects_v2(Bucket=bucket, Prefix=prefix,
                                      **({"ContinuationToken": token} if token else {}))
        keys += [o["Key"] for o in page.get("Contents", [])]
        if not page.get("IsTruncated"):
            return keys
        token = page["NextContinuationToken"]


def _manifest(client, bucket: str, prefix: str) -> list[dict]:
    """The manifest as boto3 reads it: every part, every line."""
    lines = []
    for key in sorted(_keys(client, bucket, f"{prefix}/manifest/")):
        body = client.get_object(Bucket=bucket, Key=key)["Body"].read().decode()
        lines += [json.loads(x) for x in body.splitlines() if x.strip()]
    return lines


def _check_store(client, bucket: str, prefix: str, jobs, run=None) -> list[dict]:
    """Every job exactly once in the manifest, every object of frames/ named by exactly one
    line (no orphan, no refused attempt), each readable and whole."""
    lines = _manifest(client, bucket, prefix)
    ids = [m["job_id"] for m in lines]
    assert not {k: n for k, n in count_by(ids).items() if n > 1}, "duplicates"
    assert set(ids) == {content_id(to_plain(j)) for j in jobs}
    named = sorted(f"{prefix}/{f}" for m in lines if not m.get("shard")
                   for f in m["files"].values())
    assert sorted(_keys(client, bucket, f"{prefix}/frames/")) == named
    from raycollect.output.files import decode
    for m in lines[:: max(1, len(lines) // 8)]:
        if not m.get("shard"):
            for kind, key in m["files"].items():
                decode(kind, client.get_object(Bucket=bucket, Key=f"{prefix}/{key}")["Body"].read())
    if run is not None:
        check_renders(run)
    return lines


def _jobs(n: int, size=(96, 72)):
    return rc.orbit(n, *size)


def test_a_store_output_lands_once_reruns_render_the_missing_and_reads_back(
        ray_local, chromium, s3, bucket):
    endpoint, client = s3
    out = f"s3://{bucket}/run"
    opts = dict(endpoint_url=endpoint, storage_options=OPTIONS)
    jobs = _jobs(24)
    results = {}
    with rc.render(jobs[:16], out=out, workers=2, depth=True, masks=True, progress=False,
                   **opts) as run:
        for r in run:
            results[r.job_id] = r
            assert r.files == {} and set(r.keys) == {"image", "depth", "mask"}
    lines = _check_store(client, bucket, "run", jobs[:16], run)
    # The driver got keys, not bytes; a Result reads its arrays from the store on demand.
    m = lines[0]
    body = client.get_object(Bucket=bucket, Key=f"run/{m['files']['depth']}")["Body"].read()
    assert np.array_equal(np.load(io.BytesIO(body)), results[m["job_id"]].depth)
    assert run.summary["out"] == out and run.summary["frames_on_disk"] == 16
    assert client.get_object(Bucket=bucket, Key="run/contact_sheet.png")["Body"].read()[:4] == b"\x89PNG"
    # A rerun with more jobs renders only the missing ones.
    with rc.render(jobs, out=out, workers=2, depth=True, masks=True, progress=False, **opts) as run2:
        rendered = [r.job_id for r in run2]
    assert len(rendered) == 8 and run2.summary["skipped"] == 16
    _check_store(client, bucket, "run", jobs, run2)
    # Every reader reads it from the store: status, rc.read, an export.
    from raycollect.output.manifest import output_status
    st = output_status(out, {**OPTIONS, "endpoint_url": endpoint})
    assert st["done"] == 24 and st["passes"] == ["rgb", "depth", "mask"]
    rows = rc.read(out, storage_options={**OPTIONS, "endpoint_url": endpoint}).take_all()
    assert sorted(r["job_id"] for r in rows) == sorted(m["job_id"] for m in _manifest(client, bucket, "run"))
    assert all(r["depth"].dtype == np.float32 and r["mask"].shape == (72, 96) for r in rows)
    rc.export(out, "coco", storage_options={**OPTIONS, "endpoint_url": endpoint})
    coco = json.loads(client.get_object(Bucket=bucket, Key="run/coco.json")["Body"].read())
    assert len(coco["images"]) == 24


def test_a_store_that_goes_away_and_comes_back_loses_nothing(ray_local, chromium, s3, bucket):
    """The store's endpoint (a TCP proxy process in front of the server) is killed mid-run
    and started again 4 s later: uploads are retried with backoff and the run finishes,
    every job once. Away for longer than `store_retry`, the run stops with an error that
    names the store and the key."""
    endpoint, client = s3
    port = _free_port()

    def proxy():
        p = subprocess.Popen([sys.executable, str(HERE / "tcp_proxy.py"), str(port),
                              endpoint.rsplit(":", 1)[1]])
        _wait_port(port)
        return p

    p = proxy()
    via = f"http://127.0.0.1:{port}"
    jobs = _jobs(28)
    try:
        with rc.render(jobs, out=f"s3://{bucket}/away", workers=2, progress=False,
                       endpoint_url=via, storage_options=OPTIONS) as run:
            for n, _ in enumerate(run, 1):
                if n == 6:
                    p.kill()
                    p.wait()
                    time.sleep(4)
                    p = proxy()
        _check_store(client, bucket, "away", jobs, run)

        # Gone for good (longer than store_retry): the run stops, naming the store and a key.
        with pytest.raises(rc.RaycollectError) as info:
            with rc.render(jobs, out=f"s3://{bucket}/gone", workers=1, progress=False,
                           endpoint_url=via, storage_options=OPTIONS, store_retry=3) as run:
                for n, _ in enumerate(run, 1):
                    if n == 1:
                        p.kill()
                        p.wait()
        assert re.search(rf"store s3://{bucket}/gone: cannot \w+ \S+", str(info.value)), info.value
    finally:
        p.kill()


@pytest.mark.parametrize("where", ["local", "store"])
def test_shards_hold_every_frame_once_and_load_as_they_are(ray_local, chromium, s3, bucket,
                                                          tmp_path, where):
    import webdataset as wds
    from PIL import Image

    endpoint, client = s3
    jobs = [{"camera": {"matrix": rc.look_at([0.3 * i, 0.2, 2.5], [0, 0, -1.5]).tolist(),
                        "fov": 55, "width": 80, "height": 60}} for i in range(10)]
    opts = dict(endpoint_url=endpoint, storage_options=OPTIONS) if where == "store" else {}
    out = f"s3://{bucket}/sh" if where == "store" else str(tmp_path / "sh")
    # Every pass, so each kind of file is seen to travel through shards and the store.
    with rc.render(jobs, scene=depth_scene, out=out, workers=2, depth=True, masks=True,
                   amodal=True, semantic=True, normals=True, coords=True,
                   shard_size=4, progress=False, **opts) as run:
        results = {r.job_id: r for r in run}
    check_renders(run)
    local = tmp_path / "copy"
    if where == "store":  # the shards as boto3 reads them
        for key in _keys(client, bucket, "sh/shards/"):
            (local / key).parent.mkdir(parents=True, exist_ok=True)
            (local / key).write_bytes(client.get_object(Bucket=bucket, Key=key)["Body"].read())
        root = local / "sh"
        assert not _keys(client, bucket, "sh/frames/")
    else:
        root = Path(out)
        assert not (root / "frames").exists() or not list((root / "frames").iterdir())
    tars = sorted(str(p) for p in (root / "shards").glob("*.tar"))
    assert len(tars) >= 3  # 10 frames, at most 4 to a shard
    # The webdataset package, as it is: one sample per frame, each frame once.
    samples = list(wds.WebDataset(tars, shardshuffle=False))
    keys = [s["__key__"] for s in samples]
    assert sorted(keys) == sorted(results) and len(set(keys)) == len(keys)
    for s in samples:
        r = results[s["__key__"]]
        assert np.array_equal(np.asarray(Image.open(io.BytesIO(s["png"]))), r.image)
        assert np.array_equal(np.load(io.BytesIO(s["depth.npy"])), r.depth)
        assert np.array_equal(np.asarray(Image.open(io.BytesIO(s["mask.png"]))).astype(np.uint16), r.mask)
        assert np.array_equal(np.asarray(Image.open(io.BytesIO(s["semantic.png"]))).astype(np.uint16), r.semantic)
        for kind in ("normals", "coords"):
            assert np.array_equal(np.load(io.BytesIO(s[f"{kind}.npy"])), getattr(r, kind))
        with np.load(io.BytesIO(s["amodal.npz"])) as z:
            assert sorted(int(i) for i in z["ids"]) == sorted(r.instances[k] for k in r.amodal)
        assert r.semantic.any() and r.normals.any() and r.amodal
        assert json.loads(s["json"])["job_id"] == r.job_id
    # Ray Data's own reader, as it is.
    rows = ray.data.read_webdataset(tars).take_all()
    assert sorted(r["__key__"] for r in rows) == sorted(results)
    # raycollect's readers: rc.read, status, the contact sheet, the exports.
    storage = {**OPTIONS, "endpoint_url": endpoint} if where == "store" else None
    rows = {r["job_id"]: r for r in rc.read(out, storage_options=storage).take_all()}
    assert all(np.array_equal(rows[k]["image"], results[k].image) for k in results)
    assert all(np.array_equal(rows[k]["normals"], results[k].normals) for k in results)
    from raycollect.output.manifest import output_status
    st = output_status(out, storage)
    assert st["done"] == 10 and st["shards"] == len(tars)
    for fmt in ("coco", "bop", "nerfstudio"):
        rc.export(out, fmt, storage_options=storage)


# The tests that start a Ray of their own come after those on the shared local Ray
# (conftest.py's ray_local), which then starts once for them all.


def test_kills_of_workers_and_of_the_driver_leave_every_job_once_and_no_orphan(
        ray_cluster_reset, chromium, s3, bucket, tmp_path):
    endpoint, client = s3
    out = f"s3://{bucket}/k"
    # A worker killed mid-run: the objects it wrote for frames the driver never heard of
    # are deleted by the run's end.
    ray.init(num_cpus=2, include_dashboard=False)
    jobs = _jobs(48)
    with rc.render(jobs[:30], out=out, workers=2, progress=False, lease_ttl=60,
                   endpoint_url=endpoint, storage_options=OPTIONS) as run:
        for n, _ in enumerate(run, 1):
            if n == 8:
                member = run.pool.members["w0"]
                os.kill(member.info["pid"], signal.SIGKILL)
    assert run.summary["workers_restarted"] >= 1
    _check_store(client, bucket, "k", jobs[:30], run)
    ray.shutdown()
    # The driver killed mid-run (the CLI, as users run it); the rerun finishes the rest.
    lines_file = tmp_path / "jobs.jsonl"
    lines_file.write_text("".join(json.dumps(j) + "\n" for j in jobs))
    args = ["run", "--jobs", str(lines_file), "--workers", "2", "--out", out,
            "--endpoint-url", endpoint, "--no-progress"]
    env = {**os.environ, **CREDS, TAG_VAR: uuid.uuid4().hex}
    first = subprocess.Popen([sys.executable, "-m", "raycollect.cli", *args], env=env,
                             stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                             start_new_session=True)
    deadline = time.time() + 180
    while time.time() < deadline and first.poll() is None:
        if len(_keys(client, bucket, "k/frames/")) >= 30 + 6:
            break
        time.sleep(0.2)
    assert first.poll() is None, first.communicate()[0][-3000:]
    os.killpg(first.pid, signal.SIGKILL)
    first.wait()
    deadline = time.time() + 30
    while tagged_chromiums(env[TAG_VAR]) and time.time() < deadline:
        time.sleep(0.5)
    second = subprocess.run([sys.executable, "-m", "raycollect.cli", *args], env=env,
                            capture_output=True, text=True, timeout=300)
    assert second.returncode == 0, second.stdout[-3000:] + second.stderr[-3000:]
    _check_store(client, bucket, "k", jobs)


def test_two_nodes_without_a_shared_disk_write_to_the_store(ray_cluster_reset, chromium, s3,
                                                            bucket):
    endpoint, client = s3
    with worker_nodes(2, cpus=1) as (cluster, nodes):
        jobs = _jobs(30)
        with rc.render(jobs, out=f"s3://{bucket}/nodes", workers=2, progress=False,
                       endpoint_url=endpoint, storage_options=OPTIONS) as run:
            for _ in run:
                pass
    lines = _check_store(client, bucket, "nodes", jobs, run)
    assert len({m["node"] for m in lines}) == 2, "frames came from both nodes"


def test_bad_store_urls_buckets_and_credentials_exit_2_before_ray(s3, tmp_path):
    endpoint, _ = s3
    auth_port = _free_port()  # a second server that checks credentials
    auth = _server(auth_port, {"INITIAL_NO_AUTH_ACTION_COUNT": "0"})
    bare = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    try:
        rows = [
            (["--out", "nosuch://bucket/x"], CREDS, "nosuch://bucket/x"),
            (["--out", "s3://no-such-bucket-here/x", "--endpoint-url", endpoint], CREDS,
             "bucket does not exist"),
            (["--out", "s3://whatever/x", "--endpoint-url", f"http://127.0.0.1:{auth_port}"],
             CREDS, "s3://whatever/x"),
            (["--out", "s3://whatever/x", "--endpoint-url", endpoint,
              ], {"AWS_SHARED_CREDENTIALS_FILE": str(tmp_path / "none"),
                  "AWS_CONFIG_FILE": str(tmp_path / "none")}, "credentials"),
        ]
        for args, env, fragment in rows:
            t0 = time.time()
            p = subprocess.run([sys.executable, "-m", "raycollect.cli", "run", *args,
                                "--no-progress"], env={**bare, "HOME": str(tmp_path), **env},
                               capture_output=True, text=True, timeout=60)
            lines = [x for x in p.stderr.splitlines() if x.strip()]
            assert p.returncode == 2, (args, p.stdout[-2000:], p.stderr[-2000:])
            assert len(lines) == 1 and fragment in lines[0], (args, lines)
            assert "Ray" not in p.stdout + p.stderr and time.time() - t0 < 30
    finally:
        auth.kill()
