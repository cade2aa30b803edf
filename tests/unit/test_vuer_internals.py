"""The parts of vuer that raycollect relies on beyond its public API. pyproject.toml pins vuer
to the range these were read from; when an upgrade changes any of them, this fails loudly
(and says what), instead of the render workers breaking in a subtle way."""

from __future__ import annotations

import inspect
from pathlib import Path

import vuer
from vuer import Vuer, VuerSession
from vuer.base import websocket_handler


def test_the_server_internals_lockedvuer_overrides():
    # raycollect/render/server.py replaces these methods and calls these helpers.
    for name in ("socket_index", "downlink", "uplink", "_proxy", "_add_route", "send",
                 "close_ws", "spawn"):
        assert callable(getattr(Vuer, name, None)), f"vuer.Vuer.{name} is gone"
    assert isinstance(Vuer.WEBSOCKET_MAX_SIZE, int)
    assert list(inspect.signature(VuerSession.__init__).parameters)[1:4] == \
        ["vuer", "ws_id", "queue_len"]
    assert "max_msg_size" not in inspect.signature(websocket_handler).parameters  # **ws_kwargs
    assert "ws_kwargs" in inspect.signature(websocket_handler).parameters
    src = inspect.getsource(VuerSession)
    assert "uplink_queue" in src, "VuerSession no longer queues events in uplink_queue"


def test_the_client_bundle_has_what_the_capture_script_hooks():
    root = Path(vuer.__file__).parent / "client_build"
    assert "<head>" in (root / "index.html").read_text(encoding="utf-8")
    bundle = "".join(p.read_text(encoding="utf-8", errors="replace")
                     for p in (root / "assets" / "chunks").glob("*.js"))
    for needle, why in (
            ("__THREE_DEVTOOLS__", "three.js announces renderers and scenes to the devtools hook"),
            ("async function grabFrame", "the grab reads the view's canvas"),
            ("convertToBlob", "the grab encodes the canvas with OffscreenCanvas.convertToBlob"),
            ('subscribe("GRAB_RENDER"', "views answer GRAB_RENDER"),
            ("new OffscreenCanvas", "each view renders into its own OffscreenCanvas")):
        assert needle in bundle, f"vuer's client changed: {why} ({needle!r} not found)"
