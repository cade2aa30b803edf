#!/usr/bin/env python
"""The driver's recording path alone: frames already encoded (as workers send them) fed
through what the driver does per frame (stage under a temporary name, complete the leases
in one queue call per batch, rename, append the manifest line), with a real queue actor and
its journal, no browser. Prints frames/s and the driver's own CPU per frame.

Targets (issue: the driver never limits a cluster): >= 1,000 frames/s at 640x480 from one
driver; <= 1 ms of driver CPU per recorded frame.

Usage: python scripts/bench/bench_record.py [--frames 5000] [--size 640x480]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time

import numpy as np
import ray

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
import raycollect as rc  # noqa: E402
from raycollect.camera import DEFAULT_FAR, DEFAULT_NEAR  # noqa: E402
from raycollect.driver import RECORD_BATCH  # noqa: E402
from raycollect.queue import MAX_LEASE_BATCH  # noqa: E402
from raycollect.output import files  # noqa: E402
from raycollect.output.open import Output  # noqa: E402
from raycollect.output.writer import OutputWriter  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--frames", type=int, default=5000)
    ap.add_argument("--size", default="640x480")
    args = ap.parse_args()
    w, h = (int(v) for v in args.size.split("x"))
    # A frame like a render: gradients with a little noise (shading, textures), so the PNG is
    # as large as a real frame's (a few hundred KiB at 640x480), not a trivially small one.
    y, x = np.mgrid[0:h, 0:w]
    image = np.stack([(x * 255 // w), (y * 255 // h), ((x + y) % 256)], -1)
    noise = np.random.default_rng(0).integers(0, 4, image.shape)
    image = np.clip(image + noise, 0, 255).astype(np.uint8)
    png = files.encode_image(image)
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    with tempfile.TemporaryDirectory(prefix="rc-bench-record-") as out:
        writer = OutputWriter(out)
        q = rc.JobQueue.create(name="bench-record", lease_ttl=600, journal=str(writer.journal_path))
        cam = rc.orbit(1, w, h)[0]["camera"]
        record = {"matrix": cam["matrix"], "K": rc.intrinsics(50, w, h).tolist(), "width": w,
                  "height": h, "fov": 50.0, "near": DEFAULT_NEAR, "far": DEFAULT_FAR}
        q.submit([{"i": i, "camera": cam} for i in range(args.frames)])
        leases = []
        while len(leases) < args.frames:
            leases += q.lease("bench", MAX_LEASE_BATCH)
        frames = [rc.Result(lease.job_id, lease.params, camera=record, worker="bench",
                            attempt=lease.attempt, timings={}, node="node", files={"image": png},
                            lease=lease) for lease in leases]
        output = Output(writer, None, writer.journal_path)
        cpu0, t0 = time.process_time(), time.perf_counter()
        recorded = 0
        for i in range(0, len(frames), RECORD_BATCH):
            recorded += len(output.record(q, frames[i:i + RECORD_BATCH])[0])
        wall, cpu = time.perf_counter() - t0, time.process_time() - cpu0
        writer.close()
        q.kill()
    fps = recorded / wall
    print(f"raycollect record-path benchmark: {recorded} pre-encoded {w}x{h} frames "
          f"({len(png) / 1024:.0f} KiB PNG each), real queue actor with journal, batches of "
          f"{RECORD_BATCH}")
    print(f"  frames/s recorded       {fps:,.0f}  (target >= 1,000)")
    print(f"  driver CPU per frame    {cpu / recorded * 1000:.2f} ms  (target <= 1 ms)")


if __name__ == "__main__":
    main()
