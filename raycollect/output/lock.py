"""One writer per output: a run holds OUT/.raycollect/lock while it writes OUT, a folder
(`OutputLock`) or an object store (`StoreLock`), both a `Lock`.

Two runs writing one output would each render every job and append it to the manifest (both
exit 0, every job twice). So a run takes the output's lock before anything else, and a second
run, from another process or another host on a shared filesystem, is refused at once with the
holder's host, pid and start time.

The lock is a file created with O_EXCL (atomic on local filesystems and NFSv3+), holding the
holder's host, pid, start time and a random token. The holder touches it every
LOCK_HEARTBEAT seconds. A lock is stale, and the next run takes it over without asking, when
its holder is a process of this host that no longer exists, or when its heartbeat is older
than LOCK_STALE (a holder on another host that died, or lost its mount). Taking over renames
the stale lock away first: of two runs that find the same stale lock, one rename succeeds,
and the other sees the new holder's lock and is refused.

An object store has no create-if-absent, so `StoreLock` writes its record (with the heartbeat
time in it: objects have no mtime to touch) and reads it back LOCK_SETTLE later: of two runs
racing for it, the one whose token is not there is refused.
"""

from __future__ import annotations

import json
import logging
import os
import secrets
import socket
import threading
import time
from abc import ABC, abstractmethod
from datetime import datetime, timezone
from pathlib import Path

from .. import constants as C
from ..browser import _alive  # is a process of this host still there
from ..errors import OutputBusy, StoreError

LOCK_ATTEMPTS = 5  # takeovers raced and lost before giving up
# A store output's lock is written, then read back this much later: of two runs racing for
# it, the one whose token is not there is refused (an object store has no create-if-absent).
LOCK_SETTLE = 1.0

log = logging.getLogger(__name__)

LOCK_NAME = "lock"


