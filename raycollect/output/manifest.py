"""Reading an output, wherever it lives (a directory or an object store: store.py in this
folder): its manifest, its frames' files (one file per pass, or members of WebDataset
shards, shards.py) and its status.

The manifest is the record of what is done: a job is in the output exactly when its line
is there. A local output's manifest is manifest.jsonl. A store output's is manifest.jsonl
the parts runs write as they go (manifest/<run>-<seq>.jsonl, one object every few seconds:
a store has no append).
"""

from __future__ import annotations

import json
import logging
import os

import numpy as np

from .files import PASS_NAMES, SUFFIXES, decode
from .shards import IndexCache
from .store import Location, StoreLocation, journal_path, location

MANIFEST = "manifest.jsonl"
FAILURES = "failures.jsonl"
PARTS = "manifest"  # a store output's manifest parts


def as_location(out: str | os.PathLike | Location, storage_options: dict | None = None) -> Location:
    return out if isinstance(out, Location) else location(out, storage_options)


log = logging.getLogger(__name__)


def parse_lines(text: str | None, source: str = MANIFEST) -> list[dict]:
    """The whole lines of a manifest's text (a last line cut short by a crash is left out,
    with a warning naming `source`)."""
    lines = []
    for n, line in enumerate((text or "").splitlines()):
        if not line.strip():
            continue
        try:
            lines.append(json.loads(line))
        except ValueError:
            log.warning("%s: line %d is not whole JSON; left out", source, n + 1)
    return lines


def part_keys(loc: Location) -> list[str]:
    return loc.list(PARTS + "/") if isinstance(loc, StoreLocation) else []


def read_manifest(out, name: str = MANIFEST, storage_options: dict | None = None) -> list[dict]:
    """The output's manifest lines (of a store output: every part's, in order)."""
    loc = as_location(out, storage_options)
    lines = parse_lines(loc.read_text(name), name)
    if name == MANIFEST:
        for key in part_keys(loc):
            lines += parse_lines(loc.read_text(key), key)
    return lines


def passes(lines: list[dict]) -> list[str]:
    """The passes (file kinds) that manifest lines hold, in a fixed order."""
    seen = set()
    for line in lines:
        seen.update(line.get("files", {}))
    return [k for k in SUFFIXES if k in seen]


class FrameReader:
    """A frame's files from its manifest line: a file of the output, or a shard's member."""

    def __init__(self, out, storage_options: dict | None = None):
        self.loc = as_location(out, storage_options)
        self._shards = IndexCache(self.loc)

    def bytes(self, line: dict, kind: str) -> bytes:
        name = line["files"][kind]
        if line.get("shard"):
            return self._shards.read(line["shard"], name)
        return self.loc.read(name)

    def load(self, line: dict, kind: str) -> np.ndarray:
        return decode(kind, self.bytes(line, kind))


def finished(out, storage_options: dict | None = None) -> tuple[Location, FrameReader, list[dict]]:
    """An output an export reads: (its Location, a FrameReader, its manifest lines).
    Raises RaycollectError when it has no finished frame."""
    from ..errors import RaycollectError

    loc = as_location(out, storage_options)
    lines = read_manifest(loc)
    if not lines:
        raise RaycollectError(f"{out} has no finished frames ({MANIFEST} is missing or empty)")
    return loc, FrameReader(loc), lines


def output_status(out, storage_options: dict | None = None) -> dict:
    """What `raycollect status --out` prints: this output's frames, failures, passes and
    shards, and what its queue journal holds (jobs of earlier runs included)."""
    from ..errors import RaycollectError
    from ..journal import Journal

    loc = as_location(out, storage_options)
    local = not isinstance(loc, StoreLocation)
    journal = journal_path(loc.url) if local else None
    if not loc.exists(MANIFEST) and not part_keys(loc) and not (journal and journal.is_file()):
        raise RaycollectError(f"{loc.url} is not a raycollect output (no {MANIFEST}"
                              f"{'' if not local else f' and no {journal.relative_to(loc.url)}'}"
                              " in it)")
    lines = read_manifest(loc)
    out_ = {"out": loc.url, "done": len(lines), "failed": len(read_manifest(loc, FAILURES)),
            "passes": [PASS_NAMES[k] for k in passes(lines)]}
    shards = {line["shard"] for line in lines if line.get("shard")}
    if shards:
        out_["shards"] = len(shards)
    if journal and journal.is_file():
        j = Journal(journal)
        try:
            out_["journal"] = j.counts()
        finally:
            j.close()
    return out_
