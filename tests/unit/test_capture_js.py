"""The page's capture script, as served: every file of capture_js/ in the one order list,
each file small, and the whole one classic script that parses; the payload it packs, and
the upload route its frames take."""

from __future__ import annotations

import asyncio
import json
import shutil
import struct
import subprocess

import aiohttp
import numpy as np
import pytest

from raycollect.render import capture
from raycollect.render.server import CAPTURE_DIR, CAPTURE_PARTS, LockedVuer, capture_script, free_port


def test_every_file_is_served_once():
    assert sorted(CAPTURE_PARTS) == sorted(p.name for p in CAPTURE_DIR.glob("*.js"))
    assert len(set(CAPTURE_PARTS)) == len(CAPTURE_PARTS)
    for name in CAPTURE_PARTS:
        assert len((CAPTURE_DIR / name).read_text().splitlines()) <= 200, name


def test_one_classic_script(tmp_path):
    script = capture_script()
    assert "</script" not in script.lower()  # it is inlined in the page's <head>
    if shutil.which("node") is None:
        pytest.skip("no node to parse it with")
    path = tmp_path / "capture.js"
    path.write_text(script)
    subprocess.run(["node", "--check", str(path)], check=True)


def _packed(w, h, q, ids, mask24=None) -> bytes:
    """A one-render answer as grab.js lays it out: RGB, then depth (24 bits, least
    significant byte first) with the id's low byte as 4 bytes a pixel, the 24-bit ids only
    when given, the header padded to a multiple of 4."""
    rgb = np.zeros((h, w, 3), np.uint8)
    packed = (q.astype("<u4") | (ids.astype("<u4") & 255) << 24).tobytes()
    blocks = [{"name": "rgb", "type": "u8x3", "bytes": rgb.nbytes},
              {"name": "depth_id", "type": "d24i8", "bytes": len(packed)}]
    body = [rgb.tobytes(), packed]
    if mask24 is not None:
        m = np.stack([mask24 & 255, (mask24 >> 8) & 255, mask24 >> 16], -1).astype(np.uint8)
        blocks.append({"name": "mask", "type": "u8x3", "bytes": m.nbytes})
        body.append(m.tobytes())
    head = json.dumps({"w": w, "h": h, "passes": ["rgb", "depth", "mask"], "blocks": blocks}).encode()
    head += b" " * (-(8 + len(head)) % 4)
    return b"RCF1" + struct.pack("<I", len(head)) + head + b"".join(body)


def test_depth_and_ids_packed_in_one_block_decode_exactly():
    w, h, far = 5, 3, 20.0
    q = (np.arange(w * h, dtype=np.uint32).reshape(h, w) * 1_117_001) & 0xFFFFFF
    ids = np.arange(w * h, dtype=np.uint32).reshape(h, w) % 7
    cap = capture.decode(_packed(w, h, q, ids), far=far)
    assert cap.depth.dtype == np.float32
    assert np.array_equal(cap.depth, (q[::-1].astype(np.float64) * (far / capture.DEPTH_LEVELS)).astype(np.float32))
    assert cap.mask.dtype == np.uint32 and np.array_equal(cap.mask, ids[::-1])
    # Ids above 255 come in their own block, which wins over the low byte.
    ids24 = ids * 1000
    cap = capture.decode(_packed(w, h, q, ids24, mask24=ids24), far=far)
    assert np.array_equal(cap.mask, ids24[::-1])


def test_an_answer_names_its_upload():
    head = json.dumps({"w": 640, "h": 480, "upload": "abc-1"}).encode()
    assert capture.upload_key(b"RCF1" + struct.pack("<I", len(head)) + head) == "abc-1"
    assert capture.upload_key(_packed(2, 2, np.zeros((2, 2), np.uint32), np.zeros((2, 2), np.uint32))) is None


def test_uploads_only_from_the_page_with_the_token():
    async def main():
        app = LockedVuer(host="127.0.0.1", port=free_port())
        await app.serve()
        base = f"http://127.0.0.1:{app.port}/rc-frame/k1"
        own = {"Origin": f"http://127.0.0.1:{app.port}"}
        try:
            async with aiohttp.ClientSession() as http:
                async def post(url, headers, data=b"frame"):
                    async with http.post(url, data=data, headers=headers) as r:
                        return r.status
                token = app.upload_token
                assert token and f"rc_upload={token}" in app.url
                assert await post(f"{base}?t={token}", own) == 403  # no session attached
                app.active_ws = object()
                assert await post(f"{base}?t=wrong", own) == 403
                assert await post(f"{base}", own) == 403
                assert await post(f"{base}?t={token}", {"Origin": "http://evil.example"}) == 403
                assert await post(f"{base}?t={token}", {}) == 403
                assert await post(f"{base}?t={token}", own) == 204
                assert await app.take_upload("k1", 1.0) == b"frame"
                waiting = asyncio.ensure_future(app.take_upload("k2", 5.0))
                await asyncio.sleep(0.05)
                assert await post(f"{base[:-2]}k2?t={token}", own, b"x" * 3_000_000) == 204
                assert len(await waiting) == 3_000_000  # more than aiohttp's 1 MiB default
                with pytest.raises(asyncio.TimeoutError):
                    await app.take_upload("never", 0.1)
        finally:
            app.active_ws = None
            await app.close()

    asyncio.run(main())
