"""The queue's durable state: an embedded SQLite database (WAL).

Only what must survive a crash is written: submitted jobs, completions and attempts that
ended. Leases are never written; after a restart every leased job is pending again, and the
new incarnation's tokens cannot match an old lease. WAL with synchronous=NORMAL survives
the death of the process (what `ray.kill` does) without an fsync per commit.
"""

from __future__ import annotations

import errno
import json
import os
import sqlite3
from pathlib import Path
from typing import Any, Iterable, Iterator, NamedTuple

from .jobs import JobState

SQLITE_PARAMS_CHUNK = 500  # ids bound in one SQLite query (its limit on bound parameters)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS jobs (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    id TEXT NOT NULL UNIQUE,
    params TEXT NOT NULL,
    state TEXT NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    error TEXT,
    result TEXT,
    done_token TEXT
);
CREATE TABLE IF NOT EXISTS instances (key TEXT PRIMARY KEY, id INTEGER NOT NULL UNIQUE);
"""



class StoredJob(NamedTuple):
    """A job as the journal holds it between runs (its params and result stay there)."""

    job_id: str
    state: JobState
    attempts: int
    error: str | None
    done_token: str | None


class JobUpdate(NamedTuple):
    """A job's new state, written with the next flush."""

    job_id: str
    state: JobState
    attempts: int
    error: str | None
    result: Any
    done_token: str | None

class Journal:
    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        # isolation_level=None: we open transactions ourselves, one per batch of changes.
        self._db = sqlite3.connect(str(self.path), isolation_level=None, check_same_thread=False)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.executescript(_SCHEMA)

    def meta(self, key: str, default: str) -> str:
        """The stored value of `key`, storing `default` first if there is none."""
        self._db.execute("INSERT OR IGNORE INTO meta VALUES (?, ?)", (key, default))
        return self._db.execute("SELECT value FROM meta WHERE key=?", (key,)).fetchone()[0]

    def load(self) -> Iterator[StoredJob]:
        """Every job, in submit order: params and results stay here, read with params() when
        needed."""
        rows = self._db.execute(
            "SELECT id, state, attempts, error, done_token FROM jobs ORDER BY seq")
        for job_id, state, attempts, error, done_token in rows:
            yield StoredJob(job_id, JobState(state), attempts, error, done_token)

    def params(self, job_ids: list[str]) -> dict[str, dict]:
        out = {}
        for i in range(0, len(job_ids), SQLITE_PARAMS_CHUNK):
            chunk = job_ids[i:i + SQLITE_PARAMS_CHUNK]
            rows = self._db.execute(f"SELECT id, params FROM jobs WHERE id IN "
                                    f"({','.join('?' * len(chunk))})", chunk)
            out.update((job_id, json.loads(params)) for job_id, params in rows)
        return out

    def write(self, inserts: Iterable[tuple[str, str]], updates: Iterable[JobUpdate]) -> None:
        """One transaction: new jobs (id, params_json) and changed jobs. A full disk (sqlite's
        "database or disk is full", which the commit or any write may meet) or a failing one
        raises OSError (ENOSPC, EIO) naming the journal, with nothing of the transaction
        written: the caller says which output it is (raycollect/queue.py)."""
        db = self._db
        db.execute("BEGIN")
        try:
            db.executemany("INSERT OR IGNORE INTO jobs (id, params, state) VALUES (?, ?, 'pending')",
                           inserts)
            db.executemany(
                "UPDATE jobs SET state=?, attempts=?, error=?, result=?, done_token=? WHERE id=?",
                ((u.state.value, u.attempts, u.error,
                  None if u.result is None else json.dumps(u.result, default=str),
                  u.done_token, u.job_id) for u in updates))
            db.execute("COMMIT")
        except BaseException as e:
            if db.in_transaction:
                db.execute("ROLLBACK")
            code = _os_error(e)
            if code is not None:
                raise OSError(code, os.strerror(code), str(self.path)) from e
            raise

    def counts(self) -> dict[str, int]:
        """Jobs by state, as last written (a job leased when its queue died shows as pending:
        that is what it becomes on recovery)."""
        out = {s.value: 0 for s in JobState}
        for state, n in self._db.execute("SELECT state, COUNT(*) FROM jobs GROUP BY state"):
            out[state] = n
        out["pending"] += out.pop("leased", 0)
        return out

    def instances(self) -> dict[str, int]:
        """The instance ids given out so far: scene element key -> id."""
        return dict(self._db.execute("SELECT key, id FROM instances"))

    def add_instances(self, pairs: Iterable[tuple[str, int]]) -> None:
        self._db.executemany("INSERT OR IGNORE INTO instances VALUES (?, ?)", pairs)

    def close(self) -> None:
        self._db.close()


def _os_error(error: BaseException) -> int | None:
    """The errno of a sqlite error that is the filesystem's (full, failing), else None."""
    if isinstance(error, sqlite3.OperationalError):
        text = str(error).lower()
        if "disk is full" in text:
            return errno.ENOSPC
        if "disk i/o error" in text:
            return errno.EIO
    return None
