"""Where an output's bytes live: a local directory, or an object store that the render
workers write to directly (`out="s3://bucket/prefix"`, `gs://...`, any URL fsspec resolves).

`Location` is the one interface every reader and writer of an output goes through: read,
write, list and delete objects by their key relative to the output's root. `LocalLocation`
is a directory; `StoreLocation` is fsspec's filesystem for the URL, with its credentials and
endpoint from the usual environment and config files (`AWS_ENDPOINT_URL`, `~/.aws/...`, as
boto3 reads them) or from `storage_options` (and `endpoint_url`, for S3-compatible servers).

Object stores have no rename and no append, so nothing here depends on either: an object
appears whole when its write completes, attempts write under names of their own, and the
manifest is written as parts (raycollect/output.py). Writes and reads are retried with
backoff while the store is away, up to STORE_RETRY_SECONDS; then the error names the store
and the key.
"""

from __future__ import annotations

import hashlib
import logging
import os
import secrets
import time
from pathlib import Path

from .. import constants as C
from ..errors import StoreError

STORE_RETRY_FIRST = 0.5
STORE_RETRY_MAX = 8.0

log = logging.getLogger(__name__)


def is_url(out: str | os.PathLike | None) -> bool:
    return out is not None and "://" in str(out) and not str(out).startswith("file://")


class Location:
    """An output's root: objects by key ("frames/a.png", "manifest.jsonl")."""

    url: str

    def read(self, key: str) -> bytes: ...
    def read_range(self, key: str, offset: int, size: int) -> bytes: ...
    def write(self, key: str, data: bytes) -> None: ...
    def list(self, prefix: str) -> list[str]: ...  # keys below prefix ("frames/")
    def delete(self, keys: list[str]) -> None: ...
    def exists(self, key: str) -> bool: ...

    def read_text(self, key: str) -> str | None:
        """The object as text, or None when there is none."""
        if not self.exists(key):
            return None
        return self.read(key).decode("utf-8")


class LocalLocation(Location):
    def __init__(self, root: str | os.PathLike):
        self.root = Path(root)
        self.url = str(self.root)

    def read(self, key: str) -> bytes:
        return (self.root / key).read_bytes()

    def read_range(self, key: str, offset: int, size: int) -> bytes:
        with open(self.root / key, "rb") as f:
            f.seek(offset)
            return f.read(size)

    def write(self, key: str, data: bytes) -> None:
        path = self.root / key
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
        tmp.write_bytes(data)
        os.replace(tmp, path)

    def list(self, prefix: str) -> list[str]:
        base = self.root / prefix
        if not base.is_dir():
            return []
        return sorted(str(p.relative_to(self.root)) for p in base.rglob("*") if p.is_file())

    def delete(self, keys: list[str]) -> None:
        for key in keys:
            (self.root / key).unlink(missing_ok=True)

    def exists(self, key: str) -> bool:
        return (self.root / key).exists()


