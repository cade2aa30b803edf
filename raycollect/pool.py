"""The driver's pool of render workers.

Each worker's streaming generator is drained by one thread into a single bounded inbox, so the
driver handles frames from every worker in arrival order, and a caller slower than the
workers fills the inbox, which stops the drains, which pauses the workers (Ray's generator
backpressure): driver memory stays flat. A worker that dies is reported to the queue (its
leases go back at once instead of at their deadline) and replaced in the background, so
recording never waits for a new worker; one that cannot be placed is tried again later
while the run goes on with the workers it has.
Managed browsers are raycollect/browser_hosts.py's.
"""

from __future__ import annotations

import itertools
import logging
import queue as stdqueue
import threading
import time
from dataclasses import dataclass

import ray

from .result import Result
from .browser_hosts import BrowserHosts
from .cluster import cpu_nodes
from .errors import Disposition, RaycollectError, RunFailed, disposition, unwrap
from .queue import JobQueue
from .config import Config
from .render.worker import RenderWorker

WORKER_START_TIMEOUT = 60.0
WORKER_START_POLL = 0.5  # a start is awaited in steps of this, to notice a closing pool
WORKER_START_ATTEMPTS = 5
WORKER_START_BACKOFF = 1.0
# Batches a worker may have yielded that the driver has not taken yet (Ray generator
# backpressure): with the driver's bounded backlog, a slow caller pauses the workers.
WORKER_BACKPRESSURE = 2
# Frames the driver holds that the caller has not consumed yet, over all workers. When it is
# full the pool stops taking frames, so backpressure reaches the workers and driver memory
# stays flat however slow the caller's loop.
DRIVER_BACKLOG = 64
# A replacement worker that could not be placed (no free CPU slot after a node loss) is tried
# again in the background this often; the run goes on with the workers it has.
WORKER_REPLACE_RETRY = 10.0
DRAIN_STOP_GRACE = 5.0  # a run's end waits this long for each worker's drain thread after its worker ends
WORKER_REPLACE_LIMIT = 20
INBOX_PUT_WAIT = 0.5  # a drain thread's wait on the full inbox before it checks for closing
POOL_CLOSE_GRACE = 10.0  # seconds workers and browser hosts get to stop at the end of a run
WORKER_STATUS_TIMEOUT = 5.0  # a worker's counters at the end of a run

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class FrameArrived:
    """A worker's rendered frame, in the driver's inbox."""

    worker: str
    result: Result


@dataclass(frozen=True)
class WorkerGone:
    """A worker's generator ended: `error` is what ended it (the actor died, or it raised);
    None when it finished without being asked to."""

    worker: str
    error: BaseException | None = None


Event = FrameArrived | WorkerGone


class _Member:
    def __init__(self, worker_id: str, actor, info: dict):
        self.id, self.actor, self.info = worker_id, actor, info
        self.thread: threading.Thread | None = None


