"""A Vuer server locked down for rendering: loopback only, the client bundle only, one session.

A bare `Vuer()` serves its working directory at /workspace (inside a Ray actor that is the
user's code), answers CORS for any origin, and lets any page that reaches it open a session.
`LockedVuer` registers only the page and its assets, refuses websockets from other origins,
and accepts one browser session at a time.
"""

from __future__ import annotations

import asyncio
import logging
import socket

from aiohttp import web
from vuer import Vuer

from .constants import LOOPBACK

log = logging.getLogger(__name__)

# Close code for a refused session (4000-4999 are free for applications).
BUSY_CLOSE_CODE = 4001


def free_port(host: str = LOOPBACK) -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


class LockedVuer(Vuer):
    """Call `await serve()` inside a running loop; `session_changed` fires on attach/detach."""

    # Vuer is a params-proto class that does not run a subclass's __post_init__: our state is
    # set up in serve(), which must come before any connection anyway.
    active_ws = None
    refused_sessions = 0
    _runner: web.AppRunner | None = None

    @property
    def url(self) -> str:
        return f"http://{LOOPBACK}:{self.port}/?ws=ws://{LOOPBACK}:{self.port}"

    def _allowed_origin(self, origin: str | None) -> bool:
        # Browsers always send Origin on websockets; our page's origin is our own address.
        return origin in (f"http://{LOOPBACK}:{self.port}", f"http://localhost:{self.port}")

    async def downlink(self, request, ws):
        if not self._allowed_origin(request.headers.get("Origin")):
            log.warning("refused a websocket from origin %r", request.headers.get("Origin"))
            await ws.close(code=BUSY_CLOSE_CODE, message=b"origin not allowed")
            return
        if self.active_ws is not None:
            self.refused_sessions += 1
            await ws.close(code=BUSY_CLOSE_CODE, message=b"this worker has a browser already")
            return
        self.active_ws = ws
        self.session_changed.set()
        try:
            await super().downlink(request, ws)
        finally:
            if self.active_ws is ws:
                self.active_ws = None
            self.session_changed.set()

    async def serve(self) -> None:
        """Start serving on loopback: the page at /, its bundle at /assets, nothing else."""
        self.session_changed = asyncio.Event()
        self._add_route("", self.socket_index, method="GET")
        self._add_static("/assets", self.client_root / "assets")
        self._runner = web.AppRunner(self.app, access_log=None)
        await self._runner.setup()
        await web.TCPSite(self._runner, LOOPBACK, self.port).start()

    async def close(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
