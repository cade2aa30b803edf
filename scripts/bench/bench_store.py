#!/usr/bin/env python
"""Outputs in an object store and in shards: one table, measured in this run.

  S1  bytes the driver receives per 640x480 rgb+depth+masks frame: with a store output the
      workers write the files and send keys (goal <= 2 KB); with a local output, the files
  S2  the driver's own CPU per frame with a store output (process time, all its threads,
      first frame to last; goal <= 1 ms)
  S3  frames/s writing to the store / to local disk, 2 workers, 640x480 rgb+depth+masks
      (goal >= 0.9). The store is moto's S3 server on loopback: a Python process on the
      same 2 cores, which a real store would not take from the renderer.
  S4  shards (--shard-size 100) vs one file per pass, local disk: frames/s and files
      created per 10,000 frames

Usage: python scripts/bench/bench_store.py [--frames 240] [--rounds 2]
"""

from __future__ import annotations

import argparse
import os
import pickle
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid

import psutil
import ray

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
import raycollect as rc  # noqa: E402
from raycollect.output.open import Output  # noqa: E402
from benchlib import print_table  # noqa: E402

SIZE = (640, 480)
OPTIONS = {"key": "bench", "secret": "bench", "client_kwargs": {"region_name": "us-east-1"}}


def _moto() -> tuple[subprocess.Popen, str]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p",
                             str(port)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    for _ in range(300):
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                break
        time.sleep(0.1)
    return proc, f"http://127.0.0.1:{port}"


def run(frames: int, out: str, radius: float, moto: int | None = None, **options) -> dict:
    """frames/s, driver CPU ms per frame, bytes received per frame (the Results as the
    workers sent them, pickled as Ray does), steady state; with `moto`, the S3 server's CPU
    per frame."""
    stamps, cpu, sizes, server = [], [], [], []
    record = Output.record

    def measured(self, q, results):
        if len(sizes) < 200 and results:
            sizes.append(len(pickle.dumps(results)) / len(results))
        return record(self, q, results)

    Output.record = measured
    try:
        return _run(frames, out, radius, moto, stamps, cpu, sizes, server, **options)
    finally:
        Output.record = record


def _run(frames, out, radius, moto, stamps, cpu, sizes, server, **options) -> dict:
    with rc.render(rc.orbit(frames, *SIZE, radius=radius), workers=2, out=out, depth=True,
                   masks=True, progress=False, queue_name=f"bench-store-{time.time()}",
                   **options) as r:
        for _ in r:
            stamps.append(time.perf_counter())
            cpu.append(time.process_time())
            if moto:
                t = psutil.Process(moto).cpu_times()
                server.append(t.user + t.system)
    n = len(stamps) - 1
    return {"fps": n / (stamps[-1] - stamps[0]), "cpu_ms": (cpu[-1] - cpu[0]) / n * 1000,
            "bytes": statistics.mean(sizes),
            "server_ms": (server[-1] - server[0]) / n * 1000 if server else 0.0}


def _files(root: str) -> int:
    return sum(len(f) for _, _, f in os.walk(root))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--frames", type=int, default=240)
    ap.add_argument("--rounds", type=int, default=2)
    args = ap.parse_args()
    proc, endpoint = _moto()
    import boto3

    client = boto3.client("s3", endpoint_url=endpoint, aws_access_key_id="bench",
                          aws_secret_access_key="bench", region_name="us-east-1")
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    store, local, sharded = [], [], []
    files_local = files_sharded = 0
    try:
        for r in range(args.rounds):
            bucket = f"bench-{uuid.uuid4().hex[:8]}"
            client.create_bucket(Bucket=bucket)
            store.append(run(args.frames, f"s3://{bucket}/out", 4.0 + 0.01 * r, moto=proc.pid,
                             endpoint_url=endpoint, storage_options=OPTIONS))
            with tempfile.TemporaryDirectory(prefix="rc-bench-store-") as tmp:
                local.append(run(args.frames, f"{tmp}/files", 4.5 + 0.01 * r))
                sharded.append(run(args.frames, f"{tmp}/shards", 5.0 + 0.01 * r, shard_size=100))
                files_local = _files(f"{tmp}/files")
                files_sharded = _files(f"{tmp}/shards")
            print(f"round {r + 1}: store {store[-1]['fps']:.1f}, local {local[-1]['fps']:.1f}, "
                  f"sharded {sharded[-1]['fps']:.1f} frames/s", flush=True)
    finally:
        ray.shutdown()
        proc.kill()

    def med(runs, key):
        return statistics.median(x[key] for x in runs)

    per10k = 10_000 / args.frames
    rows = [
        ("S1 driver bytes per frame, store", f"{med(store, 'bytes') / 1024:.1f} KiB",
         f"local output: {med(local, 'bytes') / 1024:,.0f} KiB (goal <= 2 KB with a store)"),
        ("S2 driver CPU per frame, store", f"{med(store, 'cpu_ms'):.2f} ms",
         f"local output {med(local, 'cpu_ms'):.2f} ms (goal <= 1 ms)"),
        ("S3 store vs local frames/s", f"{med(store, 'fps') / med(local, 'fps'):.2f}",
         f"{med(store, 'fps'):.1f} / {med(local, 'fps'):.1f} fps, 2 workers, 640x480 "
         f"rgb+depth+masks (goal >= 0.9); the S3 server (moto, on these 2 cores) took "
         f"{med(store, 'server_ms'):.0f} core-ms per frame"),
        ("S4 shards vs files, local", f"{med(sharded, 'fps') / med(local, 'fps'):.2f}",
         f"{med(sharded, 'fps'):.1f} / {med(local, 'fps'):.1f} fps; files per 10,000 frames: "
         f"{files_sharded * per10k:,.0f} sharded (100 a shard) / {files_local * per10k:,.0f}"),
    ]
    print_table(f"raycollect store benchmark: {os.cpu_count()} cores, ray {ray.__version__}, "
                f"{args.frames} frames a run at {SIZE[0]}x{SIZE[1]}, medians of {args.rounds} "
                f"rounds", rows, value_width=10)


if __name__ == "__main__":
    main()
