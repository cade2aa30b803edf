"""The output directory: frames/, manifest.jsonl, failures.jsonl and contact_sheet.png.

The manifest is the record of what is done: a job is in the output exactly when its line is
in manifest.jsonl. Frames are written under a temporary name and renamed only after the queue
accepted the frame's lease, so a crash leaves either nothing or a whole file, and a frame of a
stale attempt never lands. Opening a directory again repairs what a crash can leave behind.
"""

from __future__ import annotations

import json
import logging
import math
import os
import time
from pathlib import Path

import numpy as np
from PIL import Image

from . import constants as C
from .jobs import Result

log = logging.getLogger(__name__)

MANIFEST = "manifest.jsonl"
FAILURES = "failures.jsonl"
CONTACT_SHEET = "contact_sheet.png"
FRAMES = "frames"
STATE_DIR = ".raycollect"  # the queue journal lives here
TMP_SUFFIX = ".tmp"
# compress_level 1: PNG encoding runs in the driver for every frame; level 1 is several
# times faster than the default 6 for a few percent more bytes.
PNG_COMPRESS_LEVEL = 1


class OutputWriter:
    def __init__(self, out: str | os.PathLike):
        self.root = Path(out)
        self.frames = self.root / FRAMES
        self.frames.mkdir(parents=True, exist_ok=True)
        self.done: set[str] = set()
        self._repair()
        self._manifest = open(self.root / MANIFEST, "a", encoding="utf-8")

    @property
    def journal_path(self) -> Path:
        return self.root / STATE_DIR / "queue.sqlite"

    def _repair(self) -> None:
        path = self.root / MANIFEST
        if path.exists():
            data = path.read_bytes()
            if data and not data.endswith(b"\n"):  # a line cut short by a crash
                data = data[:data.rfind(b"\n") + 1]
                path.write_bytes(data)
                log.warning("%s: dropped a partial last line left by a crash", path)
            for line in data.decode("utf-8").splitlines():
                if line.strip():
                    self.done.add(json.loads(line)["job_id"])
        for f in self.frames.iterdir():
            job_id = f.name.split(".", 1)[0]
            # Temp files, and frames renamed just before a crash cut the manifest line: the
            # job is not done, so its file must not be counted as output.
            if f.name.endswith(TMP_SUFFIX) or f.name.startswith(".") or job_id not in self.done:
                f.unlink()

    def _frame_path(self, job_id: str, kind: str = "") -> Path:
        return self.frames / f"{job_id}{kind}.png"

    def stage(self, r: Result, token: str) -> list[tuple[Path, Path]]:
        """Write the frame (and depth) under temporary names; returns (tmp, final) pairs."""
        pairs = []
        for kind, array in (("", r.image), (".depth", r.depth)):
            if array is None:
                continue
            final = self._frame_path(r.job_id, kind)
            tmp = final.with_name(f".{final.name}.{token}{TMP_SUFFIX}")
            Image.fromarray(np.asarray(array)).save(tmp, format="PNG",
                                                    compress_level=PNG_COMPRESS_LEVEL)
            pairs.append((tmp, final))
        return pairs

    def commit(self, r: Result, pairs: list[tuple[Path, Path]]) -> None:
        """Rename the staged files into place and record the job in the manifest."""
        for tmp, final in pairs:
            os.replace(tmp, final)
        files = {("depth" if ".depth" in final.name else "image"): str(final.relative_to(self.root))
                 for _, final in pairs}
        r.path = str(pairs[0][1]) if pairs else None
        line = {"job_id": r.job_id, "params": r.params, "camera": r.camera, "files": files,
                "worker": r.worker, "node": r.node, "attempt": r.attempt, "timings": r.timings,
                "finished": time.time()}
        self._manifest.write(json.dumps(line) + "\n")
        self._manifest.flush()
        self.done.add(r.job_id)

    @staticmethod
    def discard(pairs: list[tuple[Path, Path]]) -> None:
        for tmp, _ in pairs:
            tmp.unlink(missing_ok=True)

    def write_failures(self, failures: list[dict]) -> None:
        path = self.root / FAILURES
        tmp = path.with_name(path.name + TMP_SUFFIX)
        with open(tmp, "w", encoding="utf-8") as f:
            for rec in failures:
                f.write(json.dumps(rec, default=str) + "\n")
        os.replace(tmp, path)

    def contact_sheet(self, max_frames: int = C.CONTACT_SHEET_MAX_FRAMES) -> Path | None:
        """A grid of an evenly spaced sample of the frames, in manifest order."""
        ids = []
        with open(self.root / MANIFEST, encoding="utf-8") as f:
            for line in f:
                if line.strip():
                    ids.append(json.loads(line)["job_id"])
        if not ids:
            return None
        step = max(1, math.ceil(len(ids) / max_frames))
        sample = ids[::step][:max_frames]
        thumbs = []
        for job_id in sample:
            with Image.open(self._frame_path(job_id)) as im:
                scale = C.CONTACT_SHEET_THUMB_WIDTH / im.width
                thumbs.append(im.convert("RGB").resize(
                    (C.CONTACT_SHEET_THUMB_WIDTH, max(1, round(im.height * scale)))))
        cols = math.ceil(math.sqrt(len(thumbs)))
        rows = math.ceil(len(thumbs) / cols)
        tw, th = C.CONTACT_SHEET_THUMB_WIDTH, max(t.height for t in thumbs)
        sheet = Image.new("RGB", (cols * tw, rows * th), (24, 24, 24))
        for i, t in enumerate(thumbs):
            sheet.paste(t, ((i % cols) * tw, (i // cols) * th))
        path = self.root / CONTACT_SHEET
        sheet.save(path)
        return path

    def close(self) -> None:
        self._manifest.flush()
        os.fsync(self._manifest.fileno())
        self._manifest.close()
