"""A run's output, whatever kind it is: `open_output(config)` takes the output's lock and
checks its queue journal (both before Ray starts), opens its writer, and says where the
queue's journal lives; `Output.finish` writes what a run ends with, `Output.close` lets go.

The writers follow one declared interface (writer.py's `Writer`) and the locks one base
(lock.py's `Lock`), so the driver never asks which kind of output it has. A run without an
output gets a scratch folder for its journal, removed at close.
"""

from __future__ import annotations

import logging
import shutil
import tempfile
import time
from pathlib import Path

from .. import constants as C
from ..errors import OutputError, StoreError
from ..result import Result
from . import metadata
from .lock import Lock, OutputLock, StoreLock
from .repair import check_journal
from .store import Location, journal_path
from ..errors import output_error
from .writer import Writer, writer_for

log = logging.getLogger(__name__)


class Output:
    """What a run holds of its output: `writer` (None without an output), `journal` (the
    queue journal's path) and `location` (a store output's, where Results read their arrays:
    its frames come back without their bytes)."""

    def __init__(self, writer: Writer | None, lock: Lock | None, journal: Path,
                 location: Location | None = None, scratch: str | None = None):
        self.writer, self.lock, self.journal = writer, lock, journal
        self.location, self._scratch = location, scratch

    @property
    def url(self) -> str | None:
        return None if self.writer is None else self.writer.url

    @property
    def recorded(self) -> set[str]:
        """The job ids the output holds (it grows as frames are recorded)."""
        return set() if self.writer is None else self.writer.done

    def record(self, queue, frames: list[Result]) -> tuple[list[Result], dict | None]:
        """The record path (docs/design.md): stage the frames' files, complete their leases
        at the queue in one call, and commit the ones it accepted. A refused lease is a stale
        attempt: its frame never lands. Returns the recorded results and the queue's stats
        as of that call."""
        if not frames:
            return [], None
        writer = self.writer
        t0 = time.perf_counter()
        staged = []
        for result in frames:  # the Results the workers made (raycollect/render/worker.py)
            lease = result.lease
            result.params = lease.params  # sent once, in the lease
            result.location = self.location
            # Already in the output (a rerun over a journal that lost the completion): the
            # lease is completed below, the frame is not written again.
            duplicate = writer is not None and lease.job_id in writer.done
            pairs = writer.stage(result, lease.token) if writer and not duplicate else []
            staged.append((result, pairs, duplicate))
        accepted, stats = queue.complete_and_count([f.lease for f in frames],
                                                   [{"worker": f.worker} for f in frames])
        out, commits = [], []
        write_s = (time.perf_counter() - t0) / len(frames)
        for (result, pairs, duplicate), ok in zip(staged, accepted):
            if not ok or duplicate:
                if writer is not None:
                    writer.discard(result, pairs)  # a store's objects of this attempt go too
                continue
            if writer is not None:
                result.timings["write_s"] = write_s
                commits.append((result, pairs))
            result.lease = None  # completed: its token is no use to the caller
            out.append(result)
        if commits:
            writer.commit_many(commits)
        return out, stats

    def finish(self, failures: list[dict], config, lost: bool) -> str | None:
        """Write failures.jsonl, the contact sheet and dataset.json, then close the writer
        (`lost`: Writer.close's). Returns where the contact sheet is. Errors are logged: what
        stopped the run says it already."""
        sheet = None
        try:
            self.writer.write_failures(failures)
            sheet = self.writer.contact_sheet()
            metadata.write(self.writer.loc, config)
        except (OutputError, StoreError, OSError) as e:
            log.error("raycollect: %s", e)
        finally:
            try:
                self.writer.close(lost=lost)
            except (OutputError, StoreError) as e:
                log.error("raycollect: %s", e)
        return sheet

    def close(self) -> None:
        if self.lock is not None:
            self.lock.release()
        if self._scratch:
            shutil.rmtree(self._scratch, ignore_errors=True)


def open_output(config) -> Output:
    """Hold the run's output (one writer per output: lock.py). Raises OutputBusy while
    another run holds it, JournalDamaged when its journal is, OutputError when it cannot be
    written."""
    if config.out is None:
        scratch = tempfile.mkdtemp(prefix="raycollect-")
        return Output(None, None, journal_path(scratch), scratch=scratch)
    if config.to_store:
        lock = StoreLock(config.location())
        lock.acquire()
    else:
        lock = OutputLock(Path(config.out) / C.STATE_DIR)
        try:
            lock.acquire()
        except OSError as e:
            raise output_error(config.out, e) from e
    try:
        if not config.to_store:
            check_journal(journal_path(config.out), config.out)
        writer = writer_for(config)
        writer.journal_path.parent.mkdir(parents=True, exist_ok=True)
    except BaseException:
        lock.release()
        raise
    return Output(writer, lock, writer.journal_path,
                  location=writer.loc if config.to_store else None)
