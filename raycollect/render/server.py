"""A Vuer server locked down for rendering: loopback only, the client bundle and the user's
assets folder only, one session.

A bare `Vuer()` serves its working directory at /workspace (inside a Ray actor that is the
user's code), serves any file by path traversal under /assets (`/assets/../../x` is not kept
inside the folder), answers CORS for any origin, and lets any page that reaches it open a
session.
`LockedVuer` registers only the page, its bundle and (when given) the assets folder at
/workspace/, refuses websockets from other origins, and accepts one browser session at a time.
Large frames come back by HTTP POST to /rc-frame/ (`take_upload`), accepted only from the
page's own origin, with the worker's secret token, while a session is attached.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import socket
from collections import OrderedDict, deque
from functools import lru_cache
from pathlib import Path

from aiohttp import web
from vuer import Vuer, VuerSession
from vuer.base import websocket_handler

from . import capture
from ..constants import LOOPBACK
from ..errors import GrabTimedOut

# After a grab's deadline, this long for an answer that is already in the socket (the
# deadline passed while the worker process was stopped).
RPC_LATE_GRACE = 0.2
# The browser may keep asset files this long without asking again: a model used by many
# jobs is fetched once per browser.
ASSETS_MAX_AGE = 24 * 3600

log = logging.getLogger(__name__)

# Close code for a refused session (4000-4999 are free for applications).
BUSY_CLOSE_CODE = 4001
# Where the page POSTs a frame's payload (capture_js/grab.js), and the most it may send.
UPLOAD_PATH = "/rc-frame/"
UPLOAD_MAX_BYTES = 1 << 30
UPLOADS_KEPT = 64  # frames that arrived for a grab no one waits for any more
# The page's capture script: these files, in this order, concatenated into one classic script
# inside one function scope (capture_js/config.js says what each file does). A file's code
# that runs at load may use only what the files before it declare.
CAPTURE_DIR = Path(__file__).with_name("capture_js")
CAPTURE_PARTS = ("config.js", "scene.js", "hook.js", "view_state.js", "skybox.js", "skin.js",
                 "loads.js", "shaders.js", "passes.js", "context.js", "mrt.js", "amodal_gl.js",
                 "amodal.js", "labels.js", "grab.js")


@lru_cache(maxsize=1)
def capture_script() -> str:
    """The capture script as the page runs it (CAPTURE_PARTS)."""
    parts = [f"// --- {name} ---\n{(CAPTURE_DIR / name).read_text(encoding='utf-8')}"
             for name in CAPTURE_PARTS]
    return '(() => {\n"use strict";\n' + "\n".join(parts) + "})();\n"


@lru_cache(maxsize=4)
def page_html(client_root: Path) -> str:
    """The client's index.html with raycollect's capture script inlined first in <head>, so it
    runs before the client's modules create any three.js object."""
    html = (client_root / "index.html").read_text(encoding="utf-8")
    script = f"<script>\n{capture_script()}</script>"
    head = html.find("<head>")
    if head < 0:
        raise RuntimeError(f"{client_root / 'index.html'} has no <head>: an unsupported Vuer client")
    at = head + len("<head>")
    return html[:at] + script + html[at:]


def free_port(host: str = LOOPBACK) -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


class _Session(VuerSession):
    """A session whose outgoing queue is unbounded and wakes the sender.

    Vuer's own queue is a deque with a maxlen that silently drops the oldest event when full
    (a lost scene update would corrupt frames without a trace), and its sender polls it with
    `sleep(0)`, which keeps one core busy for as long as a browser is attached."""

    def __init__(self, vuer, ws_id, queue_len=100):
        super().__init__(vuer, ws_id, queue_len)
        self.uplink_queue = deque()
        self.wakeup = asyncio.Event()

    def send(self, event) -> None:
        super().send(event)
        self.wakeup.set()

    async def rpc(self, event, ttl: float = 2.0):
        """Vuer's rpc, except for a deadline that passes while this process is stopped (a GC
        pause, an overloaded host, SIGSTOP): the answer may be waiting in the socket already,
        and on waking the timer fires before the socket is read. It gets RPC_LATE_GRACE to
        be read before the call gives up; and a handler that has already run is never
        removed twice (vuer's rpc raised KeyError there, which read as a lost page)."""
        answered = asyncio.Event()
        response = None

        async def on_response(reply, _session) -> None:
            nonlocal response
            response = reply
            answered.set()

        remove = self.vuer.add_handler(event.rtype, on_response, once=True)
        self.send(event)
        try:
            try:
                await asyncio.wait_for(answered.wait(), ttl)
            except asyncio.TimeoutError:
                await asyncio.wait_for(answered.wait(), RPC_LATE_GRACE)
        finally:
            if not answered.is_set():
                try:
                    remove()
                except KeyError:  # it ran in the meantime and removed itself
                    pass
        return response


