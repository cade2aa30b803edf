"""A grab's payload made into a job's Result: decoded (raycollect/render/capture.py), checked
against the view it should show, labelled (raycollect/render/ids.py) and encoded into the
job's files, which go where the run's output wants them (raycollect/render/sink.py)."""

from __future__ import annotations

import asyncio
import time
from collections import deque
from concurrent.futures import Executor
from typing import Awaitable, Callable

from .. import camera
from ..config import Config
from ..errors import RenderError
from ..jobs import Lease
from ..metrics import StageClock
from ..output import files
from ..result import Result
from . import capture
from .ids import SceneIds

# Grabs of an update's views asked for ahead of the one being taken (grab_all).
GRAB_AHEAD = 2


def make_result(lease: Lease, cam: dict, value: dict, view: int, *, ids: SceneIds | None,
                config: Config, clock: StageClock, sink, timings: dict, worker: str,
                node: str) -> Result:
    d0 = time.perf_counter()
    cap = capture.decode(value["frame"], far=cam["far"])
    page_s = cap.page_ms / 1000.0
    clock.add("page", page_s)
    clock.add("transfer", max(0.0, timings["grab_s"] - page_s))
    clock.mode(cap.page.get("mode"), cap.page.get("why"))
    if cap.state != view:  # the page set another job's joints for this view
        raise RenderError(f"job {lease.job_id}: view {view} showed the state of job "
                          f"{cap.state} of its update")
    if (cap.height, cap.width) != (cam["height"], cam["width"]):
        raise RenderError(f"job {lease.job_id}: browser returned {cap.width}x{cap.height}, "
                          f"asked for {cam['width']}x{cam['height']}")
    objects, classes = None, None
    arrays = {"depth": cap.depth, "mask": cap.mask, "normals": cap.normals, "coords": cap.coords}
    if config.masks:
        objects, classes = ids.label(cap, config, lease.job_id, arrays)
    e0 = time.perf_counter()
    clock.add("decode", e0 - d0)
    out = {"image": files.encode_image(cap.rgb, config.image_format)}
    for kind, on in (("depth", config.depth), ("mask", config.masks),
                     ("semantic", config.semantic), ("amodal", config.amodal),
                     ("normals", config.normals), ("coords", config.coords)):
        if not on:
            continue
        if arrays.get(kind) is None:
            raise RenderError(f"job {lease.job_id}: the page returned no {kind} pass")
        out[kind] = files.encode(kind, arrays[kind], config)
    clock.add("encode", time.perf_counter() - e0)
    out, keys = sink.put(lease, out)
    # The job's params travel once, in its lease: the driver puts them back (they hold the
    # camera, and a frame's bytes to the driver are what a cluster's driver pays).
    return Result(lease.job_id, {}, camera=camera.camera_record(cam), worker=worker,
                  attempt=lease.attempt, timings=timings, node=node,
                  instances=ids.instances if config.masks else None, objects=objects,
                  classes=classes, files=out, keys=keys, lease=lease)


async def grab_all(grab: Callable[[int], Awaitable[dict]],
                   build: Callable[[Lease, dict, dict, int, dict], Result],
                   good: list, settle_s: float, encoder: Executor) -> list[Result]:
    """Grab every view of an update (`good`: its leases and cameras), in order, and build
    each one's Result. The next GRAB_AHEAD grabs are always asked for, so the page finds
    the next one waiting when it has answered one (the time an answer takes to reach the
    worker and a request to reach the page is not the page's idle time), and it draws them
    while `build` decodes and encodes view i in the encoder's thread, off the event loop
    that carries the page's answers: the browser's render and the worker's encode overlap
    instead of taking turns on the same cores."""
    loop = asyncio.get_running_loop()

    async def timed(i: int) -> tuple[dict, float, float]:
        g0 = time.perf_counter()
        value = await grab(i)
        return value, g0, time.perf_counter()

    frames: list[Result] = []
    pending: deque = deque()
    asked = 0

    def ask() -> None:
        nonlocal asked
        while asked < len(good) and len(pending) < GRAB_AHEAD:
            pending.append(asyncio.ensure_future(timed(asked)))
            asked += 1

    last_done = 0.0
    try:
        ask()
        await asyncio.sleep(0)  # the requests go out first
        for i, (lease, cam) in enumerate(good):
            value, g0, done = await pending.popleft()
            ask()
            await asyncio.sleep(0)  # the next grab's request goes out first
            # The grab's own time: from when the page could start it (it was asked for, and
            # the page had answered the grab before it) to its answer.
            grab_s = done - max(g0, last_done)
            last_done = done
            e0 = time.perf_counter()
            timings = {"settle_s": settle_s, "grab_s": grab_s, "batch": len(good)}
            frame = await loop.run_in_executor(encoder, build, lease, cam, value, i, timings)
            frame.timings["encode_s"] = time.perf_counter() - e0
            frames.append(frame)
    finally:
        for task in pending:
            if not task.done():
                task.cancel()
            elif not task.cancelled():
                task.exception()  # a failed look-ahead grab is the batch's failure, not a leak
    return frames
