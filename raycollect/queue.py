"""The job queue: one Ray actor owns all job state; `JobQueue` is the handle everyone uses.

The actor is an asyncio actor whose methods never await while they change state, so each
call is atomic without locks. Costs per job are O(1) (a deque of pending ids) or O(log L)
(a heap of lease deadlines, L = jobs leased), independent of how many jobs are queued.
"""

from __future__ import annotations

import asyncio
import heapq
import logging
import secrets
import time
from collections import deque
from typing import Any, Iterable, Sequence, TypedDict

import ray
from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

from . import constants as C
from .errors import (Disposition, QueueUnavailable, UnknownJob, WrongQueue, from_ray,
                     output_error)
from .jobs import JobState, Lease, canonical_json, check_transition, prepare
from .journal import Journal, JobUpdate

# The actor reaps expired leases on every call and on this period, so expiry needs no caller.
REAPER_PERIOD = 0.5
# Leases handed out per call at most: keeps one call's reply small.
MAX_LEASE_BATCH = 1_000

log = logging.getLogger(__name__)

RELEASE = "release"  # fail()'s third mode: the lease given back untried
# A call with a lease that is no longer live, by the counter stats() reports it under.
_REFUSALS = {"complete": "stale_refused", "extend": "refused_heartbeats",
             "fail": "refused_failures"}


class QueueStats(TypedDict):
    """What `JobQueue.stats()` returns: jobs per state (pending counts only the jobs of the
    current run; parked ones wait in the journal), refusals, expiries and settings."""

    pending: int
    leased: int
    done: int
    failed: int
    total: int
    stale_refused: int  # completions of leases no longer live (a late worker's frame)
    refused_heartbeats: int
    refused_failures: int
    parked: int  # pending jobs of earlier runs over the same journal
    expired: int  # leases that ran out without a heartbeat
    workers: int
    max_attempts: int
    lease_ttl: float
    incarnation: str


class FailedJob(TypedDict):
    """A failed job of the current run, as `JobQueue.failures()` lists it."""

    job_id: str
    error: str
    attempts: int
    params: dict


class WorkerInfo(TypedDict, total=False):
    """A render worker's registry entry (raycollect/render/worker.py keeps it fresh)."""

    worker: str
    registered: float
    url: str
    port: int
    pid: int
    node_ip: str
    node_id: str
    frames: int
    scene_updates: int
    seconds: float
    wait_s: dict
    encode_s: float
    stages_s: dict
    pass_modes: dict
    asset_requests: int


class _Job:
    """One job's state. With a journal, params and results live only there (read back when a
    job is leased): a queued job costs the actor a few hundred bytes, not its params."""

    __slots__ = ("id", "params", "state", "attempts", "token", "deadline", "worker", "error",
                 "result", "done_token", "in_run")

    def __init__(self, job_id: str, params: dict | None, state: JobState = JobState.PENDING,
                 attempts: int = 0, error: str | None = None, result: Any = None,
                 done_token: str | None = None):
        self.id, self.params, self.state, self.attempts = job_id, params, state, attempts
        self.error, self.result, self.done_token = error, result, done_token
        self.token: str | None = None
        self.deadline = 0.0
        self.worker = ""
        self.in_run = True  # leased only while it belongs to the current run (see focus())


