"""RenderWorker: an async Ray actor that hosts one locked-down Vuer server and renders the
queue's jobs through the one browser page attached to it.

Per batch: lease (prefetched, so the actor round trip hides behind rendering) -> send the
scene or only the moved cameras, with the revision marker -> wait until the page shows that
revision -> grab each view (raw pixels and the extra passes, raycollect/render/capture.py) -> encode
the files -> yield them to the driver. Yielded items of a streaming generator are owned by
the caller, so frames survive this actor's death. The driver completes each lease once the
frame is recorded; this worker never marks a job done.

The worker composes its leases (raycollect/render/leases.py), its page
(raycollect/render/page.py), what the page shows (raycollect/render/shown.py) and the making
of Results from grabs (raycollect/render/frames.py). Which jobs share a batch is decided by what their scene is: the
digest of the elements the scene function returns, so params the scene ignores (a label, a
frame index) do not cost a new scene.
"""

from __future__ import annotations

import asyncio
import logging
import os
import sys
import time
import traceback
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import ray

from .. import assets as asset_folder, camera, constants as C, scene as scenes
from . import stage as stages
from ..browser import undo_ray_niceness
from ..config import Config
from ..errors import (Disposition, GrabTimedOut, InvalidJob, RaycollectError, SessionLost,
                      disposition)
from ..jobs import Lease
from ..result import Result
from .leases import LeaseBook
from ..metrics import StageClock, WorkerMetrics
from .page import Page
from ..queue import JobQueue
from .server import LockedVuer, free_port
from .sink import sink_for
from .batches import Batches
from .frames import grab_all, make_result
from .shown import Shown

# An idle worker (queue empty for now) polls with backoff between these.
IDLE_POLL_MIN = 0.02
IDLE_POLL_MAX = 0.5
# The worker refreshes its registry entry (frames rendered, for browser recycling) this often.
REGISTRY_REFRESH_PERIOD = 1.0

log = logging.getLogger(__name__)