class WorkerPool:
    def __init__(self, queue: JobQueue, size: int, scene, config: Config,
                 replace_limit: int = WORKER_REPLACE_LIMIT):
        self.queue, self.size, self.scene, self.config = queue, size, scene, config
        self.replace_limit = replace_limit
        self.inbox: stdqueue.Queue[Event] = stdqueue.Queue(maxsize=DRIVER_BACKLOG)
        self.members: dict[str, _Member] = {}
        self.replacing = 0  # replacements under way in the background
        self._replacers: list[threading.Thread] = []
        self._lock = threading.Lock()
        self._closed = threading.Event()
        self.browsers = BrowserHosts(queue, config)  # managed browsers, one host per node
        self.replaced = 0
        self._ids = itertools.count()

    # --- workers -----------------------------------------------------------------------
    def start(self) -> None:
        actors = [self._new_actor() for _ in range(self.size)]  # they start in parallel
        # Where every node that can take a worker will get one (SPREAD places workers on
        # different nodes first), their browser hosts start now, beside the workers, instead
        # of after them: a host's process start is otherwise on every run's start-up path.
        nodes = cpu_nodes()
        if len(nodes) <= self.size:
            for node in nodes:
                self.browsers.ensure(node["NodeID"])
        for worker_id, actor in actors:
            try:
                info = _started(worker_id, actor, self._closed)
            except _START_ERRORS as e:
                log.warning("worker %s did not start (%s); starting another", worker_id, unwrap(e))
                _kill(actor)
                self._spawn()
                continue
            self._adopt(worker_id, actor, info)

    def _spawn(self) -> str:
        """Start one worker, trying again when one dies before it starts (placed on a node
        that is going away, say)."""
        last: BaseException | None = None
        for _ in range(WORKER_START_ATTEMPTS):
            if self._closed.is_set():
                raise RunFailed("the pool is closing")
            worker_id, actor = self._new_actor()
            try:
                info = _started(worker_id, actor, self._closed)
            except _START_ERRORS as e:
                last = unwrap(e)
                log.warning("worker %s did not start (%s); trying again", worker_id, last)
                _kill(actor)
                time.sleep(WORKER_START_BACKOFF)
                continue
            self._adopt(worker_id, actor, info)
            return worker_id
        raise RunFailed(f"could not start a render worker in {WORKER_START_ATTEMPTS} tries: {last!r}")

    def _new_actor(self):
        worker_id = f"w{next(self._ids)}"
        # SPREAD puts workers on different nodes first; one CPU each, the browser shares it.
        actor = RenderWorker.options(num_cpus=1, scheduling_strategy="SPREAD",
                                     max_restarts=0).remote(self.queue, worker_id, self.scene,
                                                            self.config)
        return worker_id, actor

    def _adopt(self, worker_id: str, actor, info: dict) -> None:
        member = _Member(worker_id, actor, info)
        with self._lock:
            if self._closed.is_set():
                _kill(actor)
                return
            self.members[worker_id] = member
            self.browsers.ensure(info["node_id"])
        member.thread = threading.Thread(target=self._drain, args=(member,), daemon=True,
                                         name=f"raycollect-{worker_id}")
        member.thread.start()

    def _drain(self, member: _Member) -> None:
        gen = member.actor.run.options(
            num_returns="streaming",
            _generator_backpressure_num_objects=WORKER_BACKPRESSURE).remote()
        try:
            for ref in gen:
                for frame in ray.get(ref):
                    self._put(FrameArrived(member.id, frame))
            self._put(WorkerGone(member.id))
        except Exception as e:  # the actor died, or its generator raised: both end it
            self._put(WorkerGone(member.id, e))

    def _put(self, event: Event) -> None:
        """Into the bounded inbox, waiting while it is full, unless the pool closes."""
        while not self._closed.is_set():
            try:
                self.inbox.put(event, timeout=INBOX_PUT_WAIT)
                return
            except stdqueue.Full:
                continue

    def replace(self, worker_id: str, error: BaseException | None) -> None:
        """Forget a worker that is gone (error None: its generator ended unasked), give its
        leases back now, and start another in its place in the background. An error that
        is no lost worker (a bug, no browser, a missing assets folder) ends the run."""
        with self._lock:
            member = self.members.pop(worker_id, None)
        if member is None or self._closed.is_set():
            return
        cause = unwrap(error) if error is not None else None
        if isinstance(error, ray.exceptions.RayTaskError) and disposition(cause) is Disposition.ABORT:
            _kill(member.actor)
            raise RunFailed(f"worker {worker_id} failed: {cause}") from cause
        what = f"{type(cause).__name__}: {cause}" if cause is not None else "its generator ended"
        released = self.queue.release_worker(worker_id, f"worker {worker_id} died ({what})")
        _kill(member.actor)
        if self.replaced >= self.replace_limit:
            raise RunFailed(f"{self.replaced} workers replaced already; last death: {what}")
        self.replaced += 1
        log.warning("worker %s died (%s); %d lease(s) back to the queue; starting another in "
                    "the background", worker_id, what, released)
        with self._lock:
            self.replacing += 1
        thread = threading.Thread(target=self._replace_in_background, daemon=True,
                                  name=f"raycollect-replace-{worker_id}")
        self._replacers.append(thread)
        thread.start()

    def _replace_in_background(self) -> None:
        try:
            while not self._closed.is_set():
                try:
                    self._spawn()
                    return
                except RunFailed as e:  # no slot for it now (a node was lost, say)
                    log.warning("%s; running on %d worker(s); trying again in %.0f s", e,
                                len(self.members), WORKER_REPLACE_RETRY)
                    self._closed.wait(WORKER_REPLACE_RETRY)
                except BaseException:  # Ray shut down under a start still waiting for a slot
                    if self._closed.is_set():
                        return
                    raise
        finally:
            with self._lock:
                self.replacing -= 1

    def take(self, most: int, wait: float) -> tuple[list[Result], list[WorkerGone]]:
        """Whatever has arrived (waiting up to `wait` s if nothing has), at most `most`
        frames, the frames apart from the deaths."""
        frames, deaths = [], []
        try:
            event = self.inbox.get(timeout=wait)
        except stdqueue.Empty:
            return frames, deaths
        while event is not None:
            (frames if isinstance(event, FrameArrived) else deaths).append(event)
            if len(frames) >= most:
                break
            try:
                event = self.inbox.get_nowait()
            except stdqueue.Empty:
                event = None
        return [e.result for e in frames], deaths

    def worker_status(self) -> dict:
        """Each worker's own counters (frames, stage times; raycollect/metrics.py): read
        from each live worker, the queue registry's copy for those gone."""
        registry = self.queue.workers()
        for m in list(self.members.values()):
            try:
                registry[m.id] = ray.get(m.actor.status.remote(), timeout=WORKER_STATUS_TIMEOUT)
            except (ray.exceptions.RayError, TimeoutError):
                pass
        return registry

    # --- browsers (raycollect/browser_hosts.py) ----------------------------------------
    def browser_status(self) -> dict:
        return self.browsers.status()

    # --- shutdown ----------------------------------------------------------------------
    def close(self, grace: float = POOL_CLOSE_GRACE) -> None:
        """Ask workers to stop (they give back prefetched leases), then end everything."""
        with self._lock:  # no worker is adopted once this is set
            self._closed.set()
            members = list(self.members.values())
        stops = [m.actor.stop.remote() for m in members]
        try:
            ray.get(stops, timeout=grace)
        except Exception:  # dead workers cannot answer; they are killed below
            pass
        deadline = time.time() + grace
        for m in members:
            if m.thread is not None:
                m.thread.join(max(0.0, deadline - time.time()))
        for thread in self._replacers:  # they notice the close within WORKER_START_POLL
            thread.join(grace)
        for m in members:
            _kill(m.actor)
        # A drain thread still inside Ray when the caller shuts Ray down can crash the
        # process: the killed workers' generators end now, and their threads with them.
        for m in members:
            if m.thread is not None:
                m.thread.join(DRAIN_STOP_GRACE)
        self.browsers.close(grace)
        self.members.clear()


