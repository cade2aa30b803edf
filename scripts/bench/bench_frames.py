#!/usr/bin/env python
"""Frames at the renderer's speed: what every pass, every format and every stage costs.
One table; every figure is measured in this run on this machine.

  H   core-hours per million 640x480 rgb+depth+masks frames: 2 workers, the machine's busy
      CPU time (every process: Chromium, workers, queue, driver, Ray) per frame from the
      first frame to the last, x 1e6 / 3600. Goal <= 20 (issue 28).
  G1  rgb+depth / rgb-only frames/s, 1 worker, at 160x120 and 640x480. Goal >= 0.9.
  G2  rgb+depth+masks / rgb-only frames/s, same. Goal >= 0.85.
  L   end-to-end (rc.render, 1 worker, rgb+depth+masks) / the browser alone (repeated
      grabs of one unchanged view with the same passes, decoded), at each size. Goal >= 0.85
      at both. L2: the browser alone with every pass / with RGB only, the G2 that the
      browser itself allows.
  T   the way out of the page: the browser alone, rgb+depth+masks, frames POSTed to the
      worker's server / sent through the websocket, at each size whose frames are POSTed
      (from 256 KiB; smaller ones always take the websocket).
  B   bytes a pixel the page sends, per pass combination (the payload, header included).
  S   where a frame's time goes on a worker, per stage (raycollect/metrics.py STAGES), in
      the last round's rgb-only and rgb+depth+masks runs at each size (steady state). The
      stages overlap (the page draws the next view while the worker encodes this one), so
      they add up to more than a frame's time.
  E   what encoding a real 640x480 demo frame costs on this process, per format, against
      the bytes it writes (the worker encodes on the cores the browser renders with).
  V   frames/s at 4, 8 and 14 views per scene update (640x480, all passes, 1 worker) and the
      per-update cost they imply.

Rates are steady-state (first frame to last); G, L and V are medians of alternating rounds.

Every row prints its goal beside it, and "met" or "MISSED".

Usage: python scripts/bench/bench_frames.py [--rounds 3] [--frames 140] [--headline-frames 400]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import time
from io import BytesIO

import numpy as np
import psutil
import ray

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
import raycollect as rc  # noqa: E402
from raycollect import camera, constants as C, scene as scenes  # noqa: E402
from raycollect.render import capture  # noqa: E402
from raycollect.output import files  # noqa: E402
from raycollect.render import stage as stages  # noqa: E402
from raycollect.browser import chromium_version, find_chromium  # noqa: E402
from raycollect.metrics import STAGES  # noqa: E402
from raycollect.render.server import LockedVuer  # noqa: E402
from benchlib import bare_page, print_table  # noqa: E402

SIZES = ((160, 120), (640, 480))
PASSES = {"rgb": {}, "rgb+depth": {"depth": True}, "rgb+depth+masks": {"depth": True, "masks": True}}
ENCODE_REPEATS = 30


def run(size, frames: int, workers: int = 1, k: int = C.VIEWS_PER_UPDATE, radius: float = 4.0,
        cpu: bool = False, **passes):
    """(steady-state frames/s, steady-state stage ms per frame, busy core-seconds per
    frame). Stages are the workers' clocks between their state after the first update
    (page load and shader compiles left out, as from every rate) and the end."""
    stamps, busy = [], []
    first: dict = {}
    last: dict = {}
    with rc.render(rc.orbit(frames, *size, radius=radius), workers=workers, views_per_update=k,
                   progress=False, queue_name=f"bench-frames-{time.time()}", **passes) as r:
        for _ in r:
            stamps.append(time.perf_counter())
            if cpu:
                busy.append(_busy())
            if len(stamps) == 1:
                first = _clocks(r)
            if len(stamps) == frames:  # before the run ends and its workers stop
                last = _clocks(r)
    fps = (len(stamps) - 1) / (stamps[-1] - stamps[0])
    per_frame = (busy[-1] - busy[0]) / (len(busy) - 1) if cpu else None
    frames_done = sum(last[w]["frames"] - first.get(w, {}).get("frames", 0) for w in last)
    stages = {s: 1000 * sum(last[w]["stages_s"][s] - first.get(w, {}).get("stages_s", {}).get(s, 0.0)
                            for w in last) / max(frames_done, 1) for s in STAGES}
    modes: dict = {}
    for w in last.values():
        for m, n in w.get("pass_modes", {}).items():
            modes[m] = modes.get(m, 0) + n
    return fps, {"ms": stages, "modes": modes}, per_frame


def _clocks(r: rc.Run) -> dict:
    """Each render worker's counters now (raycollect/render/worker.py)."""
    return {m.id: ray.get(m.actor.status.remote()) for m in list(r.pool.members.values())}


