"""Writing an output: the driver's side of recording frames (reading is
raycollect/output/manifest.py, the contact sheet raycollect/output/sheet.py).

The manifest is the record of what is done: a job is in the output exactly when its line is
there. Three writers, one declared interface (`Writer`; `writer_for` picks one):

- `OutputWriter`, a local directory, one file per pass: frames are written under a temporary
  name and renamed only after the queue accepted the frame's lease, so a crash leaves either
  nothing or a whole file, and a frame of a stale attempt never lands.
- `ShardWriter`, a local directory with `shard_size`: accepted frames are appended to the
  run's open WebDataset shard; their lines go into the manifest when the shard is closed
  (full, or at the end of the run), so a line never names a shard that is not whole.
- `StoreWriter`, an object store: the workers wrote the frames' objects (or shards) under
  attempt-unique names; the driver records the accepted ones in manifest parts and deletes
  the refused attempts' objects.

The two local writers share `LocalWriter` (the manifest, its crash repair, failures and the
contact sheet, through the output's LocalLocation). Opening an output again repairs what a
crash can leave behind.
"""

from __future__ import annotations

import functools
import json
import logging
import os
import secrets
import time
from pathlib import Path
from typing import Protocol

from .. import constants as C
from . import shards as shard_files, store
from ..errors import OutputError, output_error
from .files import suffix
from ..result import Result
from .manifest import FAILURES, MANIFEST, PARTS, parse_lines, read_manifest

# A store output's manifest is written in parts: one every this many seconds or lines.
STORE_PART_SECONDS = 5.0
STORE_PART_LINES = 10_000

log = logging.getLogger(__name__)

FRAMES = "frames"
TMP_SUFFIX = ".tmp"


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


def manifest_line(r: Result, files: dict, shard: str | None = None) -> dict:
    """A frame's manifest line: `files` are its files' keys in the output, or with `shard`
    the names of its members in that shard."""
    line = {"job_id": r.job_id, "params": r.params, "camera": r.camera, "files": files,
            "worker": r.worker, "node": r.node, "attempt": r.attempt, "timings": r.timings,
            "finished": time.time()}
    if shard is not None:
        line["shard"] = shard
    if r.instances is not None:
        line["instances"] = r.instances
    if r.objects is not None:
        line["objects"] = r.objects
    if r.classes is not None:
        line["classes"] = r.classes
    return line


def sample_record(r: Result, params: dict | None = None) -> dict:
    """What a shard holds as <key>.json beside a frame's files."""
    return {"job_id": r.job_id, "params": r.params if params is None else params,
            "camera": r.camera,
            **({"instances": r.instances} if r.instances is not None else {}),
            **({"objects": r.objects} if r.objects is not None else {}),
            **({"classes": r.classes} if r.classes is not None else {})}


class Writer(Protocol):
    """What the driver records frames through, whatever the output is. A frame is staged
    (written where it can still be undone) before its lease is completed, then committed
    (recorded in the manifest) or discarded (a refused attempt, or a job already there)."""

    url: str
    done: set[str]  # job ids the output holds
    loc: store.Location

    @property
    def journal_path(self) -> Path:
        """Where the queue's journal of this output lives (raycollect/output/store.py)."""

    def stage(self, r: Result, token: str) -> list:
        """Write what must exist before the lease is completed; returns what commit_many
        and discard take back."""

    def commit_many(self, items: list[tuple[Result, list]]) -> None:
        """Record the accepted frames: a job is done once its manifest line is there."""

    def discard(self, r: Result, staged: list) -> None:
        """A frame that is not recorded: what this attempt wrote goes."""

    def write_failures(self, failures: list[dict]) -> None: ...

    def contact_sheet(self, max_frames: int = C.CONTACT_SHEET_MAX_FRAMES) -> str | None: ...

    def close(self, lost: bool = False) -> None:
        """Record what is left and let go. `lost`: a worker died or a lease expired during
        the run, so objects a worker wrote may never have been recorded."""


def writer_for(config) -> Writer | None:
    """The writer of the run's output (None: no output)."""
    if config.out is None:
        return None
    if config.to_store:
        return StoreWriter(config.location(), config.shard_size)
    if config.shard_size:
        return ShardWriter(config.out, config.shard_size)
    return OutputWriter(config.out)


