"""The page's capture script, as served: every file of capture_js/ in the one order list,
each file small, and the whole one classic script that parses."""

from __future__ import annotations

import shutil
import subprocess

import pytest

from raycollect.render.server import CAPTURE_DIR, CAPTURE_PARTS, capture_script


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