class LockedVuer(Vuer):
    """Call `await serve()` inside a running loop; `session_changed` fires on attach/detach."""

    # Vuer is a params-proto class that does not run a subclass's __post_init__: our state is
    # set up in serve(), which must come before any connection anyway.
    active_ws = None
    refused_sessions = 0
    _runner: web.AppRunner | None = None

    # Extra passes the page renders with every grab ("depth", "mask"): read by
    # capture_js/config.js from the page's URL, so one worker's browser renders exactly what
    # its runs ask for.
    passes: tuple = ()
    assets_root: Path | None = None  # served read-only at /workspace/ (raycollect/assets.py)

    # The secret a page's frame uploads carry (in the page's URL, which only this worker's
    # browser is given); None: frames come back through the websocket only.
    upload_token: str | None = None
    # Whether the page POSTs frames, and from how many bytes (grab.js UPLOAD_MIN_BYTES): a
    # request costs more than a websocket message (160x120 rgb+depth+masks, 0.13 MB: 44
    # frames/s POSTed, 49 through the websocket), but a large frame leaves the page sooner
    # (640x480, 2.1 MB: 20 ms against 47 ms while the page draws the next view).
    uploads: bool = True
    upload_min_bytes: int = 256 * 1024
    _uploads: OrderedDict | None = None  # key -> bytes that arrived, or a Future waiting
    upload_bytes = 0

    @property
    def url(self) -> str:
        url = f"http://{LOOPBACK}:{self.port}/?ws=ws://{LOOPBACK}:{self.port}"
        if self.upload_token:
            url += f"&rc_upload={self.upload_token}&rc_upload_min={self.upload_min_bytes}"
        return url + (f"&rc_passes={','.join(self.passes)}" if self.passes else "")

    async def socket_index(self, request):
        if request.headers.get("Upgrade", "").lower().strip() == "websocket":
            # No permessage-deflate (aiohttp offers it by default): on loopback it only
            # costs, the browser deflating every frame's raw pixels on the cores it renders
            # with and the worker inflating them.
            return await websocket_handler(request, self.downlink, compress=False,
                                           max_msg_size=self.WEBSOCKET_MAX_SIZE)
        return web.Response(text=page_html(Path(self.client_root)), content_type="text/html",
                            headers={"Cache-Control": "no-store"})

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

    def _proxy(self, ws_id) -> _Session:
        return _Session(self, ws_id)

    async def uplink(self, proxy: _Session) -> None:
        """Send queued events in order, sleeping while there are none."""
        ws_id, pending = proxy.CURRENT_WS_ID, proxy.uplink_queue
        while ws_id in self.ws:
            if not pending:
                proxy.wakeup.clear()
                await proxy.wakeup.wait()
                continue
            try:
                await self.send(ws_id, event_bytes=pending.popleft())
            except (ConnectionError, RuntimeError) as e:  # the page went away
                log.info("session %s closed while sending: %s", ws_id, e)
                await self.close_ws(ws_id)
                return

    async def serve(self) -> None:
        """Start serving on loopback: the page at /, its bundle at /assets, nothing else."""
        self.session_changed = asyncio.Event()
        self._add_route("", self.socket_index, method="GET")
        # aiohttp's static route keeps requests inside the folder; vuer's own file handler
        # joins the raw path, so /assets/../../server.py would serve files outside it.
        self.app.router.add_static("/assets", self.client_root / "assets", follow_symlinks=False)
        if self.assets_root is not None:
            # The same static route: no traversal, no link out of the folder, no listing.
            self.app.router.add_static("/workspace", self.assets_root, follow_symlinks=False,
                                       show_index=False)
            self.app.on_response_prepare.append(self._on_asset_response)
        self._uploads = OrderedDict()
        if self.uploads:
            self.upload_token = secrets.token_urlsafe(24)
            self.app.router.add_post(UPLOAD_PATH + "{key}", self._upload)
        self._runner = web.AppRunner(self.app, access_log=None)
        await self._runner.setup()
        await web.TCPSite(self._runner, LOOPBACK, self.port).start()

    async def _upload(self, request) -> web.Response:
        """A frame's payload from the attached page: its key names it in the grab's answer."""
        token = request.query.get("t", "")
        if (self.active_ws is None or not self._allowed_origin(request.headers.get("Origin"))
                or not secrets.compare_digest(token.encode(), self.upload_token.encode())):
            return web.Response(status=403)
        size = request.content_length
        if size is None or size > UPLOAD_MAX_BYTES:
            return web.Response(status=413)
        # Read as it is: aiohttp's request.read() holds a body to the app's 1 MiB limit.
        data = await request.content.readexactly(size)
        self.upload_bytes += size
        key = request.match_info["key"]
        waiting = self._uploads.pop(key, None)
        if isinstance(waiting, asyncio.Future):
            if not waiting.done():
                waiting.set_result(data)
        else:
            self._uploads[key] = data
            unclaimed = [k for k, v in self._uploads.items() if isinstance(v, bytes)]
            for k in unclaimed[:max(0, len(unclaimed) - UPLOADS_KEPT)]:
                del self._uploads[k]
        return web.Response(status=204)

    async def take_upload(self, key: str, timeout: float) -> bytes:
        """The payload the page POSTed under `key`, once it has arrived; raises
        asyncio.TimeoutError after `timeout` seconds."""
        got = self._uploads.get(key)
        if isinstance(got, bytes):
            del self._uploads[key]
            return got
        future = asyncio.get_running_loop().create_future()
        self._uploads[key] = future
        try:
            return await asyncio.wait_for(future, timeout)
        finally:
            if self._uploads.get(key) is future:
                del self._uploads[key]

    async def frame_of(self, value: dict, timeout: float) -> dict:
        """A grab's answer with its payload: the one the page POSTed, when the answer names
        one (raycollect/render/capture.py `upload_key`)."""
        key = capture.upload_key(value.get("frame", b""))
        if key is None:
            return value
        try:
            return {**value, "frame": await self.take_upload(key, timeout)}
        except asyncio.TimeoutError:
            raise GrabTimedOut(f"the page's upload of frame {key} did not arrive within "
                               f"{timeout:.1f} s") from None

    asset_requests = 0  # requests for /workspace/ files: a model is fetched once per browser

    async def _on_asset_response(self, request, response) -> None:
        if request.path.startswith("/workspace/"):
            self.asset_requests += 1
            if response.status == 200:
                # The page may reuse what it fetched without asking again.
                response.headers["Cache-Control"] = f"max-age={ASSETS_MAX_AGE}"

    async def close(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
