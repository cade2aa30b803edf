"""The output directory: frames/, manifest.jsonl, failures.jsonl and contact_sheet.png.

The manifest is the record of what is done: a job is in the output exactly when its line is
in manifest.jsonl. Frames are written under a temporary name and renamed only after the queue
accepted the frame's lease, so a crash leaves either nothing or a whole file, and a frame of a
stale attempt never lands. Opening a directory again repairs what a crash can leave behind.
"""

from __future__ import annotations

import functools
import json
import logging
import math
import os
import time
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from . import constants as C
from .files import PASS_NAMES, SUFFIXES, load, suffix
from .errors import OutputError
from .jobs import Result

log = logging.getLogger(__name__)

MANIFEST = "manifest.jsonl"
FAILURES = "failures.jsonl"
CONTACT_SHEET = "contact_sheet.png"
FRAMES = "frames"
STATE_DIR = ".raycollect"  # the queue journal lives here
TMP_SUFFIX = ".tmp"


def output_error(root: str | os.PathLike, error: OSError) -> OutputError:
    """What a failed write to the output says: which output, what the system said, and how
    much room its filesystem has left."""
    try:
        st = os.statvfs(root if os.path.exists(root) else os.path.dirname(os.path.abspath(root)))
        free = f"{st.f_bavail * st.f_frsize:,} bytes free on its filesystem"
    except OSError:
        free = "its free space unknown"
    return OutputError(f"output {root}: cannot write ({error.strerror or error}; {free}): make "
                       f"room or fix the filesystem, then run again: every job that did not "
                       f"land is rendered then, once")


def _guarded(method):
    """Turn an OSError of the output into OutputError (raycollect/errors.py)."""
    @functools.wraps(method)
    def wrapper(self, *args, **kwargs):
        try:
            return method(self, *args, **kwargs)
        except OutputError:
            raise
        except OSError as e:
            raise output_error(self.root, e) from e
    return wrapper