class _QueueActor:
    """Private: use `JobQueue`. All state lives here; the journal mirrors what must last."""

    def __init__(self, uid: str, lease_ttl: float, max_attempts: int, journal: str | None):
        self._ttl = float(lease_ttl)
        self._max_attempts = int(max_attempts)
        # A fresh incarnation per actor start: tokens of leases issued before a restart can
        # never match again.
        self._incarnation = secrets.token_hex(4)
        self._counter = 0
        self._jobs: dict[str, _Job] = {}
        self._pending: deque[str] = deque()
        self._expiry: list[tuple[float, str, str]] = []  # (deadline, token, job id)
        self._by_worker: dict[str, set[str]] = {}
        self._counts = {s: 0 for s in JobState}
        # Calls refused for a stale token, by call: a refused completion is a frame that
        # never landed (a stale attempt); refused heartbeats and failures are its side effects.
        # Events counted, by the names stats() reports them under.
        self._events = dict.fromkeys(_REFUSALS.values(), 0) | {"expired": 0}
        self._workers: dict[str, dict] = {}
        # Pending jobs outside the current run (_Job.in_run False) stay in the journal but are
        # not leased ("parked"): a rerun with another job list renders that list.
        self._journal = Journal(journal) if journal else None
        self._uid = self._journal.meta("uid", uid) if self._journal else uid
        self._inserts: list[tuple[str, str]] = []
        self._updates: dict[str, tuple] = {}
        self._reaper: asyncio.Task | None = None
        # Instance ids of scene elements (their keys), for the mask pass: one owner, so the
        # same key has the same id in every frame of every worker, and after a restart.
        self._instances: dict[str, int] = self._journal.instances() if self._journal else {}
        if self._journal:
            self._recover()

    # --- state changes: every one goes through _move -------------------------------------
    def _move(self, job: _Job, new: JobState) -> None:
        check_transition(job.state, new)
        self._counts[job.state] -= 1
        self._counts[new] += 1
        if job.state is JobState.LEASED:
            held = self._by_worker.get(job.worker)
            if held is not None:
                held.discard(job.id)
            job.token, job.worker = None, ""
        job.state = new
        if new is JobState.PENDING:
            self._queue_pending(job)
        if self._journal and new is not JobState.LEASED:
            self._updates[job.id] = JobUpdate(job.id, new, job.attempts, job.error, job.result,
                                              job.done_token)

    def _add(self, job: _Job) -> None:
        """A job new to this actor (submitted, or recovered from the journal): counted in
        its state, and queued when it is pending."""
        self._jobs[job.id] = job
        self._counts[job.state] += 1
        if job.state is JobState.PENDING:
            self._queue_pending(job)

    def _unpark(self, job: _Job) -> None:
        """A job of an earlier run is given again: it is this run's now."""
        job.in_run = True
        if job.state is JobState.PENDING:
            self._pending.append(job.id)

    def _queue_pending(self, job: _Job) -> None:
        """A pending job goes to the leasable deque if it belongs to the run; else it stays
        parked (a job of an earlier run over the same journal)."""
        if job.in_run:
            self._pending.append(job.id)

    @property
    def _parked(self) -> int:
        """Pending jobs outside the run. The deque holds exactly the run's pending jobs:
        every job enters it as it becomes pending and leaves it only to be leased."""
        return self._counts[JobState.PENDING] - len(self._pending)

    def _end_attempt(self, job: _Job, error: str) -> None:
        """An attempt ended without a frame: retry, or dead-letter at max_attempts."""
        job.error = error
        self._move(job, JobState.FAILED if job.attempts >= self._max_attempts else JobState.PENDING)

    def _flush(self) -> None:
        if self._journal and (self._inserts or self._updates):
            try:
                self._journal.write(self._inserts, self._updates.values())
            except OSError as e:  # a full or failing disk under the journal: the output's
                raise output_error(self._journal.path, e) from e
            for job_id in self._updates:
                self._jobs[job_id].result = None  # it lives in the journal now
        self._inserts, self._updates = [], {}

    def _recover(self) -> None:
        for row in self._journal.load():
            # A job leased when the old actor died is simply pending again.
            state = JobState.PENDING if row.state is JobState.LEASED else row.state
            self._add(_Job(row.job_id, None, state, row.attempts, row.error, None,
                           row.done_token))
        log.info("queue %s recovered %d jobs from %s: %s", self._uid, len(self._jobs),
                 self._journal.path, {s.value: n for s, n in self._counts.items()})

    def _reap(self, now: float | None = None) -> None:
        now = time.time() if now is None else now
        heap = self._expiry
        while heap and heap[0][0] <= now:
            _, token, job_id = heapq.heappop(heap)
            job = self._jobs[job_id]
            # Lazy deletion: entries of leases that were extended, completed or failed are
            # skipped here instead of being searched for in the heap.
            if job.token == token and job.deadline <= now:
                self._events["expired"] += 1
                self._end_attempt(job, f"lease expired (worker {job.worker or '?'})")
        self._flush()

    async def _reap_forever(self) -> None:
        while True:
            await asyncio.sleep(REAPER_PERIOD)
            self._reap()

    def _tick(self, reap: bool = True) -> None:
        if self._reaper is None:
            self._reaper = asyncio.get_running_loop().create_task(self._reap_forever())
        if reap:
            self._reap()

    def _leased(self, job_id: str, token: str, call: str) -> _Job | None:
        """The job if `token` is its live lease, else None, the refusal counted by `call`
        ("complete", "extend", "fail"). A heartbeat for a lease its own completion ended is
        no refusal: the worker simply learns that the driver recorded the frame."""
        job = self._jobs.get(job_id)
        if job is None:
            raise UnknownJob(f"unknown job id {job_id!r}")
        if job.state is JobState.LEASED and job.token == token:
            return job
        if not (call == "extend" and job.state is JobState.DONE and job.done_token == token):
            self._events[_REFUSALS[call]] += 1
        return None

    # --- the API ---------------------------------------------------------------------------
    async def uid(self) -> str:
        return self._uid

    async def submit(self, items: list[tuple[str, dict]]) -> int:
        self._tick()
        added = 0
        for job_id, params in items:
            job = self._jobs.get(job_id)
            if job is not None:
                if not job.in_run:  # a job of an earlier run, given again: this run's now
                    self._unpark(job)
                continue
            self._add(_Job(job_id, None if self._journal else params))
            if self._journal:
                self._inserts.append((job_id, canonical_json(params)))
            added += 1
        self._flush()
        return added

    async def lease(self, worker: str, n: int) -> list[Lease]:
        self._tick()
        now = time.time()
        out = []
        held = self._by_worker.setdefault(worker, set())
        leased = []
        while self._pending and len(out) + len(leased) < n:
            job = self._jobs[self._pending.popleft()]
            self._move(job, JobState.LEASED)
            self._counter += 1
            job.token = f"{self._incarnation}-{self._counter}"
            job.attempts += 1
            job.deadline = now + self._ttl
            job.worker = worker
            held.add(job.id)
            heapq.heappush(self._expiry, (job.deadline, job.token, job.id))
            leased.append(job)
        params = self._journal.params([j.id for j in leased]) if self._journal else {}
        for job in leased:
            out.append(Lease(job.id, job.token, params.get(job.id, job.params), job.attempts,
                             job.deadline, self._uid, worker))
        return out

    async def extend(self, items: list[tuple[str, str]], ttl: float | None) -> list[bool]:
        self._tick()
        deadline = time.time() + (self._ttl if ttl is None else float(ttl))
        out = []
        for job_id, token in items:
            job = self._leased(job_id, token, "extend")
            if job is not None:
                job.deadline = deadline
                heapq.heappush(self._expiry, (deadline, token, job_id))
            out.append(job is not None)
        return out

    async def complete(self, items: list[tuple[str, str, Any]]) -> list[bool]:
        self._tick()
        out = []
        for job_id, token, result in items:
            job = self._jobs.get(job_id)
            if (job is not None and job.state is JobState.DONE and job.done_token == token
                    and not token.startswith(self._incarnation + "-")):
                # Ray retried this call after a restart and its first try had landed: say
                # yes again. A second call within one incarnation is a duplicate: refused.
                out.append(True)
                continue
            job = self._leased(job_id, token, "complete")
            if job is not None:
                job.done_token, job.error = token, None
                job.result = result  # journaled by _move; dropped from memory after _flush
                self._move(job, JobState.DONE)
            out.append(job is not None)
        self._flush()
        return out

    async def fail(self, items: list[tuple[str, str, str]],
                   mode: str = Disposition.RETRY) -> list[bool]:
        """End attempts without a frame. mode RETRY: pending again unless max_attempts is
        reached; FINAL: failed now (deterministic errors gain nothing from a retry);
        RELEASE: given back untried, no attempt counted (a stopping worker's prefetch)."""
        if mode not in (Disposition.RETRY, Disposition.FINAL, RELEASE):
            raise ValueError(f"fail mode must be retry, final or release, got {mode!r}")
        self._tick()
        out = []
        for job_id, token, error in items:
            job = self._leased(job_id, token, "fail")
            if job is not None:
                if mode == RELEASE:
                    job.attempts -= 1
                    self._move(job, JobState.PENDING)
                elif mode == Disposition.FINAL:
                    job.error = error
                    self._move(job, JobState.FAILED)
                else:
                    self._end_attempt(job, error)
            out.append(job is not None)
        self._flush()
        return out

    async def release_worker(self, worker: str, error: str) -> int:
        """A worker is known dead: its leases end now instead of at their deadline."""
        self._tick()
        held = list(self._by_worker.pop(worker, ()))
        for job_id in held:
            self._end_attempt(self._jobs[job_id], error)
        self._workers.pop(worker, None)
        self._flush()
        return len(held)

    async def requeue(self, job_ids: list[str]) -> int:
        """Done or failed jobs back to pending with fresh attempts (a rerun whose output lacks
        them). Unknown, pending and leased ids are left alone."""
        self._tick()
        n = 0
        for job_id in job_ids:
            job = self._jobs.get(job_id)
            if job is not None and job.state in (JobState.DONE, JobState.FAILED):
                job.attempts, job.error, job.result, job.done_token = 0, None, None, None
                self._move(job, JobState.PENDING)
                n += 1
        self._flush()
        return n

    async def focus(self, job_ids: list[str] | None) -> int:
        """Lease only these jobs, and jobs submitted from now on (None: every pending job
        again); returns how many pending jobs are parked outside them."""
        wanted = None if job_ids is None else set(job_ids)
        self._pending = deque()
        for job_id, job in self._jobs.items():
            job.in_run = wanted is None or job_id in wanted
            if job.state is JobState.PENDING and job.in_run:
                self._pending.append(job_id)
        return self._parked

    async def complete_and_count(self, items: list[tuple[str, str, Any]]
                                 ) -> tuple[list[bool], QueueStats]:
        """complete() and stats() in one call: the driver's one call per recorded batch,
        which also tells it whether the run is over."""
        return await self.complete(items), self._stats()

    async def stats(self) -> QueueStats:
        self._tick(reap=False)  # a read: expiry is the reaper's (and state changes') business
        return self._stats()

    def _stats(self) -> QueueStats:
        return {
            **{s.value: n for s, n in self._counts.items()},
            "pending": self._counts[JobState.PENDING] - self._parked,
            "total": len(self._jobs),
            **self._events,
            "parked": self._parked,
            "workers": len(self._workers),
            "max_attempts": self._max_attempts,
            "lease_ttl": self._ttl,
            "incarnation": self._incarnation,
        }

    async def failures(self, limit: int | None = None) -> list[FailedJob]:
        failed = []
        for job in self._jobs.values():
            if job.state is JobState.FAILED and job.in_run:
                failed.append(job)
                if limit is not None and len(failed) >= limit:
                    break
        params = self._journal.params([j.id for j in failed]) if self._journal else {}
        return [{"job_id": j.id, "error": j.error, "attempts": j.attempts,
                 "params": params.get(j.id, j.params)} for j in failed]

    async def instance_ids(self, keys: list[str]) -> list[int]:
        """The id of each scene element key, giving the next free id to keys not seen yet."""
        new = []
        for key in keys:
            if key not in self._instances:
                if len(self._instances) >= C.MAX_INSTANCES:
                    raise ValueError(f"more than {C.MAX_INSTANCES} distinct scene element keys: "
                                     f"instance masks are 16-bit")
                self._instances[key] = len(self._instances) + 1
                new.append((key, self._instances[key]))
        if new and self._journal:
            self._journal.add_instances(new)
        return [self._instances[k] for k in keys]

    # --- the registry of render workers, for browsers started elsewhere -------------------
    async def register_worker(self, worker: str, info: dict) -> None:
        self._workers[worker] = {**info, "worker": worker, "registered": time.time()}

    async def workers(self) -> dict[str, WorkerInfo]:
        return dict(self._workers)