_START_ERRORS = (ray.exceptions.RayActorError, ray.exceptions.GetTimeoutError)


def _started(worker_id: str, actor, closed: threading.Event) -> dict:
    """Start a worker; an error its start raised (no assets folder on its node, say) is
    raised as itself, not as a Ray error. Waits in short steps, so that a pool that closes
    meanwhile (the run ended while a replacement waited for a free slot) is not left with
    a thread inside Ray after Ray shuts down."""
    ref = actor.start.remote()
    deadline = time.monotonic() + WORKER_START_TIMEOUT
    while not ray.wait([ref], timeout=WORKER_START_POLL)[0]:
        if closed.is_set():
            _kill(actor)
            raise RunFailed("the pool is closing")
        if time.monotonic() > deadline:
            raise ray.exceptions.GetTimeoutError(
                f"worker {worker_id} did not start within {WORKER_START_TIMEOUT:.0f} s")
    try:
        return ray.get(ref)
    except ray.exceptions.RayTaskError as e:
        if isinstance(e, ray.exceptions.RayActorError):
            raise
        _kill(actor)
        cause = unwrap(e)
        if isinstance(cause, RaycollectError):
            raise cause from None
        raise RunFailed(f"worker {worker_id} could not start: {cause!r}") from None


def _kill(actor) -> None:
    try:
        ray.kill(actor, no_restart=True)
    except (ray.exceptions.RayError, ValueError):  # already gone
        pass