class _RenderWorker:
    """Private: the driver's pool (or your own code) creates it with `RenderWorker.remote`."""

    def __init__(self, queue: JobQueue, worker_id: str, scene: Any = None,
                 config: Config | None = None):
        # Vuer prints every connection to stdout; keep the driver's console for our logs.
        sys.stdout = open(os.devnull, "w")
        undo_ray_niceness()
        logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
        for name in C.QUIET_LOGGERS:
            logging.getLogger(name).setLevel(logging.WARNING)
        self.queue, self.id = queue, worker_id
        self.scene = scenes.load_scene(scene)
        self.config = config or Config()
        self.batches = Batches(self.scene)  # which jobs share a batch (render/batches.py)
        self.leases = LeaseBook(queue, worker_id, self.config.views_per_update, self.batches.key)
        self.server: LockedVuer | None = None
        self.page: Page | None = None
        self.frames = 0
        self.scene_updates = 0  # whole scenes sent (the rest of the batches moved cameras)
        self.info: dict = {}
        self._stopping = False
        self.shown = Shown(self.config)  # the scene on the page (render/shown.py)
        self._started = time.monotonic()
        self.driver_wait_s = 0.0  # time blocked handing frames over (driver backpressure)
        self.clock = StageClock()  # where a frame's time goes (raycollect/metrics.py)
        # One thread decodes and encodes frames while the loop takes the page's next one.
        self._encoder = ThreadPoolExecutor(1, thread_name_prefix=f"rc-encode-{worker_id}")
        # Where the frames' files go (raycollect/render/sink.py): to the driver in the
        # Results, or, for a store output, to the store by this worker itself.
        self.sink = sink_for(self.config, self.clock, worker_id, self._encoder)
        self.metrics: WorkerMetrics | None = None

    # --- setup -------------------------------------------------------------------------
    async def start(self) -> dict:
        port = free_port()
        ctx = ray.get_runtime_context()
        node_ip = ray.util.get_node_ip_address()
        if self.config.assets is not None:
            self.shown.assets_root = await asset_folder.materialize(
                self.config.assets, f"{node_ip} ({ctx.get_node_id()[:8]})")
            self.shown.aliases = (Path(self.config.assets.path),)
        self.server = LockedVuer(host=C.LOOPBACK, port=port, cors=f"http://{C.LOOPBACK}:{port}")
        self.server.assets_root = self.shown.assets_root
        self.server.passes = self.config.passes
        self.page = Page(self.server, self.config, self.id)
        self.server.spawn(self.page.on_session)
        await self.server.serve()
        self.info = {"url": self.server.url, "port": port, "pid": os.getpid(),
                     "node_ip": node_ip, "node_id": ctx.get_node_id(), "frames": 0}
        self.metrics = WorkerMetrics(self.id, self.info["node_id"])
        await self.queue.aregister_worker(self.id, self.info)
        log.info("worker %s serving %s", self.id, self.server.url)
        return self.info

    def _counters(self) -> dict:
        """What this worker did and what it waited on, for status, the summary and metrics."""
        return {"frames": self.frames, "scene_updates": self.scene_updates,
                "seconds": round(time.monotonic() - self._started, 3),
                "wait_s": {"browser": round(self.page.browser_s, 3) if self.page else 0.0,
                           "queue": round(self.leases.queue_wait_s, 3),
                           "driver": round(self.driver_wait_s, 3)},
                "encode_s": round(self.clock.seconds["encode"], 3),
                **self._stages(),
                "asset_requests": self.server.asset_requests if self.server else 0}

    def _stages(self) -> dict:
        self.clock.seconds["driver"] = self.driver_wait_s
        self.clock.seconds["queue"] = self.leases.queue_wait_s
        return self.clock.snapshot()

    async def status(self) -> dict:
        return {**self.info, **self._counters(),
                "sessions": self.page.sessions if self.page else 0,
                "session": bool(self.page and self.page.session is not None),
                "held": len(self.leases),
                "refused_sessions": self.server.refused_sessions if self.server else 0}

    async def stop(self) -> None:
        """Finish the batch in hand, give back the prefetched leases, stop serving."""
        self._stopping = True

    # --- the render loop ---------------------------------------------------------------
    async def run(self):
        """Streaming generator of lists of Results (one list per batch) until stop()."""
        ttl = float((await self.queue.astats())["lease_ttl"])
        loop = asyncio.get_running_loop()
        heartbeat = loop.create_task(self.leases.heartbeat_forever(ttl))
        announce = loop.create_task(self._announce())
        idle = IDLE_POLL_MIN
        try:
            while not self._stopping:
                session = await self.page.wait_session(lambda: self._stopping,
                                                       self.info.get("node_ip"))
                batch, key = await self.leases.next_batch()
                if not batch:
                    waited = await self.sink.idle()
                    if waited:
                        yield waited
                        continue
                    await asyncio.sleep(idle)
                    idle = min(idle * 2, IDLE_POLL_MAX)
                    continue
                idle = IDLE_POLL_MIN
                frames = await self._render_batch(session, batch, key[0])
                # Frames rendered (a failed batch has none), counted before the yield, which
                # can wait on the driver: the browser's host recycles by this count.
                self.frames += len(frames)
                frames = await self.sink.take(frames)
                # The leases stay held, and heartbeated, after the yield: the driver may keep
                # the frames a while (a slow caller) before it records them and completes
                # the leases; the heartbeat lets each go once the queue says it has ended.
                if frames:
                    t0 = time.perf_counter()
                    # One object per batch: serialising and sending is paid once per update.
                    yield frames
                    self.driver_wait_s += time.perf_counter() - t0
        finally:
            heartbeat.cancel()
            announce.cancel()
            await self.leases.give_back()

    async def _render_batch(self, session, batch: list[Lease], skey: str) -> list[Result]:
        t0 = time.perf_counter()
        good: list[tuple[Lease, dict]] = []
        for lease in batch:
            try:
                good.append((lease, camera.validate(lease.job_id, lease.params)))
            except InvalidJob as e:  # deterministic: a retry cannot help
                await self.leases.fail([lease], str(e), Disposition.FINAL)
        if not good:
            return []
        page, stage = self.page, self.page.stage
        try:
            new_scene = stage.needs_scene(skey, stages.Optics.of(good[0][1]), len(good))
            elements = None
            if new_scene:
                elements = scenes.build(self.scene, good[0][0].job_id, good[0][0].params)
                self.shown.new_scene(good[0][0].job_id, elements)
            # Each job's joint values, checked against its robots: a job that names a joint
            # its robot lacks fails alone, the batch goes on without it.
            joints, kept = [], []
            for lease, cam in good:
                try:
                    # The first job's elements were built just above for a new scene.
                    built = elements if lease is good[0][0] else None
                    joints.append(self._joints(lease, built))
                    kept.append((lease, cam))
                except InvalidJob as e:
                    await self.leases.fail([lease], str(e), Disposition.FINAL)
            good = kept
            if not good:
                return []
            cams = [c for _, c in good]
            optics = stages.Optics.of(cams[0])
            matrices = [np.asarray(c["matrix"]) for c in cams]
        except RaycollectError as e:
            return await self._failed(good, e)
        clock = self.clock
        try:
            settle_s = 0.0
            if new_scene:
                groups = await self.shown.groups(self.queue, elements, joints[0],
                                                 good[0][0].job_id)
                models = [str(el.key) for el in elements if asset_folder.is_model(el)]
                same = (stages.structure(groups) == stage.structure and optics == stage.optics
                        and len(good) <= stage.n_views)
                baseline = page.seen_failures
                session.set @ stage.full_scene(skey, optics, groups, matrices, joints)
                self.scene_updates += 1
                if models and not same:
                    s0 = time.perf_counter()
                    await page.settle(session)
                    await page.wait_models(session, models, elements, baseline)
                    settle_s += time.perf_counter() - s0
                # Effects that React runs after paint (joint values and some other props are
                # applied there) are flushed before it renders the next update: a second
                # revision proves it. Sent at once: React flushes them before that render.
                # A scene of the same structure (only placements and joint values changed)
                # has its models loaded already: nothing to wait for but this.
                session.update @ stage.marker_update()
            else:
                session.update @ stage.camera_update(matrices, joints)
            s0 = time.perf_counter()
            await page.settle(session)
            t1 = time.perf_counter()
            settle_s += t1 - s0
            clock.add("settle", settle_s)
            clock.add("update", t1 - t0 - settle_s)
            frames = await self._grab_all(session, good, t1 - t0)
            if self.metrics:
                self.metrics.frames(len(frames))
            return frames
        except RaycollectError as e:
            return await self._failed(good, e)

    async def _grab_all(self, session, good: list, settle_s: float) -> list[Result]:
        """Grab every view of the update and make each a Result (render/frames.py)."""
        page, stage = self.page, self.page.stage

        async def grab(i: int) -> dict:
            value = await page.grab(session, stage.view_key(i))
            return await self.server.frame_of(value, self.config.grab_ttl)

        def build(lease: Lease, cam: dict, value: dict, i: int, timings: dict) -> Result:
            return make_result(lease, cam, value, i, ids=self.shown.ids, config=self.config,
                               clock=self.clock, sink=self.sink, timings=timings,
                               worker=self.id, node=self.info["node_id"])

        return await grab_all(grab, build, good, settle_s, self._encoder)

    async def _failed(self, good: list, error: RaycollectError) -> list:
        """A batch that failed with one of our errors: each of its jobs as the error says."""
        mode = disposition(error)
        if mode is Disposition.ABORT:
            raise error
        self.page.stage.reset()  # the page is in an unknown state: resend everything
        # A lost page or an unanswered grab says all there is to say; anything else that is
        # retried keeps where it came from.
        expected = isinstance(error, (SessionLost, GrabTimedOut))
        trace = f"\n{traceback.format_exc()}" if mode is Disposition.RETRY and not expected else ""
        await self.leases.fail([l for l, _ in good], f"{error} (worker {self.id}){trace}", mode)
        return []

    def _joints(self, lease: Lease, elements: list | None = None) -> dict:
        """The job's view state on the page (render/shown.py), its scene built only when
        the page's scene has robots or elements placed per view."""
        if elements is None and self.shown.needs_elements():
            elements = self.batches.elements(lease)
        return self.shown.joints(lease, elements or [])

    async def _announce(self) -> None:
        """Keep this worker's registry entry fresh: a restarted queue starts with an empty
        registry, browser managers read the frame count to recycle browsers, and `raycollect
        status` and the run's summary read the counters."""
        while True:
            await asyncio.sleep(REGISTRY_REFRESH_PERIOD)
            self.info.update(self._counters())
            if self.metrics:
                self.metrics.waits(self.info["wait_s"])
            try:
                await self.queue.aregister_worker(self.id, self.info)
            except RaycollectError as e:
                log.warning("worker %s: cannot refresh its registry entry: %s", self.id, e)


RenderWorker = ray.remote(_RenderWorker)
