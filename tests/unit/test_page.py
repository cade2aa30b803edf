"""A render worker's page (raycollect/render/page.py) without a browser: the wait for its
session, driven the way the server drives it."""

from __future__ import annotations

import asyncio

from raycollect.config import Config
from raycollect.render import page as page_mod

# Longer than any session handshake, far shorter than the poll the defect fell back to.
WOKEN_WITHIN = 10.0


class _Server:
    """What Page reads of LockedVuer: its session signal and its URL."""

    url = "http://127.0.0.1:1/"

    def __init__(self):
        self.session_changed = asyncio.Event()


def test_a_waiting_worker_wakes_when_the_session_handler_runs(monkeypatch):
    """The server fires `session_changed` when the socket opens, before Vuer calls the
    page's session handler; a worker that woke in between and found no session yet must be
    woken again by the handler, not sleep until its next poll (a second per worker start,
    with the poll at its default)."""
    monkeypatch.setattr(page_mod, "SESSION_POLL", 1000.0)

    async def scenario():
        server = _Server()
        page = page_mod.Page(server, Config(), "w0")
        waiting = asyncio.ensure_future(page.wait_session(lambda: False, "127.0.0.1"))
        await asyncio.sleep(0)
        server.session_changed.set()  # the socket opened
        for _ in range(5):  # the waiter runs, finds no session, waits again
            await asyncio.sleep(0)
        session = object()
        handler = asyncio.ensure_future(page.on_session(session))
        try:
            assert await asyncio.wait_for(waiting, WOKEN_WITHIN) is session
        finally:
            handler.cancel()

    asyncio.run(scenario())
