"""RenderWorker: an async Ray actor that hosts one locked-down Vuer server and renders the
queue's jobs through the one browser page attached to it.

Per batch: lease (prefetched, so the actor round trip hides behind rendering) -> send the
scene or only the moved cameras, with the revision marker -> wait until the page shows that
revision -> grab each view (raw pixels and the extra passes, raycollect/capture.py) -> encode
the files -> yield them to the driver. Yielded items of a
streaming generator are owned by the caller, so frames survive this actor's death. The driver
completes each lease once the frame is recorded; this worker never marks a job done.
"""

from __future__ import annotations

import asyncio
import logging
import os
import sys
import time
import traceback
from collections import deque
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import ray
from vuer.events import GrabRender

from . import assets as asset_folder, camera, capture, constants as C, files, scene as scenes
from . import stage as stages
from .browser import undo_ray_niceness
from .config import Config
from .errors import (BrokenModel, InvalidJob, ModelLoadError, NoBrowser, QueueUnavailable,
                     RaycollectError, RenderError, disposition)
from .jobs import Lease
from .queue import JobQueue
from .server import LockedVuer, free_port

log = logging.getLogger(__name__)


class SessionLost(Exception):
    """The browser page went away while a batch was on it (internal to the worker)."""


@dataclass
class Frame:
    """One rendered job on its way to the driver, with the lease the driver completes.
    `files` holds the encoded files by kind ("image", "depth", "mask"; raycollect/files.py)."""

    lease: Lease
    files: dict
    camera: dict
    worker: str
    timings: dict = field(default_factory=dict)
    node: str = ""
    instances: dict | None = None

    @property
    def nbytes(self) -> int:
        return sum(len(b) for b in self.files.values())