class LocalWriter:
    """What both local writers share: the manifest, appended to in whole lines, its crash
    repair, failures and the contact sheet."""

    @_guarded
    def __init__(self, out: str | os.PathLike):
        self.root = Path(out)
        self.loc = store.LocalLocation(self.root)
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
        return store.journal_path(self.root)

    @property
    def url(self) -> str:
        return self.loc.url

    def _repair(self) -> None:
        path = self.root / MANIFEST
        if path.exists():
            data = path.read_bytes()
            if data and not data.endswith(b"\n"):  # a line cut short by a crash
                data = data[:data.rfind(b"\n") + 1]
                path.write_bytes(data)
                log.warning("%s: dropped a partial last line left by a crash", path)
            self.done.update(line["job_id"] for line in parse_lines(data.decode("utf-8"), str(path)))
        for f in self.frames.iterdir():
            job_id = f.name.split(".", 1)[0]
            # Temp files, and frames renamed just before a crash cut the manifest line: the
            # job is not done, so its file must not be counted as output.
            if f.name.endswith(TMP_SUFFIX) or f.name.startswith(".") or job_id not in self.done:
                f.unlink()

    def _append(self, data: bytes) -> None:
        end = os.lseek(self._manifest, 0, os.SEEK_END)
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(self._manifest, view):]
        except OSError:
            os.ftruncate(self._manifest, end)
            raise

    @_guarded
    def write_failures(self, failures: list[dict]) -> None:
        self.loc.write(FAILURES, "".join(json.dumps(rec, default=str) + "\n"
                                         for rec in failures).encode("utf-8"))

    @_guarded
    def contact_sheet(self, max_frames: int = C.CONTACT_SHEET_MAX_FRAMES) -> str | None:
        from .sheet import contact_sheet

        return contact_sheet(self.loc, max_frames)

    @_guarded
    def close(self, lost: bool = False) -> None:  # its workers wrote nothing to it
        fd, self._manifest = self._manifest, None
        if fd is not None:
            try:
                os.fsync(fd)
            finally:
                os.close(fd)


class OutputWriter(LocalWriter):
    """A local output, one file per pass."""

    # The per-frame path runs for every frame a cluster renders, on one driver: plain-string
    # paths and one manifest write per batch (scripts/bench/bench.py D1 measures it).
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
            lines.append(json.dumps(manifest_line(r, files)) + "\n")
        self._append("".join(lines).encode("utf-8"))
        self.done.update(r.job_id for r, _ in items)

    def discard(self, r: Result, staged: list[tuple[str, str, str]]) -> None:
        """A frame that is not recorded (a refused attempt, or a job already in the
        output): its staged files go."""
        for _, tmp, _ in staged:
            try:
                os.unlink(tmp)
            except FileNotFoundError:
                pass


class ShardWriter(LocalWriter):
    """A local output with shards: shards/<run>-<seq>.tar (and its .idx.json), each of up to
    `shard_size` frames, appended to by this driver as frames are accepted."""

    @_guarded
    def __init__(self, out: str | os.PathLike, shard_size: int):
        self.shard_size = shard_size
        self._run = secrets.token_hex(4)
        self._seq = 0
        self._open: tuple | None = None  # (key, file, TarBuilder, pending lines)
        super().__init__(out)
        (self.root / shard_files.SHARDS).mkdir(exist_ok=True)
        self._sweep_shards()

    def _sweep_shards(self) -> None:
        """Shards no manifest line names (a run that died before it closed them) go."""
        named = {line["shard"] for line in read_manifest(self.root) if line.get("shard")}
        folder = self.root / shard_files.SHARDS
        for f in folder.iterdir():
            key = f"{shard_files.SHARDS}/{f.name.removesuffix(shard_files.INDEX_SUFFIX)}"
            if key not in named:
                f.unlink()

    def stage(self, r: Result, token: str) -> list:
        return []  # nothing is written before the queue accepts the frame

    def discard(self, r: Result, staged: list) -> None:
        pass  # nothing was written

    @_guarded
    def commit_many(self, items: list[tuple[Result, list]]) -> None:
        for r, _ in items:
            if self._open is None:
                self._seq += 1
                key = f"{shard_files.SHARDS}/{self._run}-{self._seq:06d}.tar"
                f = open(self.root / key, "wb")
                self._open = (key, f, shard_files.TarBuilder(f), [])
            key, f, tb, pending = self._open
            names = tb.add_frame(r.job_id, r.files, sample_record(r))
            pending.append(manifest_line(r, names, key))
            self.done.add(r.job_id)
            if len(pending) >= self.shard_size:
                self._close_shard()

    def _close_shard(self) -> None:
        """Finish the open shard and its index, then record its frames: a line never names
        a shard that is not whole."""
        key, f, tb, pending = self._open
        self._open = None
        try:
            index = tb.finish()
            f.flush()
            os.fsync(f.fileno())
        finally:
            f.close()
        (self.root / (key + shard_files.INDEX_SUFFIX)).write_bytes(index)
        self._append("".join(json.dumps(line) + "\n" for line in pending).encode("utf-8"))

    @_guarded
    def close(self, lost: bool = False) -> None:
        if self._open is not None and self._manifest is not None:
            self._close_shard()
        super().close()