def read_manifest(root: str | os.PathLike, name: str = MANIFEST) -> list[dict]:
    path = Path(root) / name
    if not path.exists():
        return []
    with open(path, encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def output_status(root: str | os.PathLike) -> dict:
    """What `raycollect status --out` prints: this output's frames, failures and passes, and
    what its queue journal holds (jobs of earlier runs included)."""
    from .errors import RaycollectError
    from .files import PASS_NAMES
    from .journal import Journal

    root = Path(root)
    journal = root / STATE_DIR / "queue.sqlite"
    if not (root / MANIFEST).is_file() and not journal.is_file():
        raise RaycollectError(f"{root} is not a raycollect output (no {MANIFEST} and no "
                              f"{STATE_DIR}/queue.sqlite in it)")
    lines = read_manifest(root)
    out = {"out": str(root), "done": len(lines), "failed": len(read_manifest(root, FAILURES)),
           "passes": [PASS_NAMES[k] for k in passes(lines)]}
    if journal.is_file():
        j = Journal(journal)
        try:
            out["journal"] = j.counts()
        finally:
            j.close()
    return out


def passes(lines: list[dict]) -> list[str]:
    """The passes (file kinds) that manifest lines hold, in a fixed order."""
    seen = set()
    for line in lines:
        seen.update(line.get("files", {}))
    return [k for k in SUFFIXES if k in seen]


def _thumbnail(kind: str, array: np.ndarray, width: int) -> Image.Image:
    """A picture of one pass: RGB as is, depth as grey (near bright), ids as colours."""
    if kind == "depth":
        # Inverse depth between robust bounds: near detail stays visible when a ground plane
        # runs to the horizon.
        hit = array > 0
        grey = np.zeros(array.shape, np.uint8)
        if hit.any():
            inv = 1.0 / array[hit].astype(np.float64)
            lo, hi = np.percentile(inv, [2, 98])
            grey[hit] = (55 + 200 * np.clip((inv - lo) / max(hi - lo, 1e-12), 0, 1)).astype(np.uint8)
        im = Image.fromarray(grey).convert("RGB")
    elif kind == "mask":
        ids = array.astype(np.uint32)
        # A fixed, well-spread colour per id (coprime multipliers per channel); 0 stays black.
        rgb = np.stack([(ids * 97) % 256, (ids * 181 + 60) % 256, (ids * 47 + 120) % 256], -1)
        rgb[ids == 0] = 0
        im = Image.fromarray(rgb.astype(np.uint8))
    else:
        im = Image.fromarray(array)
    return im.resize((width, max(1, round(im.height * width / im.width))), Image.NEAREST)


def _draw_labels(im: Image.Image, objects: dict, scale: float) -> None:
    """Each labelled object's box and id on the RGB thumbnail (what a detector trains on)."""
    draw = ImageDraw.Draw(im)
    for obj in objects.values():
        if not obj.get("bbox"):
            continue
        x, y, w, h = (v * scale for v in obj["bbox"])
        i = obj["id"]
        colour = ((i * 97) % 256, (i * 181 + 60) % 256, (i * 47 + 120) % 256)
        draw.rectangle([x, y, x + max(w - 1, 0), y + max(h - 1, 0)], outline=colour)
        draw.text((x + 1, y + 1), str(i), fill=colour)


class OutputWriter:
    @_guarded
    def __init__(self, out: str | os.PathLike):
        self.root = Path(out)
        self.frames = self.root / FRAMES
        self.frames.mkdir(parents=True, exist_ok=True)
        self._root_dir, self._frames_dir = str(self.root), str(self.frames)
        self.done: set[str] = set()
        self._repair()
        # Raw appends: a batch's lines go in one write, and a write the disk cut short is
        # undone (truncated back), so the manifest never holds part of a line.
        self._manifest = os.open(self.root / MANIFEST, os.O_WRONLY | os.O_APPEND | os.O_CREAT,
                                 0o644)

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

    # The per-frame path runs for every frame a cluster renders, on one driver: plain-string
    # paths and one manifest write per batch (scripts/bench.py D1 measures it).
    @_guarded
    def stage(self, r: Result, token: str) -> list[tuple[str, str, str]]:
        """Write the frame's encoded files under temporary names: (kind, tmp, final)."""
        staged = []
        folder = self._frames_dir
        for kind, data in r.files.items():
            name = f"{r.job_id}{suffix(kind, data)}"
            tmp = f"{folder}/.{name}.{token}{TMP_SUFFIX}"
            with open(tmp, "wb") as f:
                f.write(data)
            staged.append((kind, tmp, f"{folder}/{name}"))
        return staged

    @_guarded
    def commit_many(self, items: list[tuple[Result, list[tuple[str, str, str]]]]) -> None:
        """Rename each frame's staged files into place, then record the frames in the
        manifest with one write: a job is done once its line is there (a crash before that
        leaves renamed files that the next open removes, and the queue hands the job out
        again when the output lacks it)."""
        lines = []
        for r, staged in items:
            files = {}
            for kind, tmp, final in staged:
                os.replace(tmp, final)
                files[kind] = f"{FRAMES}/{final.rsplit('/', 1)[1]}"
            r.path = f"{self._root_dir}/{files['image']}" if "image" in files else None
            line = {"job_id": r.job_id, "params": r.params, "camera": r.camera, "files": files,
                    "worker": r.worker, "node": r.node, "attempt": r.attempt,
                    "timings": r.timings, "finished": time.time()}
            if r.instances is not None:
                line["instances"] = r.instances
            if r.objects is not None:
                line["objects"] = r.objects
            lines.append(json.dumps(line) + "\n")
        self._append("".join(lines).encode("utf-8"))
        self.done.update(r.job_id for r, _ in items)

    def _append(self, data: bytes) -> None:
        end = os.lseek(self._manifest, 0, os.SEEK_END)
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(self._manifest, view):]
        except OSError:
            os.ftruncate(self._manifest, end)
            raise

    @staticmethod
    def discard(staged: list[tuple[str, str, str]]) -> None:
        for _, tmp, _ in staged:
            try:
                os.unlink(tmp)
            except FileNotFoundError:
                pass

    @_guarded
    def write_failures(self, failures: list[dict]) -> None:
        path = self.root / FAILURES
        tmp = path.with_name(path.name + TMP_SUFFIX)
        with open(tmp, "w", encoding="utf-8") as f:
            for rec in failures:
                f.write(json.dumps(rec, default=str) + "\n")
        os.replace(tmp, path)

    @_guarded
    def contact_sheet(self, max_frames: int = C.CONTACT_SHEET_MAX_FRAMES) -> Path | None:
        """A grid of an evenly spaced sample of the frames, in manifest order. Each cell shows
        every pass the dataset holds side by side (RGB, depth, instance mask), under a title
        line that names them; with labels, the RGB shows each object's box and id."""
        lines = read_manifest(self.root)
        if not lines:
            return None
        step = max(1, math.ceil(len(lines) / max_frames))
        sample = lines[::step][:max_frames]
        kinds = [k for k in SUFFIXES if k in sample[0]["files"]]
        tw = C.CONTACT_SHEET_THUMB_WIDTH
        cells = []
        for line in sample:
            parts = [_thumbnail(kind, load(self.root / line["files"][kind], kind), tw)
                     for kind in kinds if kind in line["files"]]
            if line.get("objects"):
                _draw_labels(parts[0], line["objects"], tw / line["camera"]["width"])
            cell = Image.new("RGB", (tw * len(kinds), max(p.height for p in parts)), (24, 24, 24))
            for i, part in enumerate(parts):
                cell.paste(part, (i * tw, 0))
            cells.append(cell)
        cols = math.ceil(math.sqrt(len(cells) * (1 if len(kinds) == 1 else 0.5)))
        rows = math.ceil(len(cells) / cols)
        cw, ch = cells[0].width + C.CONTACT_SHEET_GAP, max(c.height for c in cells) + C.CONTACT_SHEET_GAP
        title = C.CONTACT_SHEET_TITLE_HEIGHT
        sheet = Image.new("RGB", (cols * cw, rows * ch + title), (24, 24, 24))
        ImageDraw.Draw(sheet).text((4, 4), f"{len(lines)} frames; passes per cell: "
                                   f"{', '.join(PASS_NAMES[k] for k in kinds)}"
                                   f"{' (depth: near bright)' if 'depth' in kinds else ''}",
                                   fill=(230, 230, 230))
        for i, cell in enumerate(cells):
            sheet.paste(cell, ((i % cols) * cw, (i // cols) * ch + title))
        path = self.root / CONTACT_SHEET
        sheet.save(path)
        return path

    @_guarded
    def close(self) -> None:
        fd, self._manifest = self._manifest, None
        if fd is not None:
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
