"""What users read after a run: the Summary of a run and one Failure per failed job.

A Failure is one line of failures.jsonl (this dataclass is that file's schema); the Summary is
`run.summary`, also readable as a mapping (`run.summary["failed"]`).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any


@dataclass
class Failure:
    """A job that did not render. `job` names it as the user knows it: its id, its key, its
    index in the job list (`#3`) or its place in a jobs file (`jobs.jsonl:12`)."""

    job: str
    error: str
    attempts: int = 0
    field: str | None = None  # the offending field, for invalid input
    job_id: str | None = None  # None when the job never got an id (malformed input)
    index: int | None = None  # its position in the job list, when known
    params: dict | None = None

    def to_json(self) -> dict:
        return {k: v for k, v in dataclasses.asdict(self).items() if v is not None}


@dataclass
class Summary:
    """What a run did. `failed` counts this run's jobs only (invalid ones included)."""

    jobs: int = 0  # given to this run
    invalid: int = 0  # failed validation, never rendered
    skipped: int = 0  # already in the output
    rendered: int = 0
    failed: int = 0
    parked: int = 0  # pending jobs of earlier runs over the same output, left alone
    stale_refused: int = 0  # completions refused by token: frames that never landed
    leases_expired: int = 0  # leases that ran out (a worker gone unseen, or frozen)
    refused_heartbeats: int = 0
    workers_restarted: int = 0
    workers: int = 0  # render workers at the end
    browsers_restarted: int = 0
    browsers_recycled: int = 0
    frames_on_disk: int = 0
    seconds: float = 0.0
    frames_per_s: float = 0.0
    out: str | None = None
    contact_sheet: str | None = None
    by_worker: dict[str, Any] = field(default_factory=dict)  # frames, frames/s, node, waits
    by_node: dict[str, Any] = field(default_factory=dict)  # workers, frames, frames/s

    # Mapping-style access, so `summary["failed"]` and `summary.get("out")` read as before.
    def __getitem__(self, name: str) -> Any:
        try:
            return getattr(self, name)
        except AttributeError:
            raise KeyError(name) from None

    def get(self, name: str, default: Any = None) -> Any:
        return getattr(self, name, default)

    def to_json(self) -> dict:
        return dataclasses.asdict(self)

    def line(self) -> str:
        return (f"{self.rendered} rendered, {self.skipped} already done, {self.failed} failed "
                f"({self.invalid} invalid), {self.stale_refused} stale completions refused, "
                f"{self.workers_restarted} workers and {self.browsers_restarted} browsers "
                f"restarted, {self.frames_per_s} frames/s over {self.seconds} s")
