"""A render worker's browser page: its session, what it shows, and waiting until it shows it.

This is the page half of a render worker (raycollect/render/worker.py); leases are
raycollect/render/leases.py. Three things are done to a page: send it a change (always with the
revision marker, raycollect/render/stage.py), settle (grab the marker view until it shows that
revision) and grab a view. Waiting for models is settling until the page reports every
model of the scene loaded (raycollect/render/capture_js/).
"""

from __future__ import annotations

import asyncio
import logging
import time

from vuer.events import GrabRender

from .. import assets as asset_folder
from . import capture, stage as stages
from ..config import Config
from ..errors import (BrokenModel, GrabTimedOut, ModelLoadError, NoBrowser, RenderError,
                      SessionLost)

# First marker polls use a short ttl: a view mounted by a new scene answers only after the
# browser has painted once, and an unanswered grab costs its whole ttl.
SETTLE_GRAB_TTL = 0.25
SETTLE_GRAB_TTL_MAX = 2.0  # a marker grab's ttl doubles up to this while the view mounts
MODEL_POLL_PERIOD = 0.02
SESSION_POLL = 1.0  # a worker waiting for its browser looks again this often

log = logging.getLogger(__name__)


class Page:
    def __init__(self, server, config: Config, worker_id: str):
        self.server, self.config, self.id = server, config, worker_id
        self.stage = stages.Stage(config.views_per_update, config.up)
        self.session = None
        self.sessions = 0
        self._lost = asyncio.Event()
        # The page's running totals of failed loads and uncaught errors, as last seen: what
        # happens after a scene is sent is that scene's.
        self.seen_failures = (0, 0)
        self.browser_s = 0.0  # time spent settling and grabbing

    async def on_session(self, session) -> None:
        """Vuer's spawn handler: the page attached; it lasts until the socket closes."""
        self.session = session
        self._lost = asyncio.Event()
        self.sessions += 1
        self.stage.reset()
        # The server's own signal fires when the socket opens, before Vuer calls this
        # handler: a worker waiting for its page is woken here again, now that there is one.
        self.server.session_changed.set()
        log.info("worker %s: browser session %d attached", self.id, self.sessions)
        try:
            await asyncio.Event().wait()  # vuer closes the socket when this returns
        finally:
            if self.session is session:
                self.session = None
                self._lost.set()

    async def wait_session(self, stopping, node_ip: str):
        if self.session is not None:
            return self.session
        deadline = time.monotonic() + self.config.session_timeout
        while self.session is None:
            if stopping():
                raise asyncio.CancelledError()
            left = deadline - time.monotonic()
            if left <= 0:
                raise NoBrowser(
                    f"worker {self.id}: no browser attached to {self.server.url} within "
                    f"{self.config.session_timeout:.0f} s; run `raycollect browsers` on node "
                    f"{node_ip} or open that URL in headless Chromium there")
            self.server.session_changed.clear()
            try:
                await asyncio.wait_for(self.server.session_changed.wait(),
                                       min(left, SESSION_POLL))
            except asyncio.TimeoutError:
                pass
            await asyncio.sleep(0)  # let the spawn handler set self.session
        return self.session

    async def grab(self, session, key: str, ttl: float | None = None) -> dict:
        """One grab, raced against the session going away."""
        if self.session is not session:
            raise self._lost_error()
        t0 = time.perf_counter()
        # Through the session's ordered queue (vuer's grab_render bypasses it), so a grab can
        # never overtake the update sent before it.
        grab = asyncio.ensure_future(session.rpc(GrabRender(key=key), ttl=ttl or self.config.grab_ttl))
        lost = asyncio.ensure_future(self._lost.wait())
        try:
            done, _ = await asyncio.wait({grab, lost}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            lost.cancel()
            self.browser_s += time.perf_counter() - t0
        if grab not in done:
            grab.cancel()
            raise self._lost_error()
        try:
            return grab.result().value
        except asyncio.TimeoutError as e:
            raise GrabTimedOut(f"worker {self.id}: the page did not answer the grab of {key} "
                               f"within {ttl or self.config.grab_ttl:.1f} s") from e
        except (KeyError, ConnectionError, RuntimeError) as e:  # the socket closed under us
            raise self._lost_error() from e

    def _lost_error(self) -> SessionLost:
        return SessionLost(f"browser disconnected from worker {self.id}")

    async def settle(self, session) -> dict:
        """Poll the marker view until it shows the stage's current revision; returns the
        page's status from that grab (raycollect/render/capture.py)."""
        if not self.config.barrier:
            return {}
        deadline = time.monotonic() + self.config.settle_timeout
        ttl = SETTLE_GRAB_TTL
        while True:
            try:
                value = await self.grab(session, self.stage.marker_view_key, ttl)
                cap = capture.decode(value["frame"])
                if stages.marker_revision_matches(cap.rgb, self.stage.revision):
                    self.seen_failures = (cap.status.get("load_failures", 0),
                                          cap.status.get("errors", 0))
                    return cap.status
            except GrabTimedOut:
                ttl = min(ttl * 2, SETTLE_GRAB_TTL_MAX)  # a new view subscribes after paint
            if time.monotonic() > deadline:
                raise RenderError(f"the page did not show revision {self.stage.revision} "
                                  f"within {self.config.settle_timeout:.0f} s")

    async def wait_models(self, session, models: list[str], elements: list,
                          baseline: tuple[int, int]) -> None:
        """Poll the page until every model of the scene just sent holds drawable geometry,
        no load from the assets folder is in flight and no texture lacks its image. A load
        that fails, or an error thrown while models load, fails the job at once with what
        the page said; a model still empty after `model_timeout` fails the attempt. The
        caller then sends one more revision, so the models' own commits are on the page
        before any view is grabbed."""
        failures0, errors0 = baseline
        deadline = time.monotonic() + self.config.model_timeout
        srcs = {str(el.key): asset_folder.sources(el) for el in elements}
        while True:
            session.update @ self.stage.marker_update()
            st = await self.settle(session)
            if st["load_failures"] > failures0:
                failed = st["failed"][-(st["load_failures"] - failures0):]
                raise BrokenModel(f"a model file failed to load: {'; '.join(failed)}")
            empty = [k for k in models if not st.get("models", {}).get(k)]
            if empty and st["errors"] > errors0:
                said = st["error_texts"][-(st["errors"] - errors0):]
                raise BrokenModel(f"model(s) {_named(empty, srcs)} did not load: {'; '.join(said)}")
            if not empty and st["loads_pending"] == 0 and st.get("textures_pending", 0) == 0:
                return
            if time.monotonic() > deadline:
                raise ModelLoadError(
                    f"model(s) {_named(empty or models, srcs)} not loaded within "
                    f"{self.config.model_timeout:.0f} s ({st['loads_pending']} loads in flight, "
                    f"{st.get('textures_pending', 0)} textures without an image)")
            await asyncio.sleep(MODEL_POLL_PERIOD)


def _named(keys: list[str], srcs: dict[str, list[str]]) -> str:
    return ", ".join(f"{k} ({', '.join(srcs.get(k) or ['inline data'])})" for k in keys)
