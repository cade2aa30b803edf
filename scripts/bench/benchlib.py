"""What the benchmark scripts share: a bare page (one locked-down Vuer server and one
browser, no raycollect pipeline) and the table they print."""

from __future__ import annotations

import asyncio
import contextlib
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
from raycollect import constants as C  # noqa: E402
from raycollect.browser import Browser  # noqa: E402
from raycollect.render.server import LockedVuer, free_port  # noqa: E402


@contextlib.asynccontextmanager
async def bare_page(passes: tuple = (), uploads: bool = True):
    """A Vuer server with one browser attached: yields (session, grab), where
    `await grab(key, ttl)` is the grab's value (raycollect/render/capture.py's payload, by
    POST when `uploads`, as the render workers take it)."""
    from vuer.events import GrabRender

    port = free_port()
    app = LockedVuer(host=C.LOOPBACK, port=port, cors=f"http://{C.LOOPBACK}:{port}")
    app.passes = passes
    app.uploads = uploads
    ready: asyncio.Queue = asyncio.Queue()

    async def on_session(session):
        await ready.put(session)
        await asyncio.Event().wait()

    app.spawn(on_session)
    await app.serve()
    browser = Browser(app.url)
    try:
        session = await asyncio.wait_for(ready.get(), 60)

        async def grab(key: str, ttl: float = 10.0) -> dict:
            return await app.frame_of((await session.rpc(GrabRender(key=key), ttl=ttl)).value, ttl)

        yield session, grab
    finally:
        browser.stop()
        await app.close()


def print_table(title: str, rows: list[tuple[str, str, str]], value_width: int = 9) -> None:
    """The rows (name, value, detail) under a title line, names aligned."""
    print(f"\n{title}")
    w = max(len(r[0]) for r in rows)
    for name, value, detail in rows:
        print(f"  {name:<{w}}  {value:>{value_width}}  {detail}")
