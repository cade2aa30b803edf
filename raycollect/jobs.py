"""Jobs, their states and leases: the vocabulary that the queue, workers and driver share
(what a rendered job gives back, `Result`, is in result.py)."""

from __future__ import annotations

import enum
import hashlib
import json
import math
import re
from dataclasses import dataclass
from typing import Any, Iterable, Iterator, Mapping

from .errors import InvalidJob

JOB_ID_HEX_CHARS = 20
MAX_KEY_LENGTH = 128


class JobState(str, enum.Enum):
    PENDING = "pending"
    LEASED = "leased"
    DONE = "done"
    FAILED = "failed"


# Every legal state change, and the only place they are written down. The queue routes each
# change through `check_transition`, so an illegal one is a bug that fails loudly.
TRANSITIONS: dict[tuple[JobState, JobState], str] = {
    (JobState.PENDING, JobState.LEASED): "lease",
    (JobState.LEASED, JobState.DONE): "complete",
    (JobState.LEASED, JobState.PENDING): "retry: fail with attempts left, expiry, release",
    (JobState.LEASED, JobState.FAILED): "dead letter: fail or expiry at max_attempts",
    (JobState.FAILED, JobState.PENDING): "requeue: a rerun retries failed jobs",
    (JobState.DONE, JobState.PENDING): "requeue: output was lost, render again",
}


def check_transition(old: JobState, new: JobState) -> None:
    if (old, new) not in TRANSITIONS:
        raise AssertionError(f"illegal job state change {old.value} -> {new.value}")


@dataclass(frozen=True)
class Lease:
    """A time-limited right to work on one job. `token` fences out older attempts."""

    job_id: str
    token: str
    params: dict
    attempt: int
    deadline: float  # wall clock, time.time()
    queue: str  # the issuing queue's uid
    worker: str = ""


_KEY_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]*$")


def to_plain(value: Any, path: str = "params") -> Any:
    """Return `value` as plain JSON types, turning numpy arrays and scalars into lists and
    numbers. Raises ValueError naming the path of the first thing that is not JSON."""
    if value is None or isinstance(value, (bool, str)):
        return value
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        return float(value)
    if isinstance(value, Mapping):
        out = {}
        for k, v in value.items():
            if not isinstance(k, str):
                raise ValueError(f"{path}: key {k!r} is not a string")
            out[k] = to_plain(v, f"{path}.{k}")
        return out
    if isinstance(value, (list, tuple)):
        return [to_plain(v, f"{path}[{i}]") for i, v in enumerate(value)]
    tolist = getattr(value, "tolist", None)  # numpy arrays and scalars, without importing numpy
    if callable(tolist):
        return to_plain(tolist(), path)
    raise ValueError(f"{path}: {type(value).__name__} is not JSON-serialisable")


def canonical_json(params: dict) -> str:
    return json.dumps(params, sort_keys=True, separators=(",", ":"), allow_nan=True)


def content_id(params: dict) -> str:
    """A stable id from the params' content: the same job submitted again gets the same id."""
    digest = hashlib.blake2b(canonical_json(params).encode(), digest_size=16).hexdigest()
    return "j" + digest[:JOB_ID_HEX_CHARS]


def prepare(params_list: Iterable[Any], keys: Iterable[Any] | None = None,
            start: int = 0) -> list[tuple[str, dict]]:
    """Validate and normalise a batch for submission: (job_id, plain params) pairs.

    Raises InvalidJob naming the job (its key, or its index in the whole job list: `start`
    is the index of the batch's first job) and the field."""
    params_list = list(params_list)
    keys = None if keys is None else list(keys)
    if keys is not None and len(keys) != len(params_list):
        raise InvalidJob("<batch>", "keys", f"{len(keys)} keys for {len(params_list)} jobs")
    out = []
    for i, params in enumerate(params_list):
        name = f"#{start + i}" if keys is None else repr(keys[i])
        if not isinstance(params, Mapping):
            raise InvalidJob(name, "params", f"a job is a dict, got {type(params).__name__}")
        try:
            plain = to_plain(params)
        except ValueError as e:
            field_path = str(e).split(":", 1)[0]
            raise InvalidJob(name, field_path, str(e).split(": ", 1)[-1]) from None
        if keys is None:
            job_id = content_id(plain)
        else:
            key = keys[i]
            if not isinstance(key, str) or not _KEY_RE.match(key) or len(key) > MAX_KEY_LENGTH:
                raise InvalidJob(name, "key", "keys are 1-128 characters of A-Z a-z 0-9 _ . - "
                                 "(they name output files)")
            job_id = key
        out.append((job_id, plain))
    return out


def is_finite_number(x: Any) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)


@dataclass
class Job:
    """A job as the driver sees it: its id and its params."""

    job_id: str
    params: dict


@dataclass(frozen=True)
class MalformedJob:
    """A line of a jobs file that is not a JSON object; it fails as its own job."""

    source: str
    line: int
    error: str


def read_jsonl(path: str) -> Iterator[Any]:
    """Jobs from a JSON-lines file, one dict per line, read lazily (a run takes them as its
    queue does, so a file of millions of jobs is never held whole). Blank lines are skipped
    and a bad line becomes a MalformedJob, so one typo loses one job and not the run."""
    with open(path, encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                value = json.loads(line)
            except json.JSONDecodeError as e:
                yield MalformedJob(path, n, f"not valid JSON: {e.msg} at column {e.colno}")
                continue
            if not isinstance(value, dict):
                yield MalformedJob(path, n, f"a job is a JSON object, got {type(value).__name__}")
                continue
            yield value