class Lock(ABC):
    """What both locks share: the holder's record (host, pid, start time, a random token),
    when a lock is stale, the refusal naming the holder, the heartbeat and the release.
    A lock says how it reads, touches and removes its record, and how it is taken."""

    where: str  # the lock, for messages

    def __init__(self, heartbeat: float = C.LOCK_HEARTBEAT, stale_after: float = C.LOCK_STALE):
        self.heartbeat, self.stale_after = heartbeat, stale_after
        self.token = secrets.token_hex(8)
        self.since = datetime.now(timezone.utc).isoformat(timespec="seconds")
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # --- what each lock says for itself ---------------------------------------------------
    @abstractmethod
    def acquire(self) -> None:
        """Take the lock, or raise OutputBusy naming its holder."""

    @abstractmethod
    def _read(self) -> str | None:
        """The lock's record as text, or None without one."""

    @abstractmethod
    def _age(self, holder: dict) -> float | None:
        """Seconds since the holder's last heartbeat, or None when the lock is gone."""

    @abstractmethod
    def _touch(self) -> None:
        """Renew the holder's heartbeat."""

    @abstractmethod
    def _remove(self) -> None:
        """Delete the lock's record."""

    # --- shared ---------------------------------------------------------------------------
    def _record(self) -> dict:
        return {"host": socket.gethostname(), "pid": os.getpid(), "token": self.token,
                "since": self.since}

    def holder(self) -> dict | None:
        """What the lock says, or None without one (a lock being written reads as {})."""
        text = self._read()
        if text is None:
            return None
        try:
            return json.loads(text)
        except ValueError:
            return {}

    def _stale(self, holder: dict) -> str | None:
        """Why the lock is stale, or None while its holder may be alive."""
        age = self._age(holder)
        if age is None:
            return "gone"
        if holder.get("host") == socket.gethostname() and isinstance(holder.get("pid"), int) \
                and not _alive(holder["pid"]):
            return f"process {holder['pid']} is gone"
        if age > self.stale_after:
            return f"no heartbeat for {age:.0f} s"
        return None

    def _busy(self, output, holder: dict) -> OutputBusy:
        return OutputBusy(
            f"output {output} is being written by another run: "
            f"host {holder.get('host', '?')}, pid {holder.get('pid', '?')}, since "
            f"{holder.get('since', '?')} (lock {self.where}); wait for it to "
            f"finish, or stop it. A lock whose run died is taken over by the "
            f"next run (at once on the same host, after {self.stale_after:.0f} s "
            f"without a heartbeat from another host)")

    def _held(self) -> None:
        self._thread = threading.Thread(target=self._beat, name="raycollect-lock", daemon=True)
        self._thread.start()

    def _beat(self) -> None:
        while not self._stop.wait(self.heartbeat):
            try:
                self._touch()
            except (OSError, StoreError) as e:  # a full or lost output: the run will hear of it
                log.warning("%s: heartbeat failed: %s", self.where, e)

    def release(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        try:
            holder = self.holder()
            if holder and holder.get("token") == self.token:
                self._remove()
        except StoreError as e:
            log.warning("%s: could not release the lock: %s", self.where, e)

    def __enter__(self) -> "Lock":
        self.acquire()
        return self

    def __exit__(self, *exc) -> None:
        self.release()


class OutputLock(Lock):
    """`with OutputLock(state_dir):` holds a folder output while the block runs."""

    def __init__(self, state_dir: str | os.PathLike, heartbeat: float = C.LOCK_HEARTBEAT,
                 stale_after: float = C.LOCK_STALE):
        super().__init__(heartbeat, stale_after)
        self.path = Path(state_dir) / LOCK_NAME
        self.where = str(self.path)

    def _read(self) -> str | None:
        try:
            return self.path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return None

    def _age(self, holder: dict) -> float | None:
        try:
            return time.time() - self.path.stat().st_mtime
        except FileNotFoundError:
            return None

    def _touch(self) -> None:
        os.utime(self.path)

    def _remove(self) -> None:
        self.path.unlink(missing_ok=True)

    def acquire(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        for _ in range(LOCK_ATTEMPTS):
            try:
                fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
            except FileExistsError:
                holder = self.holder()
                if holder is None:
                    continue  # released meanwhile: try again
                why = self._stale(holder)
                if why is None:
                    raise self._busy(self.path.parent.parent, holder)
                aside = self.path.with_name(f"{LOCK_NAME}.stale-{self.token}")
                try:
                    os.rename(self.path, aside)  # one of several racing runs wins this
                except FileNotFoundError:
                    continue
                moved = json.loads(aside.read_text(encoding="utf-8") or "{}")
                if moved.get("token") != holder.get("token"):
                    # Another run took the stale lock over between our read and our rename:
                    # what we moved is its live lock. Put it back (unless a third run holds
                    # the name by now) and start again.
                    try:
                        os.link(aside, self.path)
                    except FileExistsError:
                        pass
                    aside.unlink(missing_ok=True)
                    continue
                aside.unlink(missing_ok=True)
                log.warning("%s: took over a stale lock of host %s pid %s (%s)", self.path,
                            holder.get("host"), holder.get("pid"), why)
                continue
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                json.dump(self._record(), f)
            self._held()
            return
        raise OutputBusy(f"could not take the lock {self.path}: it kept changing hands")


class StoreLock(Lock):
    """One writer per store output (raycollect/output/store.py's StoreLocation): the lock is
    the object OUT/.raycollect/lock, its record rewritten every heartbeat."""

    KEY = f"{C.STATE_DIR}/{LOCK_NAME}"

    def __init__(self, loc, heartbeat: float = C.LOCK_HEARTBEAT,
                 stale_after: float = C.LOCK_STALE):
        super().__init__(heartbeat, stale_after)
        self.loc = loc
        self.where = f"{loc.url}/{self.KEY}"

    def _record(self) -> dict:
        return {**super()._record(), "beat": time.time()}

    def _read(self) -> str | None:
        return self.loc.read_text(self.KEY)

    def _age(self, holder: dict) -> float | None:
        return time.time() - float(holder.get("beat", 0))

    def _touch(self) -> None:
        self.loc.write(self.KEY, json.dumps(self._record()).encode())

    def _remove(self) -> None:
        self.loc.delete([self.KEY])

    def acquire(self) -> None:
        holder = self.holder()
        if holder and holder.get("token") != self.token:
            why = self._stale(holder)
            if why is None:
                raise self._busy(self.loc.url, holder)
            log.warning("%s: took over a stale lock of host %s pid %s (%s)", self.where,
                        holder.get("host"), holder.get("pid"), why)
        self._touch()
        time.sleep(LOCK_SETTLE)
        holder = self.holder() or {}
        if holder.get("token") != self.token:
            raise self._busy(self.loc.url, holder)
        self._held()
