"""A damaged queue journal: found before a run starts, rebuilt from the manifest.

The journal (OUT/.raycollect/queue.sqlite) is the queue's memory across runs; the manifest is
the record of what is done. A journal cut short (a power loss, a full disk, a copy that
stopped half-way) or overwritten is refused before Ray starts, with the file named and the
way out: `raycollect repair OUT` moves it aside and writes a new one from the manifest: every
job with a line is done (its params, attempt and instance ids as recorded), everything else is
simply not there, so the next run submits it again and renders exactly what is missing.
"""

from __future__ import annotations

import json
import logging
import sqlite3
import time
from pathlib import Path

from ..errors import JournalDamaged, RaycollectError
from ..jobs import JobState
from .store import journal_path

log = logging.getLogger(__name__)

SQLITE_MAGIC = b"SQLite format 3\x00"


# Every run checks its journal before it starts: a full check reads every page, so it is
# done only up to this size; past it, the header's own page count against the file's size
# (what a cut-short file fails) is the check, and the queue reads the rest as it loads.
FULL_CHECK_LIMIT = 64 * 2**20


def _header_problem(path: Path) -> str | None:
    """What SQLite's 100-byte header says is wrong with the file, if anything."""
    with open(path, "rb") as f:
        head = f.read(100)
    size = path.stat().st_size
    if not size:
        return None
    if head[:len(SQLITE_MAGIC)] != SQLITE_MAGIC:
        return "file is not a database"
    page_size = int.from_bytes(head[16:18], "big")
    page_size = 65536 if page_size == 1 else page_size
    pages = int.from_bytes(head[28:32], "big")
    # The page count is valid while the change counter matches "version-valid-for".
    if head[24:28] == head[92:96] and pages * page_size > size:
        return f"cut short: {size:,} bytes of {pages * page_size:,}"
    return None


def check_journal(path: Path, out: str | Path) -> None:
    """JournalDamaged naming the file and `raycollect repair` if SQLite cannot read it."""
    if not path.exists():
        return
    try:
        problem = _header_problem(path)
        if problem is None and path.stat().st_size <= FULL_CHECK_LIMIT:
            db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
            try:
                problems = [row[0] for row in db.execute("PRAGMA quick_check")]
            finally:
                db.close()
            problem = None if problems == ["ok"] else "; ".join(problems[:3])
        if problem is not None:
            raise sqlite3.DatabaseError(problem)
    except sqlite3.DatabaseError as e:
        raise JournalDamaged(
            f"the queue journal {path} is damaged ({e}): run `raycollect repair {out}` to "
            f"rebuild it from {Path(out) / 'manifest.jsonl'} (done jobs stay done; the next "
            f"run renders the rest)") from None


def repair(out: str | Path) -> dict:
    """Rebuild OUT's queue journal from its manifest; returns what was done."""
    from ..journal import JobUpdate, Journal
    from ..labels import class_key
    from .manifest import MANIFEST, parse_lines

    root = Path(out)
    manifest = root / MANIFEST
    if not manifest.is_file():
        raise RaycollectError(f"{out} is not a raycollect output: it has no {MANIFEST}")
    path = journal_path(root)
    moved = None
    stamp = time.strftime("%Y%m%d-%H%M%S")
    for suffix in ("", "-wal", "-shm"):
        part = path.with_name(path.name + suffix)
        if part.exists():
            target = part.with_name(f"{part.name}.damaged-{stamp}")
            part.rename(target)
            moved = moved or target
    lines = parse_lines(manifest.read_text(encoding="utf-8"), str(manifest))
    instances: dict[str, int] = {}
    for line in lines:
        instances.update(line.get("instances") or {})
        # Class ids live in the same registry (raycollect/labels.py)
        instances.update({class_key(n): i for n, i in (line.get("classes") or {}).items()})
    journal = Journal(path)
    try:
        journal.write(((m["job_id"], json.dumps(m["params"])) for m in lines),
                      (JobUpdate(m["job_id"], JobState.DONE, int(m.get("attempt", 1)), None,
                                 None, None) for m in lines))
        journal.add_instances(sorted(((k, int(i)) for k, i in instances.items() if i),
                                     key=lambda kv: kv[1]))
    finally:
        journal.close()
    log.info("rebuilt %s from %d manifest lines (%d instance ids)%s", path, len(lines),
             len(instances), f"; the old journal is {moved}" if moved else "")
    return {"journal": str(path), "done": len(lines), "instances": len(instances),
            "moved": str(moved) if moved else None}
