"""Bad input everywhere the user types it: each row of the README's table of bad input.

Command lines that cannot work exit 2 at once with one line naming what is wrong, before Ray
starts, and write nothing. (Bad jobs, scenes and assets inside a run fail that job alone,
naming the job and the field: tests/test_faults.py, tests/test_assets.py,
tests/test_robots.py.)"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

OUTPUT = "OUT"  # replaced by a fresh path per row


def _rows(tmp):
    afile = tmp / "a-file"
    afile.write_text("x")
    notout = tmp / "not-an-output"
    notout.mkdir()
    plain = tmp / "plain-output"
    plain.mkdir()
    (plain / "manifest.jsonl").write_text(json.dumps(
        {"job_id": "j1", "params": {}, "camera": {}, "files": {"image": "frames/j1.png"}}) + "\n")
    return [
        # (what the user typed, a fragment the one line must hold)
        (["run", "--jobs", str(tmp / "missing.jsonl")], "no such file"),
        (["run", "--scene", "no_such_module:scene"], "no_such_module"),
        (["run", "--scene", "not-a-spec"], "module:function"),
        (["run", "--workers", "0"], "--workers"),
        (["run", "--views", "-3"], "--views"),
        (["run", "--views", "many"], "--views must be a number"),
        (["run", "--size", "0x10"], "--size"),
        (["run", "--size", "640"], "WIDTHxHEIGHT"),
        (["run", "--views-per-update", "15"], "at most 14"),
        (["run", "--masks", "parts"], "--masks"),
        (["run", "--amodal"], "--amodal needs --masks"),
        (["run", "--semantic", "--depth"], "--semantic needs --masks"),
        (["run", "--masks", "--classes", str(afile)], "--classes"),
        (["run", "--masks", "--classes", str(tmp / "missing.json")], "--classes"),
        (["run", "--up", "x"], "--up"),
        (["run", "--image-format", "jpeg"], "--image-format"),
        (["run", "--assets", str(tmp / "no-such-dir")], "--assets"),
        (["run", "--assets", str(afile)], "--assets"),
        (["run", "--out", str(afile)], "is a file"),
        (["run", "--out", "nosuch://bucket/prefix"], "no filesystem for this URL"),
        (["run", "--shard-size", "0"], "--shard-size"),
        (["run", "--lease-ttl", "-1"], "--lease-ttl"),
        (["status", "--out", str(notout)], "is not a raycollect output"),
        (["export", str(tmp / "no-such-out"), "--format", "coco"], "no such output"),
        (["export", str(plain), "--format", "yaml"], "--format"),
        (["export", str(plain), "--format", "coco"], "needs masks and labels"),
        (["export", str(plain), "--format", "bop"], "needs depth, masks and labels"),
        (["export", str(plain), "--format", "coco", "--categories", str(afile)], "--categories"),
        (["repair", str(notout)], "is not a raycollect output"),
        (["no-such-command"], "no-such-command"),
    ]


ROW_COUNT = 30


@pytest.mark.parametrize("row", range(ROW_COUNT))
def test_a_bad_command_line_exits_2_with_one_line_and_writes_nothing(tmp_path, row):
    rows = _rows(tmp_path)
    assert len(rows) == ROW_COUNT
    args, fragment = rows[row]
    before = sorted(p.name for p in tmp_path.iterdir())
    done = subprocess.run([sys.executable, "-m", "raycollect.cli", *args], capture_output=True,
                          text=True, timeout=60, cwd=tmp_path)
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert done.returncode == 2, (args, done.stdout, done.stderr)
    assert len(lines) == 1 and lines[0].startswith("raycollect"), (args, done.stderr)
    assert fragment in lines[0], (args, lines[0])
    assert sorted(p.name for p in tmp_path.iterdir()) == before, "something was written"