class StoreWriter:
    """An object store output. The workers wrote each frame's objects (frames/<job>.<attempt>
    <suffix>, or whole shards) before the driver heard of it; the driver records the accepted
    frames in manifest parts (manifest/<run>-<seq>.jsonl, written every STORE_PART_SECONDS or
    STORE_PART_LINES lines, and when the run ends) and deletes the objects of refused
    attempts. Opening the output again after a run that did not end cleanly deletes every
    object no manifest line names, and takes refused frames out of shards."""

    CLEAN = f"{C.STATE_DIR}/clean"

    def __init__(self, loc: store.StoreLocation, shard_size: int = 0):
        self.loc, self.shard_size = loc, shard_size
        self.root = loc.url
        self._run = secrets.token_hex(4)
        self._seq = 0
        self._pending: list[str] = []
        self._last_flush = time.monotonic()
        self._refused: dict[str, set[str]] = {}  # shard -> sample keys refused
        lines = read_manifest(loc)
        self.done: set[str] = {line["job_id"] for line in lines}
        if not loc.exists(self.CLEAN):
            self._sweep(lines)
        loc.delete([self.CLEAN])  # from now until close, a crash leaves it unclean

    @property
    def url(self) -> str:
        return self.loc.url

    @property
    def journal_path(self) -> Path:
        return store.journal_path(self.loc.url)

    def _sweep(self, lines: list[dict]) -> None:
        """What a run that did not end cleanly can leave: objects of frames never recorded
        (a worker's, or the driver's crash between accepting and recording), and frames of
        refused attempts in shards."""
        named = {f for line in lines if not line.get("shard") for f in line["files"].values()}
        orphans = [k for k in self.loc.list(FRAMES + "/") if k not in named]
        by_shard: dict[str, set[str]] = {}
        for line in lines:
            if line.get("shard"):
                by_shard.setdefault(line["shard"], set()).add(shard_files.sample_key(line["job_id"]))
        for key in self.loc.list(shard_files.SHARDS + "/"):
            tar = key.removesuffix(shard_files.INDEX_SUFFIX)
            if tar not in by_shard:
                orphans.append(key)
            elif key == tar:
                index = json.loads(self.loc.read(tar + shard_files.INDEX_SUFFIX))
                if {m.split(".", 1)[0] for m in index} - by_shard[tar]:
                    self._reseal(tar, by_shard[tar])
        if orphans:
            log.warning("%s: deleting %d objects of frames never recorded (a run that did "
                        "not end cleanly)", self.loc.url, len(orphans))
            self.loc.delete(orphans)

    def _reseal(self, tar: str, keep: set[str]) -> None:
        data, index = shard_files.keep_only(self.loc.read(tar), keep)
        self.loc.write(tar, data)
        self.loc.write(tar + shard_files.INDEX_SUFFIX, index)
        log.info("%s: %s rewritten without frames of refused attempts", self.loc.url, tar)

    def stage(self, r: Result, token: str) -> list:
        return []  # the worker wrote its objects already

    def discard(self, r: Result, staged: list) -> None:
        """A refused attempt, or a job already in the output: this attempt's objects go (a
        shard's member, when the run ends)."""
        if r.shard:
            self._refused.setdefault(r.shard, set()).add(shard_files.sample_key(r.job_id))
        elif r.keys:
            self.loc.delete(list(r.keys.values()))

    def commit_many(self, items: list[tuple[Result, list]]) -> None:
        for r, _ in items:
            self._pending.append(json.dumps(manifest_line(r, dict(r.keys or {}), r.shard)) + "\n")
            self.done.add(r.job_id)
        if len(self._pending) >= STORE_PART_LINES or \
                time.monotonic() - self._last_flush >= STORE_PART_SECONDS:
            self.flush()

    def flush(self) -> None:
        """Write the lines recorded since the last part as one more part."""
        self._last_flush = time.monotonic()
        if not self._pending:
            return
        self._seq += 1
        self.loc.write(f"{PARTS}/{self._run}-{self._seq:06d}.jsonl", "".join(self._pending).encode())
        self._pending = []

    def write_failures(self, failures: list[dict]) -> None:
        self.loc.write(FAILURES, "".join(json.dumps(f, default=str) + "\n"
                                         for f in failures).encode("utf-8"))

    def contact_sheet(self, max_frames: int = C.CONTACT_SHEET_MAX_FRAMES) -> str | None:
        from .sheet import contact_sheet

        self.flush()
        return contact_sheet(self.loc, max_frames)

    def close(self, lost: bool = False) -> None:
        """Record what is left, take refused frames out of shards, and mark the output
        clean. `lost`: a worker died or a lease expired during the run, so objects it
        wrote may never have been recorded: delete every object no line names."""
        self.flush()
        if lost:
            self._sweep(read_manifest(self.loc))  # refused shard members go with the rest
            self._refused = {}
        if self._refused:
            lines = read_manifest(self.loc)
            for tar in self._refused:
                keep = {shard_files.sample_key(line["job_id"]) for line in lines
                        if line.get("shard") == tar}
                self._reseal(tar, keep)
            self._refused = {}
        self.loc.write(self.CLEAN, b"")