def _busy() -> float:
    """Seconds of CPU the whole machine has spent busy (all cores, every process)."""
    t = psutil.cpu_times()
    return sum(getattr(t, f) for f in ("user", "nice", "system", "irq", "softirq", "steal")
               if hasattr(t, f))


# --- L: the browser alone ------------------------------------------------------------------
async def _browser_alone(size, passes: tuple, grabs: int, uploads: bool = True) -> tuple:
    """(frames/s, bytes a pixel) of repeated grabs of one unchanged view of the demo scene
    with `passes`, each decoded: what one browser page gives with nothing else in the way."""
    async with bare_page(passes, uploads=uploads) as (session, grab):
        stage = stages.Stage(1)
        cam = camera.validate("0", rc.orbit(1, *size)[0])
        groups = stages.instance_groups(scenes.demo_scene({}), list(range(1, 9)))
        session.set @ stage.full_scene("demo", stages.Optics.of(cam), groups,
                                       [np.asarray(cam["matrix"])])

        while True:  # the scene is on the page once the marker shows its revision
            try:
                marker = capture.decode((await grab(stage.marker_view_key))["frame"])
                if stages.marker_revision_matches(marker.rgb, stage.revision):
                    break
            except asyncio.TimeoutError:
                pass
        for _ in range(3):
            capture.decode((await grab(stage.view_key(0)))["frame"], far=cam["far"])
        t0 = time.perf_counter()
        for _ in range(grabs):
            frame = (await grab(stage.view_key(0)))["frame"]
            capture.decode(frame, far=cam["far"])
        return grabs / (time.perf_counter() - t0), len(frame) / (size[0] * size[1])


# --- E: encoding ---------------------------------------------------------------------------
def encode_rows(frame: rc.Result) -> list[tuple[str, str, str]]:
    def cost(fn) -> tuple[float, int]:
        data = fn()
        t0 = time.perf_counter()
        for _ in range(ENCODE_REPEATS):
            fn()
        return (time.perf_counter() - t0) / ENCODE_REPEATS * 1000, len(data)

    rows = []
    for fmt, (_, what) in C.IMAGE_FORMATS.items():
        ms, n = cost(lambda: files.encode_image(frame.image, fmt))
        assert np.array_equal(files.decode("image", files.encode_image(frame.image, fmt)), frame.image)
        rows.append((f"E  rgb {fmt}", f"{ms:.2f} ms", f"{n / 1024:,.0f} KiB{'  (default)' if fmt == 'png' else ''}"))
    from PIL import Image

    for level in (1, 6):
        def pil(level=level):
            buf = BytesIO()
            Image.fromarray(frame.image).save(buf, format="PNG", compress_level=level)
            return buf.getvalue()
        ms, n = cost(pil)
        rows.append((f"E  rgb PIL PNG level {level}", f"{ms:.2f} ms", f"{n / 1024:,.0f} KiB  (before: level 1 was the default)"))
    ms, n = cost(lambda: files.encode_depth(frame.depth))
    rows.append(("E  depth npy", f"{ms:.2f} ms", f"{n / 1024:,.0f} KiB  (default, float32)"))

    def npz():
        buf = BytesIO()
        np.savez_compressed(buf, depth=frame.depth)
        return buf.getvalue()
    ms, n = cost(npz)
    rows.append(("E  depth npz (compressed)", f"{ms:.2f} ms", f"{n / 1024:,.0f} KiB  (not offered: see README)"))
    ms, n = cost(lambda: files.encode_mask(frame.mask))
    rows.append(("E  mask png (16-bit)", f"{ms:.2f} ms", f"{n / 1024:,.0f} KiB  (default)"))
    return rows