class _RenderWorker:
    """Private: the driver's pool (or your own code) creates it with `RenderWorker.remote`."""

    def __init__(self, queue: JobQueue, worker_id: str, scene: Any = None,
                 config: Config | None = None):
        # Vuer prints every connection to stdout; keep the driver's console for our logs.
        sys.stdout = open(os.devnull, "w")
        undo_ray_niceness()
        logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
        self.queue, self.id = queue, worker_id
        self.scene = scenes.load_scene(scene)
        self.opt = config or Config()
        self.stage = stages.Stage(self.opt.views_per_update)
        self.server: LockedVuer | None = None
        self.session = None
        self.sessions = 0
        self.frames = 0
        self.info: dict = {}
        self._held: dict[str, Lease] = {}  # leases in hand, heartbeated until handed off
        # Leases in hand with their batch key, computed once per lease (it serialises params).
        self._buffer: deque[tuple[Lease, tuple]] = deque()
        self._prefetch: asyncio.Task | None = None
        self._stopping = False
        self._ttl = C.DEFAULT_LEASE_TTL
        self._lost = asyncio.Event()
        self._instances: dict | None = None  # key -> instance id of the scene on the page
        self._assets_root = None
        # The page's running totals of failed loads and uncaught errors, as last seen: what
        # happens after a scene is sent is that scene's.
        self._seen_failures = (0, 0)

    # --- setup -------------------------------------------------------------------------
    async def start(self) -> dict:
        port = free_port()
        ctx = ray.get_runtime_context()
        if self.opt.assets is not None:
            self._assets_root = await asset_folder.materialize(
                self.opt.assets, f"{ray.util.get_node_ip_address()} ({ctx.get_node_id()[:8]})")
        self.server = LockedVuer(host=C.LOOPBACK, port=port, cors=f"http://{C.LOOPBACK}:{port}")
        self.server.assets_root = self._assets_root
        self.server.passes = self.opt.passes
        self.server.spawn(self._on_session)
        await self.server.serve()
        self.info = {"url": self.server.url, "port": port, "pid": os.getpid(),
                     "node_ip": ray.util.get_node_ip_address(), "node_id": ctx.get_node_id(),
                     "frames": 0}
        await self.queue.aregister_worker(self.id, self.info)
        log.info("worker %s serving %s", self.id, self.server.url)
        return self.info

    async def _on_session(self, session) -> None:
        self.session = session
        self._lost = asyncio.Event()
        self.sessions += 1
        self.stage.reset()
        log.info("worker %s: browser session %d attached", self.id, self.sessions)
        try:
            await asyncio.Event().wait()  # vuer closes the socket when this returns
        finally:
            if self.session is session:
                self.session = None
                self._lost.set()

    async def status(self) -> dict:
        return {**self.info, "frames": self.frames, "sessions": self.sessions,
                "session": self.session is not None, "held": len(self._held),
                "refused_sessions": self.server.refused_sessions if self.server else 0,
                "asset_requests": self.server.asset_requests if self.server else 0}

    async def stop(self) -> None:
        """Finish the batch in hand, give back the prefetched leases, stop serving."""
        self._stopping = True

    # --- the render loop ---------------------------------------------------------------
    async def run(self):
        """Streaming generator of lists of Frames (one list per batch) until stop()."""
        self._ttl = float((await self.queue.astats())["lease_ttl"])
        loop = asyncio.get_running_loop()
        heartbeat = loop.create_task(self._heartbeat())
        announce = loop.create_task(self._announce())
        idle = C.IDLE_POLL_MIN
        try:
            while not self._stopping:
                session = await self._wait_session()
                batch, skey = await self._next_batch()
                if not batch:
                    await asyncio.sleep(idle)
                    idle = min(idle * 2, C.IDLE_POLL_MAX)
                    continue
                idle = C.IDLE_POLL_MIN
                frames = await self._render_batch(session, batch, skey)
                # The leases stay held, and heartbeated, after the yield: the driver may keep
                # the frames a while (a slow caller) before it records them and completes
                # the leases; the heartbeat lets each go once the queue says it has ended.
                if frames:
                    # One object per batch: serialising and sending is paid once per update.
                    yield frames
                self.frames += len(batch)
        finally:
            heartbeat.cancel()
            announce.cancel()
            await self._give_back()

    async def _wait_session(self):
        if self.session is not None:
            return self.session
        deadline = time.monotonic() + self.opt.session_timeout
        while self.session is None:
            if self._stopping:
                raise asyncio.CancelledError()
            left = deadline - time.monotonic()
            if left <= 0:
                raise NoBrowser(
                    f"worker {self.id}: no browser attached to {self.server.url} within "
                    f"{self.opt.session_timeout:.0f} s; run `raycollect browsers` on node "
                    f"{self.info.get('node_ip')} or open that URL in headless Chromium there")
            self.server.session_changed.clear()
            try:
                await asyncio.wait_for(self.server.session_changed.wait(), min(left, 1.0))
            except asyncio.TimeoutError:
                pass
            await asyncio.sleep(0)  # let the spawn handler set self.session
        return self.session

    async def _next_batch(self) -> tuple[list[Lease], str | None]:
        """The next batch and its scene key."""
        k = self.opt.views_per_update
        if len(self._buffer) < k * (1 + C.PREFETCH_BATCHES) and self._prefetch is None:
            want = k * (1 + C.PREFETCH_BATCHES) - len(self._buffer)
            self._prefetch = asyncio.get_running_loop().create_task(self.queue.alease(self.id, want))
        if self._prefetch is not None and (not self._buffer or self._prefetch.done()):
            task, self._prefetch = self._prefetch, None
            for lease in await task:
                self._buffer.append((lease, _batch_key(lease)))
                self._held[lease.job_id] = lease
        if not self._buffer:
            return [], None
        # A batch is consecutive leases that share the scene and optics of the first one.
        first, key = self._buffer.popleft()
        batch = [first]
        while self._buffer and len(batch) < k and self._buffer[0][1] == key:
            batch.append(self._buffer.popleft()[0])
        return batch, key[0]

    async def _render_batch(self, session, batch: list[Lease], skey: str) -> list[Frame]:
        t0 = time.perf_counter()
        good: list[tuple[Lease, dict]] = []
        for lease in batch:
            try:
                good.append((lease, camera.validate(lease.job_id, lease.params)))
            except InvalidJob as e:  # deterministic: a retry cannot help
                await self._fail([lease], str(e), "final")
        if not good:
            return []
        leases = [l for l, _ in good]
        cams = [c for _, c in good]
        optics = stages.Optics.of(cams[0])
        matrices = [np.asarray(c["matrix"]) for c in cams]
        try:
            if self.stage.needs_scene(skey, optics, len(good)):
                elements = scenes.build(self.scene, leases[0].job_id, leases[0].params)
                asset_folder.check_sources(leases[0].job_id, elements, self._assets_root)
                keys = [str(el.key) for el in elements]
                ids = [0] * len(keys)
                if self.opt.masks:
                    ids = await self.queue.ainstance_ids(keys)
                self._instances = dict(zip(keys, ids))
                models = [k for k, el in zip(keys, elements) if asset_folder.is_model(el)]
                baseline = self._seen_failures
                session.set @ self.stage.full_scene(skey, optics,
                                                    stages.instance_groups(elements, ids), matrices)
                await self._settle(session)
                if models:
                    await self._wait_models(session, models, elements, baseline)
                # Effects that React runs after paint (some props are applied there) are
                # flushed before it renders the next update: a second revision proves it.
                session.update @ self.stage.marker_update()
            else:
                session.update @ self.stage.camera_update(matrices)
            await self._settle(session)
            t1 = time.perf_counter()
            frames = []
            for i, (lease, cam) in enumerate(good):
                g0 = time.perf_counter()
                value = await self._grab(session, self.stage.view_key(i))
                g1 = time.perf_counter()
                frames.append(self._frame(lease, cam, value, {
                    "settle_s": t1 - t0, "grab_s": g1 - g0, "batch": len(good)}))
                frames[-1].timings["encode_s"] = time.perf_counter() - g1
            return frames
        except SessionLost:
            self.stage.reset()
            await self._fail(leases, f"browser disconnected from worker {self.id}", "retry")
        except asyncio.TimeoutError as e:
            self.stage.reset()  # the page is in an unknown state: resend everything
            await self._fail(leases, f"render failed on worker {self.id}: grab timed out {e!r}",
                             "retry")
        except RaycollectError as e:
            mode = disposition(e)
            if mode == "abort":
                raise
            self.stage.reset()  # the page is in an unknown state: resend everything
            trace = f"\n{traceback.format_exc()}" if mode == "retry" else ""
            await self._fail(leases, f"{e} (worker {self.id}){trace}", mode)
        return []

    def _frame(self, lease: Lease, cam: dict, value: dict, timings: dict) -> Frame:
        """Decode a grab's payload, check it, and encode the job's files."""
        cap = capture.decode(value["frame"], far=cam["far"])
        if (cap.height, cap.width) != (cam["height"], cam["width"]):
            raise RenderError(f"job {lease.job_id}: browser returned {cap.width}x{cap.height}, "
                              f"asked for {cam['width']}x{cam['height']}")
        out = {"image": files.encode_image(cap.rgb)}
        for kind, on, array, encode in (("depth", self.opt.depth, cap.depth, files.encode_depth),
                                        ("mask", self.opt.masks, cap.mask, files.encode_mask)):
            if not on:
                continue
            if array is None:
                raise RenderError(f"job {lease.job_id}: the page returned no {kind} pass")
            out[kind] = encode(array)
        return Frame(lease, out, camera.camera_record(cam), self.id, timings,
                     self.info["node_id"], self._instances if self.opt.masks else None)

    async def _wait_models(self, session, models: list[str], elements: list,
                           baseline: tuple[int, int]) -> None:
        """Poll the page until every model of the scene just sent holds drawable geometry,
        no load from the assets folder is in flight and no texture lacks its image. A load
        that fails, or an error thrown while models load, fails the job at once with what
        the page said; a model still empty after `model_timeout` fails it too. The caller
        then sends one more revision, so the models' own commits are on the page before
        any view is grabbed."""
        failures0, errors0 = baseline
        deadline = time.monotonic() + self.opt.model_timeout
        srcs = {str(el.key): asset_folder.sources(el) for el in elements}
        while True:
            session.update @ self.stage.marker_update()
            st = await self._settle(session)
            if st["load_failures"] > failures0:
                raise BrokenModel(f"a model file failed to load: "
                                     f"{'; '.join(st['failed'][-(st['load_failures'] - failures0):])}")
            empty = [k for k in models if not st.get("models", {}).get(k)]
            if empty and st["errors"] > errors0:
                raise BrokenModel(f"model(s) {_named(empty, srcs)} did not load: "
                                     f"{'; '.join(st['error_texts'][-(st['errors'] - errors0):])}")
            if not empty and st["loads_pending"] == 0 and st.get("textures_pending", 0) == 0:
                return
            if time.monotonic() > deadline:
                raise ModelLoadError(
                    f"model(s) {_named(empty or models, srcs)} not loaded within "
                    f"{self.opt.model_timeout:.0f} s ({st['loads_pending']} loads in flight, "
                    f"{st.get('textures_pending', 0)} textures without an image)")
            await asyncio.sleep(C.MODEL_POLL_PERIOD)

    async def _settle(self, session) -> dict:
        """Poll the marker view until it shows the stage's current revision; returns the
        page's status from that grab (raycollect/capture.py)."""
        if not self.opt.barrier:
            return {}
        deadline = time.monotonic() + self.opt.settle_timeout
        ttl = C.SETTLE_GRAB_TTL
        while True:
            try:
                value = await self._grab(session, self.stage.marker_view_key, ttl)
                cap = capture.decode(value["frame"])
                if stages.marker_revision_matches(cap.rgb, self.stage.revision):
                    self._seen_failures = (cap.status.get("load_failures", 0),
                                           cap.status.get("errors", 0))
                    return cap.status
            except asyncio.TimeoutError:
                ttl = min(ttl * 2, 2.0)  # a newly mounted view subscribes after paint
            if time.monotonic() > deadline:
                raise RenderError(f"the page did not show revision {self.stage.revision} "
                                  f"within {self.opt.settle_timeout:.0f} s")

    async def _grab(self, session, key: str, ttl: float | None = None) -> dict:
        """One grab, raced against the session going away."""
        if self.session is not session:
            raise SessionLost()
        ttl = ttl or self.opt.grab_ttl
        # Through the session's ordered queue (vuer's grab_render bypasses it), so a grab can
        # never overtake the update sent before it.
        grab = asyncio.ensure_future(session.rpc(GrabRender(key=key), ttl=ttl))
        lost = asyncio.ensure_future(self._lost.wait())
        try:
            done, _ = await asyncio.wait({grab, lost}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            lost.cancel()
        if grab not in done:
            grab.cancel()
            raise SessionLost()
        try:
            return grab.result().value
        except (KeyError, ConnectionError, RuntimeError) as e:  # the socket closed under us
            raise SessionLost() from e

    # --- leases ------------------------------------------------------------------------
    async def _fail(self, leases: list[Lease], error: str, mode: str) -> None:
        for lease in leases:
            self._held.pop(lease.job_id, None)
        log.warning("worker %s: %d job(s) %s: %s", self.id, len(leases),
                    "failed" if mode == "final" else "to retry", error.splitlines()[0])
        try:
            await self.queue.afail_many(leases, [error] * len(leases), mode)
        except QueueUnavailable as e:
            log.warning("worker %s: cannot report failures (%s); the leases will expire", self.id, e)

    async def _heartbeat(self) -> None:
        while True:
            await asyncio.sleep(self._ttl * C.HEARTBEAT_FRACTION)
            leases = list(self._held.values())
            if not leases:
                continue
            try:
                ok = await self.queue.aextend_many(leases)
            except QueueUnavailable as e:
                log.warning("worker %s: heartbeat failed: %s", self.id, e)
                continue
            for lease, alive in zip(leases, ok):
                if not alive:  # expired or taken over: whatever we render for it is refused
                    self._held.pop(lease.job_id, None)

    async def _announce(self) -> None:
        """Keep this worker's registry entry fresh: a restarted queue starts with an empty
        registry, and browser managers read the frame count to recycle browsers."""
        while True:
            await asyncio.sleep(C.REGISTRY_REFRESH_PERIOD)
            self.info["frames"] = self.frames
            self.info["asset_requests"] = self.server.asset_requests
            try:
                await self.queue.aregister_worker(self.id, self.info)
            except QueueUnavailable as e:
                log.warning("worker %s: cannot refresh its registry entry: %s", self.id, e)

    async def _give_back(self) -> None:
        leases = [lease for lease, _ in self._buffer]
        self._buffer.clear()
        if self._prefetch is not None:
            try:
                leases += await self._prefetch
            except QueueUnavailable:
                pass
            self._prefetch = None
        for lease in leases:
            self._held.pop(lease.job_id, None)
        if leases:
            try:
                await self.queue.arelease(leases)
            except QueueUnavailable:
                pass  # they come back when their leases expire


def _named(keys: list[str], srcs: dict[str, list[str]]) -> str:
    return ", ".join(f"{k} ({', '.join(srcs.get(k) or ['inline data'])})" for k in keys)


def _batch_key(lease: Lease) -> tuple:
    cam = lease.params.get("camera")
    optics = None
    if isinstance(cam, dict):
        optics = tuple(repr(cam.get(k)) for k in ("fov", "width", "height", "near", "far"))
    return scenes.scene_key(lease.params), optics


RenderWorker = ray.remote(_RenderWorker)
