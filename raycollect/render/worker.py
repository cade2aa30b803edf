"""RenderWorker: an async Ray actor that hosts one locked-down Vuer server and renders the
queue's jobs through the one browser page attached to it.

Per batch: lease (prefetched, so the actor round trip hides behind rendering) -> send the
scene or only the moved cameras, with the revision marker -> wait until the page shows that
revision -> grab each view (raw pixels and the extra passes, raycollect/render/capture.py) -> encode
the files -> yield them to the driver. Yielded items of a streaming generator are owned by
the caller, so frames survive this actor's death. The driver completes each lease once the
frame is recorded; this worker never marks a job done.

The worker composes two halves: its leases (raycollect/render/leases.py) and its page
(raycollect/render/page.py). Which jobs share a batch is decided by what their scene is: the
digest of the elements the scene function returns, so params the scene ignores (a label, a
frame index) do not cost a new scene.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import os
import secrets
import sys
import time
import traceback
from collections import OrderedDict
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import ray

from .. import assets as asset_folder, camera, constants as C, labels, scene as scenes, urdf
from ..output import files, shards as shard_files
from ..output.writer import sample_record
from . import capture, stage as stages
from ..browser import undo_ray_niceness
from ..config import MASKS_LINKS, Config
from ..errors import (Disposition, GrabTimedOut, InvalidJob, RaycollectError, RenderError,
                      SessionLost, disposition)
from ..jobs import Lease, Result
from .leases import LeaseBook
from ..metrics import StageClock, WorkerMetrics
from .page import Page
from ..queue import JobQueue
from .server import LockedVuer, free_port

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
        self.leases = LeaseBook(queue, worker_id, self.config.views_per_update, self._batch_key)
        self.server: LockedVuer | None = None
        self.page: Page | None = None
        self.frames = 0
        self.scene_updates = 0  # whole scenes sent (the rest of the batches moved cameras)
        self.info: dict = {}
        self._stopping = False
        self._instances: dict | None = None  # key -> instance id of the scene on the page
        # Of the scene on the page, with masks: key -> class name, class name -> class id,
        # element key -> its model (raycollect/labels.py), instance id -> class id
        self._classes: dict = {}
        self._class_ids: dict = {}
        self._models: dict = {}
        self._semantic_lut: np.ndarray | None = None
        self._assets_root = None
        self._aliases: tuple = ()  # the assets folder as the driver saw it (file:// paths)
        self._robots: dict = {}  # key -> urdf.Robot of the scene on the page
        self._moving = False  # the scene on the page has elements placed per view
        self._scene_digests: OrderedDict[str, str] = OrderedDict()
        self._built: OrderedDict[str, list] = OrderedDict()  # scene key -> elements (_joints)
        self._started = time.monotonic()
        self.driver_wait_s = 0.0  # time blocked handing frames over (driver backpressure)
        self.clock = StageClock()  # where a frame's time goes (raycollect/metrics.py)
        # A store output: this worker writes the frames' files there itself (one object per
        # pass, or shards of `shard_size` frames), and only their keys go to the driver.
        self._store = self.config.location() if self.config.to_store else None
        self._open_shard: list[Result] = []
        self._idle_since: float | None = None
        # One thread decodes and encodes frames while the loop takes the page's next one.
        self._encoder = ThreadPoolExecutor(1, thread_name_prefix=f"rc-encode-{worker_id}")
        self.metrics: WorkerMetrics | None = None

    # --- setup -------------------------------------------------------------------------
    async def start(self) -> dict:
        port = free_port()
        ctx = ray.get_runtime_context()
        node_ip = ray.util.get_node_ip_address()
        if self.config.assets is not None:
            self._assets_root = await asset_folder.materialize(
                self.config.assets, f"{node_ip} ({ctx.get_node_id()[:8]})")
            self._aliases = (Path(self.config.assets.path),)
        self.server = LockedVuer(host=C.LOOPBACK, port=port, cors=f"http://{C.LOOPBACK}:{port}")
        self.server.assets_root = self._assets_root
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
        idle = C.IDLE_POLL_MIN
        try:
            while not self._stopping:
                session = await self.page.wait_session(lambda: self._stopping,
                                                       self.info.get("node_ip"))
                batch, key = await self.leases.next_batch()
                if not batch:
                    # Frames waiting in an open shard are shipped once there has been
                    # nothing to add to it for a while (the run cannot end while their
                    # leases are held).
                    self._idle_since = self._idle_since or time.monotonic()
                    if self._open_shard and \
                            time.monotonic() - self._idle_since >= C.SHARD_IDLE_FLUSH:
                        yield await self._close_shard()
                        continue
                    await asyncio.sleep(idle)
                    idle = min(idle * 2, C.IDLE_POLL_MAX)
                    continue
                idle = C.IDLE_POLL_MIN
                self._idle_since = None
                frames = await self._render_batch(session, batch, key[0])
                # Frames rendered (a failed batch has none), counted before the yield, which
                # can wait on the driver: the browser's host recycles by this count.
                self.frames += len(frames)
                if self._store is not None and self.config.shard_size:
                    self._open_shard += frames
                    frames = []
                    while len(self._open_shard) >= self.config.shard_size:
                        frames += await self._close_shard(self.config.shard_size)
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

    def _batch_key(self, lease: Lease) -> tuple:
        """(what the scene is, the optics): jobs with equal keys share a batch and only move
        cameras and joints. The scene part is a digest of the elements the scene function
        returns for the job's params, but their joint values (which the page sets per view,
        raycollect/render/capture.js), computed once per distinct params."""
        cam = lease.params.get("camera")
        optics = None
        if isinstance(cam, dict):
            optics = tuple(repr(cam.get(k)) for k in ("fov", "width", "height", "near", "far"))
        pkey = scenes.scene_key(lease.params)
        digest = self._scene_digests.get(pkey)
        if digest is None:
            try:
                elements = scenes.build(self.scene, lease.job_id, lease.params)
                # Kept for _joints, which needs them again when the job renders (a rollout
                # builds each job's scene once, not twice).
                self._built[pkey] = elements
                if len(self._built) > C.BUILT_SCENE_CACHE:
                    self._built.popitem(last=False)
                # Serialising every element is most of a rollout job's cost here: jobs of
                # one digest key (an MJCF world's states) share it (scene.py digest_key).
                dkey = scenes.digest_key(self.scene, lease.params)
                shared = f"static:{dkey}" if dkey != pkey else None
                digest = self._scene_digests.get(shared) if shared else None
                if digest is None:
                    digest = hashlib.blake2b(repr([_without_joints(scenes.view_state_free(el))
                                                   for el in elements]).encode(),
                                             digest_size=16).hexdigest()
                    if shared:
                        self._scene_digests[shared] = digest
            except RaycollectError:  # it fails again, with its error, when it renders alone
                digest = f"unbuildable:{lease.job_id}"
            self._scene_digests[pkey] = digest
            if len(self._scene_digests) > C.SCENE_DIGEST_CACHE:
                self._scene_digests.popitem(last=False)
        return digest, optics

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
                self._robots = asset_folder.check_sources(
                    good[0][0].job_id, elements, self._assets_root, self._aliases)
                self._moving = any(scenes.is_moving(el) for el in elements)
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
                groups = await self._groups(elements, joints[0], good[0][0].job_id)
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
        """Grab every view of the update, in order. The page draws view i + 1 while this
        worker decodes and encodes view i (in its own thread, off the event loop that
        carries the page's answers): the browser's render and the worker's encode overlap
        instead of taking turns on the same cores."""
        page, stage = self.page, self.page.stage
        loop = asyncio.get_running_loop()

        async def timed(i: int) -> tuple[dict, float]:
            g0 = time.perf_counter()
            value = await page.grab(session, stage.view_key(i))
            return value, time.perf_counter() - g0

        frames: list[Result] = []
        pending = asyncio.ensure_future(timed(0))
        try:
            for i, (lease, cam) in enumerate(good):
                value, grab_s = await pending
                if i + 1 < len(good):
                    pending = asyncio.ensure_future(timed(i + 1))
                    await asyncio.sleep(0)  # the next grab's request goes out first
                e0 = time.perf_counter()
                frame = await loop.run_in_executor(self._encoder, self._frame, lease, cam, value,
                                                   {"settle_s": settle_s, "grab_s": grab_s,
                                                    "batch": len(good)}, i)
                frame.timings["encode_s"] = time.perf_counter() - e0
                frames.append(frame)
        finally:
            if not pending.done():
                pending.cancel()
            elif not pending.cancelled():
                pending.exception()  # a failed look-ahead grab is the batch's failure, not a leak
        return frames

    async def _close_shard(self, size: int | None = None) -> list[Result]:
        """Write the open shard's first `size` frames (all by default) and its index to the
        store, under a name no other attempt has, and hand those frames over: each frame's
        files are now members of the shard."""
        size = len(self._open_shard) if size is None else size
        frames, self._open_shard = self._open_shard[:size], self._open_shard[size:]
        t0 = time.perf_counter()
        name = f"{shard_files.SHARDS}/{self.id}-{secrets.token_hex(8)}.tar"
        records = [(f.job_id, f.files, sample_record(f, f.lease.params)) for f in frames]

        def write() -> list[dict]:
            tar, index, names = shard_files.build(records)
            self._store.write(name, tar)
            self._store.write(name + shard_files.INDEX_SUFFIX, index)
            return names

        names = await asyncio.get_running_loop().run_in_executor(self._encoder, write)
        for f, members in zip(frames, names):
            f.files, f.keys, f.shard = {}, members, name
        self.clock.add("store", time.perf_counter() - t0)
        return frames

    def _upload(self, lease: Lease, out: dict) -> dict:
        """A frame's files to the store under names of this attempt: {kind: key}."""
        keys = {}
        for kind, data in out.items():
            key = f"frames/{lease.job_id}.{lease.token[:C.ATTEMPT_TAG]}{files.suffix(kind, data)}"
            self._store.write(key, data)
            keys[kind] = key
        return keys

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
        """What the page sets for one job's view: {robot key: complete joint values}
        (raycollect/urdf.py) and, for a scene with moving elements, {POSES_KEY: {key:
        placement}} (raycollect/scene.py)."""
        if not self._robots and not self._moving:
            return {}
        if elements is None:
            elements = self._built.get(scenes.scene_key(lease.params)) or \
                scenes.build(self.scene, lease.job_id, lease.params)
        out = {str(el.key): urdf.joint_values(lease.job_id, f"scene[{i}].jointValues",
                                              self._robots[str(el.key)],
                                              getattr(el, "jointValues", None))
               for i, el in enumerate(elements) if str(el.key) in self._robots}
        if self._moving:
            out[scenes.POSES_KEY] = scenes.poses(elements)
        return out

    async def _groups(self, elements: list, joints: dict, job_id: str) -> list:
        """Complete the scene's URDFs (paths resolved, the first job's joint values as the
        robots' own; raycollect/urdf.py), give what it draws instance ids, and wrap each
        element in its instance group (raycollect/render/stage.py)."""
        robots = self._robots
        for el in elements:
            robot = robots.get(str(el.key))
            if robot is None:
                continue
            el.jointValues = joints[str(el.key)]
            path = asset_folder.local_path(el.src, self._assets_root)
            if getattr(el, "packages", None):  # Vuer's own mapping, when given, wins
                el.text = urdf.page_text(path)
            else:
                el.text = urdf.resolved_text(path, self._assets_root, self._aliases)
        keys = [str(el.key) for el in elements]
        links: dict = {}
        if not self.config.masks:
            self._instances = {k: 0 for k in keys}
            return stages.instance_groups(elements, [0] * len(keys))
        drawn = [k for k, el in zip(keys, elements) if labels.draws(el)]
        parts = []
        if self.config.masks == MASKS_LINKS:
            parts = [labels.link_key(k, l) for k, r in robots.items() if k in drawn for l in r.links]
        try:
            classes = {k: labels.class_of(k, self.config.classes) for k in drawn + parts}
        except ValueError as e:
            raise InvalidJob(job_id, "classes", str(e)) from None
        names = sorted(set(classes.values()))
        # Class ids come from the queue's journaled registry, as instance ids do (under a
        # reserved prefix no element key can have): stable for the whole output, on every
        # worker and after a rerun or a repair.
        class_keys = [labels.class_key(n) for n in names]
        ids = await self.queue.ainstance_ids(drawn + parts + class_keys)
        got = dict(zip(drawn + parts, ids))
        self._class_ids = dict(zip(names, ids[len(drawn) + len(parts):]))
        self._classes = classes
        self._models = {k: labels.model_of(el) for k, el in zip(keys, elements) if k in got}
        lut = np.zeros(max(got.values(), default=0) + 1, np.uint32)
        for k, i in got.items():
            lut[i] = self._class_ids[classes[k]]
        self._semantic_lut = lut
        if parts:
            links = {k: {l: got[labels.link_key(k, l)] for l in r.links}
                     for k, r in robots.items() if k in drawn}
        self._instances = got
        return stages.instance_groups(elements, [got.get(k, 0) for k in keys], links)

    def _frame(self, lease: Lease, cam: dict, value: dict, timings: dict, view: int) -> Result:
        """Decode a grab's payload, check it, and encode the job's files."""
        clock = self.clock
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
        objects, classes, config = None, None, self.config
        arrays = {"depth": cap.depth, "mask": cap.mask, "normals": cap.normals,
                  "coords": cap.coords}
        if config.masks:
            if cap.objects is None or cap.mask is None:
                raise RenderError(f"job {lease.job_id}: the page returned no labels")
            stats = None
            if config.amodal:
                arrays["amodal"], stats = labels.silhouettes(cap.amodal, cap.amodal_outer, cap.mask)
            objects = labels.objects(cap.objects, cap.mask, self._instances, self._classes,
                                     self._models, stats)
            classes = self._class_ids  # the scene's, made once per scene (_groups)
            if config.semantic:
                arrays["semantic"] = self._semantic_lut[np.minimum(cap.mask, len(self._semantic_lut) - 1)]
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
        keys = None
        if self._store is not None and not self.config.shard_size:
            s0 = time.perf_counter()
            keys, out = self._upload(lease, out), {}
            clock.add("store", time.perf_counter() - s0)
        # The job's params travel once, in its lease: the driver puts them back (they hold
        # the camera, and a frame's bytes to the driver are what a cluster's driver pays).
        return Result(lease.job_id, {}, camera=camera.camera_record(cam), worker=self.id,
                      attempt=lease.attempt, timings=timings, node=self.info["node_id"],
                      instances=self._instances if self.config.masks else None, objects=objects,
                      classes=classes, files=out, keys=keys, lease=lease)

    async def _announce(self) -> None:
        """Keep this worker's registry entry fresh: a restarted queue starts with an empty
        registry, browser managers read the frame count to recycle browsers, and `raycollect
        status` and the run's summary read the counters."""
        while True:
            await asyncio.sleep(C.REGISTRY_REFRESH_PERIOD)
            self.info.update(self._counters())
            if self.metrics:
                self.metrics.waits(self.info["wait_s"])
            try:
                await self.queue.aregister_worker(self.id, self.info)
            except RaycollectError as e:
                log.warning("worker %s: cannot refresh its registry entry: %s", self.id, e)


def _without_joints(node):
    """A serialised element with every jointValues left out, children included."""
    if isinstance(node, dict):
        return {k: _without_joints(v) for k, v in node.items() if k != "jointValues"}
    if isinstance(node, list):
        return [_without_joints(v) for v in node]
    return node


RenderWorker = ray.remote(_RenderWorker)