def _goal(value: float, goal: float, low: bool = False) -> str:
    met = value <= goal if low else value >= goal
    return f"(goal {'<=' if low else '>='} {goal}: {'met' if met else 'MISSED'})"


def _stage_row(tag: str, seen: dict) -> tuple[str, str, str]:
    per = seen["ms"]
    busy = {s: v for s, v in per.items() if s not in ("driver", "queue")}
    limit = max(busy, key=busy.get)
    return (f"S  stages {tag}", f"{sum(busy.values()):.1f} ms",
            "per frame: " + ", ".join(f"{s} {v:.1f}" for s, v in per.items())
            + f"; most: {limit}; page mode {seen['modes']}")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--frames", type=int, default=140, help="frames per G/L/V run")
    ap.add_argument("--headline-frames", type=int, default=400)
    ap.add_argument("--grabs", type=int, default=60, help="grabs per browser-alone run")
    args = ap.parse_args()
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    fps = {(s, p): [] for s in SIZES for p in PASSES}
    alone = {s: [] for s in SIZES}
    alone_rgb = {s: [] for s in SIZES}
    alone_ws = {s: [] for s in SIZES}
    bpp = {}
    views = {k: [] for k in (4, 8)}
    stages_seen = {}
    for r in range(args.rounds):
        for size in SIZES:
            n = args.frames if size[0] > 200 else 3 * args.frames
            for i, (name, passes) in enumerate(PASSES.items()):
                f, seen, _ = run(size, n, radius=4.0 + 0.01 * r + 0.1 * i, **passes)
                fps[(size, name)].append(f)
                stages_seen[(size, name)] = seen
            f, bpp[(size, "rgb+depth+masks")] = asyncio.run(_browser_alone(size, ("depth", "mask"), args.grabs))
            alone[size].append(f)
            f, bpp[(size, "rgb")] = asyncio.run(_browser_alone(size, (), args.grabs))
            alone_rgb[size].append(f)
            alone_ws[size].append(asyncio.run(_browser_alone(size, ("depth", "mask"), args.grabs,
                                                             uploads=False))[0])
            if r == 0:
                bpp[(size, "rgb+depth")] = asyncio.run(_browser_alone(size, ("depth",), 3))[1]
        for k in views:
            views[k].append(run(SIZES[1], args.frames, k=k, radius=5.0 + 0.01 * r,
                                depth=True, masks=True)[0])
        print(f"round {r + 1}: " + ", ".join(
            f"{s[0]}x{s[1]} {p} {fps[(s, p)][-1]:.1f}" for s in SIZES for p in PASSES)
            + ", browser alone " + ", ".join(f"{s[0]}x{s[1]} {alone[s][-1]:.1f} (rgb {alone_rgb[s][-1]:.1f}, "
                                             f"websocket {alone_ws[s][-1]:.1f})" for s in SIZES)
            + ", views " + ", ".join(f"{k}: {v[-1]:.1f}" for k, v in views.items())
            + " frames/s", flush=True)
    med = {key: statistics.median(v) for key, v in fps.items()}
    rows = []
    for size in SIZES:
        tag = f"{size[0]}x{size[1]}"
        rgb = med[(size, "rgb")]
        for g, name, goal in (("G1", "rgb+depth", 0.9), ("G2", "rgb+depth+masks", 0.85)):
            x = med[(size, name)] / rgb
            rows.append((f"{g} {name} vs rgb {tag}", f"{x:.2f}",
                         f"{med[(size, name)]:.1f} fps / {rgb:.1f} fps, 1 worker {_goal(x, goal)}"))
        a, a_rgb = statistics.median(alone[size]), statistics.median(alone_rgb[size])
        x = med[(size, "rgb+depth+masks")] / a
        rows.append((f"L  end-to-end vs browser {tag}", f"{x:.2f}",
                     f"{med[(size, 'rgb+depth+masks')]:.1f} fps rc.render / {a:.1f} fps repeated "
                     f"grabs, rgb+depth+masks {_goal(x, 0.85)}"))
        rows.append((f"L2 browser alone, all vs rgb {tag}", f"{a / a_rgb:.2f}",
                     f"{a:.1f} fps rgb+depth+masks / {a_rgb:.1f} fps rgb: the G2 the browser "
                     f"itself allows"))
        ws = statistics.median(alone_ws[size])
        if bpp[(size, "rgb+depth+masks")] * size[0] * size[1] >= LockedVuer.upload_min_bytes:
            rows.append((f"T  POST vs websocket {tag}", f"{a / ws:.2f}",
                         f"{a:.1f} fps frames POSTed / {ws:.1f} fps through the websocket, the "
                         f"browser alone, rgb+depth+masks, one grab at a time"))
        rows.append((f"B  bytes a pixel {tag}", f"{bpp[(size, 'rgb+depth+masks')]:.2f}",
                     ", ".join(f"{p} {bpp[(size, p)]:.2f}" for p in PASSES)
                     + " (the page's payload; before issue 28: 3, 6, 9)"))
        for name in ("rgb", "rgb+depth+masks"):
            rows.append(_stage_row(f"{tag} {name}", stages_seen[(size, name)]))
    v = {k: statistics.median(x) for k, x in views.items()}
    v[C.VIEWS_PER_UPDATE] = med[(SIZES[1], "rgb+depth+masks")]
    # Frame time t(k) = a + b / k: a per frame, b per update. Fitted on k = 4 and 14.
    t4, t14 = 1 / v[4], 1 / v[C.VIEWS_PER_UPDATE]
    b = (t4 - t14) / (1 / 4 - 1 / C.VIEWS_PER_UPDATE)
    a = t14 - b / C.VIEWS_PER_UPDATE
    proj = {k: 1 / (a + b / k) for k in (32, 64)}
    rows.append(("V  views per update 640x480", f"{v[C.VIEWS_PER_UPDATE]:.1f} fps",
                 ", ".join(f"{k}: {x:.1f}" for k, x in sorted(v.items())) +
                 f" fps; per update {b * 1000:.0f} ms, per frame {a * 1000:.0f} ms: 32 views "
                 f"would give {proj[32]:.1f}, 64 {proj[64]:.1f} fps"))
    # The headline, and E on a frame from that run.
    fps2, _, core_s = run(SIZES[1], args.headline_frames, workers=2, cpu=True,
                                  depth=True, masks=True)
    rows.append(("H  core-hours per 1M frames", f"{core_s * 1e6 / 3600:.1f}",
                 f"640x480 rgb+depth+masks, 2 workers at {fps2:.1f} fps, {core_s * 1000:.0f} "
                 f"core-ms per frame of {psutil.cpu_count()} cores "
                 f"{_goal(round(core_s * 1e6 / 3600, 1), 20, low=True)}"))
    with rc.render(rc.orbit(1, *SIZES[1]), workers=1, depth=True, masks=True, progress=False,
                   queue_name=f"bench-frames-e-{time.time()}") as r:
        frame = next(iter(r))
    rows += encode_rows(frame)
    ray.shutdown()
    print_table(f"raycollect frames benchmark: {os.cpu_count()} cores, "
                f"{chromium_version(find_chromium())}, ray {ray.__version__}, demo scene, "
                f"{C.VIEWS_PER_UPDATE} views per update", rows)


if __name__ == "__main__":
    main()