class StoreLocation(Location):
    """An object store prefix through fsspec. Picklable: workers rebuild the filesystem."""

    def __init__(self, url: str, storage_options: dict | None = None,
                 retry_seconds: float = C.STORE_RETRY_SECONDS):
        self.url = url.rstrip("/")
        self.storage_options = dict(storage_options or {})
        self.retry_seconds = retry_seconds
        self._fs = None
        self._root = None

    def __getstate__(self):
        return {"url": self.url, "storage_options": self.storage_options,
                "retry_seconds": self.retry_seconds}

    def __setstate__(self, state):
        self.__init__(state["url"], state["storage_options"], state["retry_seconds"])

    @property
    def fs(self):
        if self._fs is None:
            try:
                import fsspec
            except ImportError:
                raise StoreError(f"output {self.url}: writing to an object store needs fsspec "
                                 f"and the store's driver: pip install 'raycollect[store]'") from None
            try:
                self._fs, self._root = fsspec.core.url_to_fs(self.url, **self.storage_options)
            except (ValueError, ImportError) as e:
                raise StoreError(f"output {self.url}: no filesystem for this URL ({e}); s3:// "
                                 f"needs s3fs, gs:// needs gcsfs") from None
            self._root = self._root.rstrip("/")
        return self._fs

    def _path(self, key: str) -> str:
        self.fs  # noqa: B018 (sets _root)
        return f"{self._root}/{key}"

    def _retry(self, what: str, key: str, fn):
        """Run fn, retrying with backoff while the store fails, up to retry_seconds."""
        deadline = time.monotonic() + self.retry_seconds
        delay = STORE_RETRY_FIRST
        while True:
            try:
                return fn()
            except FileNotFoundError:
                raise
            except Exception as e:  # botocore's and aiohttp's errors are not all OSErrors
                if _permanent(e) or time.monotonic() + delay > deadline:
                    raise StoreError(f"store {self.url}: cannot {what} {key}: {_said(e)}") from e
                log.warning("store %s: %s %s failed (%s), retrying in %.1f s", self.url, what,
                            key, _said(e), delay)
                time.sleep(delay)
                delay = min(delay * 2, STORE_RETRY_MAX)

    def read(self, key: str) -> bytes:
        return self._retry("read", key, lambda: self.fs.cat_file(self._path(key)))

    def read_range(self, key: str, offset: int, size: int) -> bytes:
        return self._retry("read", key, lambda: self.fs.cat_file(self._path(key), start=offset,
                                                                  end=offset + size))

    def write(self, key: str, data: bytes) -> None:
        self._retry("write", key, lambda: self.fs.pipe_file(self._path(key), data))

    def list(self, prefix: str) -> list[str]:
        base = self._path(prefix.rstrip("/"))

        def find():
            self.fs.invalidate_cache()
            return self.fs.find(base)
        try:
            found = self._retry("list", prefix, find)
        except FileNotFoundError:
            return []
        n = len(self._root) + 1
        return sorted(p[n:] for p in found)

    def delete(self, keys: list[str]) -> None:
        if keys:
            self._retry("delete", f"{len(keys)} objects ({keys[0]}, ...)",
                        lambda: self.fs.rm([self._path(k) for k in keys]))

    def exists(self, key: str) -> bool:
        def check():
            self.fs.invalidate_cache()
            return self.fs.exists(self._path(key))
        return self._retry("read", key, check)

    def check(self) -> None:
        """Fail at once, naming it, when the bucket is not there or cannot be written (no
        credentials, or wrong ones): a probe object is written and deleted."""
        probe = f"{C.STATE_DIR}/probe-{secrets.token_hex(6)}"
        try:
            self.fs.pipe_file(self._path(probe), b"")
            self.fs.rm_file(self._path(probe))
        except StoreError:
            raise
        except Exception as e:
            raise StoreError(f"output {self.url}: cannot write to it: {_said(e)}") from None


def _said(e: BaseException) -> str:
    text = str(e) or type(e).__name__
    return text.splitlines()[0][:300]


def _permanent(e: BaseException) -> bool:
    """Errors a retry cannot fix: a missing bucket, refused credentials, a call the store's
    client does not take (a wrong option, a driver too old)."""
    if isinstance(e, (TypeError, ValueError, AttributeError, ImportError, KeyError)):
        return True
    text = f"{type(e).__name__} {e}"
    return any(s in text for s in ("NoSuchBucket", "AccessDenied", "InvalidAccessKeyId",
                                   "SignatureDoesNotMatch", "NoCredentialsError",
                                   "PermissionError", "Forbidden", "ParamValidationError"))


def location(out: str | os.PathLike, storage_options: dict | None = None,
             retry_seconds: float = C.STORE_RETRY_SECONDS) -> Location:
    """The Location of an output given as a path or a URL."""
    if is_url(out):
        return StoreLocation(str(out), storage_options, retry_seconds)
    return LocalLocation(str(out)[len("file://"):] if str(out).startswith("file://") else out)


def journal_path(out: str | os.PathLike) -> Path:
    """Where the queue journal of the output `out` lives: OUT/.raycollect/queue.sqlite in a
    folder, and in state_dir(OUT) for a store output."""
    if is_url(out):
        return state_dir(str(out)) / C.JOURNAL_NAME
    return Path(out) / C.STATE_DIR / C.JOURNAL_NAME


def state_dir(out: str) -> Path:
    """Where a store output's queue journal lives on the driver's machine: the store holds
    the output and its manifest (what reruns trust); the journal is a local cache of the
    queue (what a rerun of the same driver recovers)."""
    digest = hashlib.sha1(out.rstrip("/").encode()).hexdigest()[:16]
    base = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache"))
    return base / "raycollect" / "stores" / digest