def _lease_items(leases: Sequence[Lease], uid: str) -> list[tuple[str, str]]:
    for lease in leases:
        if not isinstance(lease, Lease):
            raise TypeError(f"expected a raycollect Lease, got {type(lease).__name__}")
        if lease.queue != uid:
            raise WrongQueue(f"lease for job {lease.job_id} was issued by queue {lease.queue}, "
                             f"not by this queue ({uid})")
    return [(lease.job_id, lease.token) for lease in leases]


class JobQueue:
    """Handle to a named queue actor. Cheap to pickle: pass it to tasks and actors.

    Sync methods are for drivers; the `a`-prefixed twins (only of what the render worker
    calls) are for async actors."""

    def __init__(self, actor: Any, name: str, uid: str):
        self._actor, self.name, self.uid = actor, name, uid

    # --- construction ------------------------------------------------------------------
    @classmethod
    def create(cls, name: str = C.DEFAULT_QUEUE_NAME, lease_ttl: float = C.DEFAULT_LEASE_TTL,
               max_attempts: int = C.DEFAULT_MAX_ATTEMPTS, journal: str | None = None,
               detached: bool = False, new: bool = False) -> "JobQueue":
        """Get the named queue, or create it. Ray restarts the actor if its process dies;
        with a journal it comes back with every job it had. new=True: create it, or raise
        ValueError when the name is taken; returns at once, without waiting for the actor's
        process (a run's start-up starts its workers meanwhile)."""
        if lease_ttl <= 0:
            raise ValueError(f"lease_ttl must be > 0, got {lease_ttl}")
        if max_attempts < 1:
            raise ValueError(f"max_attempts must be >= 1, got {max_attempts}")
        # Pinned to the creating node (the driver's, the head under `ray job submit`): the
        # queue must not die with a worker node. max_task_retries=-1 makes Ray hold and
        # retry calls while it restarts the actor, so callers see a pause, not an error;
        # every method is safe to retry (see `complete`'s idempotence on done_token).
        options = dict(name=name, namespace=C.RAY_NAMESPACE, get_if_exists=not new,
                       max_restarts=-1, max_task_retries=-1, num_cpus=0,
                       scheduling_strategy=NodeAffinitySchedulingStrategy(
                           ray.get_runtime_context().get_node_id(), soft=True))
        if detached:
            options["lifetime"] = "detached"
        uid = secrets.token_hex(8)
        if new and journal is not None:
            # The queue's uid lasts in its journal (a rerun's leases name the same queue);
            # the actor reads it there too (a local file: the actor runs on this node).
            stored = Journal(journal)
            try:
                uid = stored.meta("uid", uid)
            finally:
                stored.close()
        actor = ray.remote(_QueueActor).options(**options).remote(
            uid, lease_ttl, max_attempts, None if journal is None else str(journal))
        # An existing queue of that name (get_if_exists) has a uid of its own.
        return cls(actor, name, uid if new else _get(actor.uid.remote()))

    @classmethod
    def connect(cls, name: str = C.DEFAULT_QUEUE_NAME, timeout: float = 0.0) -> "JobQueue":
        deadline = time.time() + timeout
        while True:
            try:
                actor = ray.get_actor(name, namespace=C.RAY_NAMESPACE)
                return cls(actor, name, _get(actor.uid.remote()))
            except ValueError:
                if time.time() >= deadline:
                    raise QueueUnavailable(f"no raycollect queue named {name!r} on this Ray "
                                           f"cluster (namespace {C.RAY_NAMESPACE!r})") from None
                time.sleep(0.2)

    def __reduce__(self):
        return (JobQueue, (self._actor, self.name, self.uid))

    def kill(self, no_restart: bool = True) -> None:
        ray.kill(self._actor, no_restart=no_restart)

    # --- sync API ----------------------------------------------------------------------
    # Every call goes to the actor; Ray holds and retries calls while it restarts the actor
    # (see create). What a call can raise, besides what each method names: QueueUnavailable
    # when the actor is gone for good (killed, or its node lost).
    def submit(self, params_list: Iterable[dict], keys: Iterable[str] | None = None) -> list[str]:
        """Add jobs; returns their ids in order. A job already known (same key, or same
        params when no key is given) keeps its id and is not added twice.

        Raises: InvalidJob for a job that is not a dict of JSON-able params (naming it by its
        index), ValueError when keys and jobs differ in number."""
        return self.submit_prepared(prepare(params_list, keys))

    def submit_prepared(self, items: Sequence[tuple[str, dict]]) -> list[str]:
        """Submit (job id, plain params) pairs that `jobs.prepare` already made.

        Raises: QueueUnavailable."""
        for i in range(0, len(items), C.SUBMIT_CHUNK):
            _get(self._actor.submit.remote(list(items[i:i + C.SUBMIT_CHUNK])))
        return [job_id for job_id, _ in items]

    def lease(self, worker: str, n: int = 1) -> list[Lease]:
        """Up to n pending jobs (at most MAX_LEASE_BATCH), leased to `worker` for the TTL.

        Raises: ValueError when n is not a positive int; QueueUnavailable."""
        return _get(self._actor.lease.remote(*self._lease_args(worker, n)))

    def extend(self, lease: Lease, ttl: float | None = None) -> bool:
        """Heartbeat one lease: False when it is no longer live (expired, or ended).

        Raises: WrongQueue for a lease of another queue; UnknownJob; QueueUnavailable."""
        return self.extend_many([lease], ttl)[0]

    def extend_many(self, leases: Sequence[Lease], ttl: float | None = None) -> list[bool]:
        """extend() for many leases in one call. Raises: as extend()."""
        return _get(self._actor.extend.remote(_lease_items(leases, self.uid), ttl))

    def complete(self, lease: Lease, result: Any = None) -> bool:
        """Mark the job done; False (and the completion counted as stale_refused) when the
        lease is no longer live. Completing twice with the same lease is True both times.

        Raises: WrongQueue; UnknownJob; QueueUnavailable."""
        return self.complete_many([lease], [result])[0]

    def complete_many(self, leases: Sequence[Lease], results: Sequence[Any] | None = None) -> list[bool]:
        """complete() for many leases in one call. Raises: as complete(), and ValueError
        when results and leases differ in number."""
        return _get(self._actor.complete.remote(self._complete_items(leases, results)))

    def complete_and_count(self, leases: Sequence[Lease],
                           results: Sequence[Any] | None = None) -> tuple[list[bool], QueueStats]:
        """complete_many, and the queue's stats() right after it, in one call.
        Raises: as complete_many()."""
        return tuple(_get(self._actor.complete_and_count.remote(
            self._complete_items(leases, results))))

    def fail(self, lease: Lease, error: str = "failed", final: bool = False) -> bool:
        """End an attempt without a frame: retry later, or dead-letter at max_attempts;
        final=True dead-letters now. Raises: WrongQueue; UnknownJob; QueueUnavailable."""
        return self.fail_many([lease], [error], Disposition.FINAL if final else Disposition.RETRY)[0]

    def fail_many(self, leases: Sequence[Lease], errors: Sequence[str],
                  mode: str = Disposition.RETRY) -> list[bool]:
        """fail() for many leases; mode: Disposition.RETRY, Disposition.FINAL or "release"
        (untried: pending again, no attempt counted). Raises: as fail(), and ValueError
        when errors and leases differ in number."""
        return _get(self._actor.fail.remote(self._fail_items(leases, errors), mode))

    def release(self, leases: Sequence[Lease]) -> list[bool]:
        """Give leases back untried: the jobs are pending again, no attempt counted.
        Raises: as fail_many()."""
        return self.fail_many(leases, ["released"] * len(leases), RELEASE)

    def release_worker(self, worker: str, error: str) -> int:
        """End every lease `worker` holds (it died): each job is tried again. Returns how
        many. Raises: QueueUnavailable."""
        return _get(self._actor.release_worker.remote(worker, error))

    def requeue(self, job_ids: Sequence[str]) -> int:
        """Make done or failed jobs pending again (the output lacks them). Returns how many.
        Raises: QueueUnavailable."""
        return _get(self._actor.requeue.remote(list(job_ids)))

    def focus(self, job_ids: Sequence[str] | None, wait: bool = True) -> Any:
        """Lease only these jobs (a run's own); others pending stay parked in the journal.
        Returns how many are parked; with wait=False, at once, the call's ref (`ray.get`
        it: the call is in the actor's mailbox ahead of any call made after it, even before
        the actor's process is up). Raises: QueueUnavailable."""
        ref = self._actor.focus.remote(None if job_ids is None else list(job_ids))
        return _get(ref) if wait else ref

    def stats(self) -> QueueStats:
        """Counts per state, refusals, expiries and settings. Raises: QueueUnavailable."""
        return _get(self._actor.stats.remote())

    def failures(self, limit: int | None = None) -> list[FailedJob]:
        """The current run's failed jobs, with their last error. Raises: QueueUnavailable."""
        return _get(self._actor.failures.remote(limit))

    def register_worker(self, worker: str, info: WorkerInfo) -> None:
        """Add or refresh a render worker's registry entry. Raises: QueueUnavailable."""
        _get(self._actor.register_worker.remote(worker, info))

    def workers(self) -> dict[str, WorkerInfo]:
        """The registry of render workers: URL, node, counters. Raises: QueueUnavailable."""
        return _get(self._actor.workers.remote())

    # --- async twins, for async actors (the render worker): the same calls, awaited -------
    async def alease(self, worker: str, n: int = 1) -> list[Lease]:
        return await _aget(self._actor.lease.remote(*self._lease_args(worker, n)))

    async def aextend_many(self, leases: Sequence[Lease], ttl: float | None = None) -> list[bool]:
        return await _aget(self._actor.extend.remote(_lease_items(leases, self.uid), ttl))

    async def afail_many(self, leases: Sequence[Lease], errors: Sequence[str],
                         mode: str = Disposition.RETRY) -> list[bool]:
        return await _aget(self._actor.fail.remote(self._fail_items(leases, errors), mode))

    async def arelease(self, leases: Sequence[Lease]) -> list[bool]:
        return await self.afail_many(leases, ["released"] * len(leases), RELEASE)

    async def astats(self) -> QueueStats:
        return await _aget(self._actor.stats.remote())

    async def ainstance_ids(self, keys: Sequence[str]) -> list[int]:
        """The instance id of each scene element key, new keys given the next free ids.
        Raises: ValueError past MAX_INSTANCES keys; QueueUnavailable."""
        return await _aget(self._actor.instance_ids.remote(list(keys)))

    async def aregister_worker(self, worker: str, info: WorkerInfo) -> None:
        await _aget(self._actor.register_worker.remote(worker, info))

    # --- helpers -------------------------------------------------------------------------
    @staticmethod
    def _lease_args(worker: str, n: int) -> tuple[str, int]:
        if not isinstance(n, int) or isinstance(n, bool) or n <= 0:
            raise ValueError(f"lease n must be a positive int, got {n!r}")
        return str(worker), min(n, MAX_LEASE_BATCH)

    def _fail_items(self, leases, errors) -> list[tuple[str, str, str]]:
        if len(errors) != len(leases):
            raise ValueError(f"{len(errors)} errors for {len(leases)} leases")
        return [(i, t, str(e)) for (i, t), e in zip(_lease_items(leases, self.uid), errors)]

    def _complete_items(self, leases, results) -> list[tuple[str, str, Any]]:
        results = [None] * len(leases) if results is None else list(results)
        if len(results) != len(leases):
            raise ValueError(f"{len(results)} results for {len(leases)} leases")
        return [(i, t, r) for (i, t), r in zip(_lease_items(leases, self.uid), results)]


def _unreachable(e: BaseException) -> QueueUnavailable:
    return QueueUnavailable(f"the queue actor is unreachable: {e}")


def _get(ref):
    with from_ray(_unreachable):
        return ray.get(ref)


queue_call = _get  # a queue call's ref, waited for, its errors as the handle's methods raise them


async def _aget(ref):
    with from_ray(_unreachable):
        return await ref
