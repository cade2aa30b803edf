"""`render()`: jobs in, frames out, as they arrive, exactly once.

The driver validates every job before any browser time is spent, submits the valid ones to a
journaled queue, runs a pool of render workers, and for each frame that arrives: writes it
under a temporary name, completes its lease, and only if the queue accepts the lease renames
the file and records the job in the manifest. A rerun over the same output directory recovers
the queue from its journal and renders only what the manifest lacks.
"""

from __future__ import annotations

import itertools
import logging
import math
import threading
import time
from pathlib import Path
from typing import Any, Iterable, Iterator, Sequence

import ray
from ray import cloudpickle
from tqdm import tqdm

from . import assets as asset_folder, camera, cluster, constants as C, metrics
from . import scene as scenes
from .browser import find_chromium
from .config import Config
from .errors import InvalidJob, RaycollectError, RunFailed, StoreError
from .jobs import MalformedJob, prepare
from .result import Result
from .pool import WorkerPool
from .queue import JobQueue, queue_call
from .records import Failure, Summary
from .render.leases import jobs_per_lease
from .output.open import Output, open_output

# The first chunk of jobs the driver submits is small, so that rendering starts at once.
FIRST_SUBMIT_CHUNK = 500
# The driver reads the queue's stats this often while no frames arrive (recording frames
# reads them in the same call, so a run whose jobs all render never polls). Only a run whose
# last jobs fail, and the failure count on the progress bar, wait for a poll. Each read costs
# the driver 1.5-2 ms of CPU: at 0.5 s, the gaps between a 2-worker run's batches at 640x480
# held 1-2 reads a second, about 0.15 ms per frame.
STATS_POLL_PERIOD = 2.0
# How long the driver waits for the next frame before it looks at the rest (deaths, browsers).
INBOX_WAIT = 0.5
FEEDER_STOP_GRACE = 30.0  # a run's end waits this long for the job feeder's last chunk
# The driver asks its browser hosts for crashes and errors this often, and once at the end:
# each read is a call to every host, and only the summary and a run whose browsers all gave
# up need it.
BROWSER_STATUS_PERIOD = 5.0
# Frames the driver records per queue call (one complete_and_count for all of them).
RECORD_BATCH = 64

log = logging.getLogger(__name__)


def resolve_workers(workers: int | str) -> int:
    """An int, or "auto": one worker per CPU slot of the cluster (its browser shares it)."""
    if workers == "auto":
        return max(1, int(ray.cluster_resources().get("CPU", 1)))
    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
        raise ValueError(f"workers must be a positive int or 'auto', got {workers!r}")
    return workers


def workers_for(workers: int, jobs: int | None, views_per_update: int) -> int:
    """The workers a run starts: no more than can lease jobs. A worker leases its next batch
    and the prefetched one at once (raycollect/render/leases.py), so a run of 20 jobs at 14
    views per update keeps one worker busy, and a second would only cost its start (its
    process, Chromium and the page: seconds of CPU). A worker lost mid-run is replaced as
    ever. `jobs`: None when not known yet (a long generator)."""
    if jobs is None:
        return workers
    return max(1, min(workers, math.ceil(jobs / jobs_per_lease(views_per_update))))


def validate_jobs(jobs: Iterable[Any], keys: Sequence[str] | None = None, start: int = 0
                  ) -> tuple[list[tuple[str, dict]], list[Failure]]:
    """Split jobs into valid (id, params) pairs and failures naming job and field. `start`
    is the index of the first job in the whole list (for names like `#12`).

    Ids repeat for repeated jobs (same params, or same key); the first one counts."""
    valid, invalid, seen = [], [], set()
    for i, params in enumerate(jobs, start):
        if isinstance(params, MalformedJob):
            name = f"{params.source}:{params.line}"
            invalid.append(Failure(name, f"job {name}: field 'json': {params.error}",
                                   field="json", index=i))
            continue
        key = None if keys is None else [keys[i]]
        try:
            [(job_id, plain)] = prepare([params], key, start=i)
        except InvalidJob as e:
            name = f"#{i}" if keys is None else repr(keys[i])
            invalid.append(Failure(name, str(e), field=e.field, index=i))
            continue
        try:
            camera.validate(job_id, plain)
        except InvalidJob as e:
            invalid.append(Failure(job_id, str(e), field=e.field, job_id=job_id, index=i,
                                   params=plain))
            continue
        if job_id not in seen:
            seen.add(job_id)
            valid.append((job_id, plain))
    return valid, invalid


def _pickle_scene_by_value(fn) -> None:
    """Workers on other nodes cannot import a scene module that lives beside the driver
    script: ship its code with the function instead of a reference to it."""
    import sys
    module = sys.modules.get(getattr(fn, "__module__", "") or "")
    path = getattr(module, "__file__", None) or ""
    if module is None or module.__name__ == "__main__" or \
            module.__name__.split(".")[0] == "raycollect":
        return
    if "site-packages" in path or "dist-packages" in path:
        return
    cloudpickle.register_pickle_by_value(module)


def _start(config: Config) -> tuple[Config, int]:
    """Ray up and the run's config completed: its Chromium found (in a second, not after
    starting a cluster of workers), its assets prepared; and how many workers it has."""
    if config.browsers == "managed" and config.chromium is None:
        found = find_chromium()
        # Browser hosts on other nodes of a cluster look for their own.
        config = config.replace(chromium=found if config.address is None else None)
    cluster.init(config.address, include_dashboard=False, configure_logging=False,
                 log_to_driver=True)
    n_workers = resolve_workers(config.workers)
    if config.assets is not None and not isinstance(config.assets, asset_folder.Assets):
        config = config.replace(assets=asset_folder.prepare(config.assets))
    return config, n_workers


def _open_queue(config: Config, journal: Path) -> JobQueue:
    try:
        return JobQueue.create(name=config.queue_name, lease_ttl=config.lease_ttl,
                               max_attempts=config.max_attempts, journal=str(journal), new=True)
    except ray.exceptions.ActorAlreadyExistsError:
        raise RunFailed(f"a queue named {config.queue_name!r} is already in use on "
                        f"this Ray cluster (another run?); pass a different queue name") from None


def _queue_end(queue: JobQueue, summary: Summary) -> list[Failure]:
    """The queue's last word on the run (its counters into the summary, its failed jobs),
    then the queue actor ends."""
    failures = []
    try:
        s = queue.stats()
        summary.stale_refused = s["stale_refused"]
        summary.leases_expired = s["expired"]
        summary.parked = s["parked"]
        summary.refused_heartbeats = s["refused_heartbeats"]
        failures = [Failure(f["job_id"], f["error"], f["attempts"], job_id=f["job_id"],
                            params=f["params"]) for f in queue.failures()]
    except RaycollectError as e:
        log.error("could not read the queue at the end: %s", e)
    try:
        queue.kill()
    except Exception:  # already gone with its node
        pass
    return failures


def _pool_end(pool: WorkerPool, summary: Summary) -> None:
    """The workers' own counts into the summary, then the workers and browsers end."""
    summary.workers = len(pool.members)
    try:
        summary.by_worker = metrics.per_worker(pool.worker_status())
        summary.by_node = metrics.per_node(summary.by_worker)
    except RaycollectError:  # the queue is gone: no registry to read
        pass
    pool.close()


class _Timers:
    """Named monotonic timestamps of the run's loop: when a periodic read is due, and how
    long a condition has held."""

    def __init__(self):
        self._t: dict[str, float] = {}

    def due(self, name: str, period: float) -> bool:
        now = time.monotonic()
        if now - self._t.get(name, -math.inf) >= period:
            self._t[name] = now
            return True
        return False

    def reset(self, name: str) -> None:
        self._t[name] = time.monotonic()

    def since(self, name: str) -> float:
        """Seconds since `name` was first asked about after its last clear()."""
        now = time.monotonic()
        return now - self._t.setdefault(name, now)

    def clear(self, name: str) -> None:
        self._t.pop(name, None)


class _Feeder(threading.Thread):
    """Validates and submits a run's jobs in chunks while it renders, so the first frame
    comes within seconds whatever the job count, and the driver never holds the job list:
    a generator or a jsonl file is read as the queue takes it."""

    def __init__(self, jobs: Iterable[Any], keys: Sequence[str] | None, queue: JobQueue,
                 recorded: set[str]):
        super().__init__(daemon=True, name="raycollect-feeder")
        self.jobs, self.keys, self.queue = jobs, keys, queue
        self.recorded = recorded  # the job ids the output holds (it grows as frames land)
        self.invalid: list[Failure] = []
        self.submitted = 0
        # Its own counts: the run copies them into the summary, which only it writes.
        self.seen = self.skipped = 0
        self.error: BaseException | None = None
        # Set once the run has something to render (before it reaches the queue: the run
        # starts its workers meanwhile, so their processes start while the queue's does),
        # or once the feeder has finished (`has_work` then says whether it ever had any).
        self.first = threading.Event()
        self.has_work = False
        # The jobs to render, when the first chunk held them all (known before the queue
        # has them, so the run starts no worker that could never lease one); else None.
        self.total: int | None = None
        self.done = threading.Event()
        self.stop = threading.Event()
        self._focus = None  # the focus call's ref until it is waited for

    def run(self) -> None:
        try:
            # This run renders its own jobs only: what an earlier run over the same output
            # left pending stays in the journal, parked; the submits below take back the
            # ones this run is given again. Sent now, before any worker exists, so no lease
            # comes before it; waited for only before the first submit, so the first chunk
            # is validated and the workers' processes start while the queue's does.
            self._focus = self.queue.focus([], wait=False)
            it, index, size = iter(self.jobs), 0, FIRST_SUBMIT_CHUNK
            while not self.stop.is_set():
                chunk = list(itertools.islice(it, size))
                if not chunk:
                    break
                valid, invalid = validate_jobs(chunk, self.keys, index)
                whole = index == 0 and len(chunk) < size  # the first chunk is every job
                index += len(chunk)
                size = C.SUBMIT_CHUNK
                self._submit(valid, invalid, whole)
        except BaseException as e:  # reported to the run, which stops with it
            self.error = e
        finally:
            self.done.set()
            self.first.set()

    def _submit(self, valid: list[tuple[str, dict]], invalid: list[Failure],
                whole: bool = False) -> None:
        for f in invalid:
            log.error("invalid job %s: %s", f.job, f.error)
        self.invalid += invalid
        todo = [(j, p) for j, p in valid if j not in self.recorded]
        self.seen += len(valid) + len(invalid)
        self.skipped += len(valid) - len(todo)
        if whole:  # before `first` is set: the run reads it then
            self.total = len(todo)
        if todo:
            self.has_work = True
            self.first.set()
            if self._focus is not None:  # the queue actor is up once it has answered
                queue_call(self._focus)
                self._focus = None
            self.queue.submit_prepared(todo)  # validate_jobs already made ids and plain params
            # Jobs the journal calls done or failed but the output lacks: render again.
            self.queue.requeue([j for j, _ in todo])
            self.submitted += len(todo)


class Run:
    """An iterator of Results; after it is exhausted, `summary` says what happened and
    `failures` lists this run's failed jobs."""

    def __init__(self, jobs: Iterable[Any], scene=None, keys: Sequence[str] | None = None,
                 config: Config | None = None, **options):
        self.scene = scenes.load_scene(scene)
        _pickle_scene_by_value(self.scene)
        self.jobs, self.keys = jobs, keys
        # A scene object may say what it needs (an MJCF world, raycollect/mjcf/world.py: its
        # Z-up axes and the folder of files it wrote); what the caller gives wins.
        defaults = getattr(self.scene, "render_defaults", None)
        if callable(defaults):
            options = {**defaults(), **{k: v for k, v in options.items() if v is not None}}
        self.config = (config or Config()).replace(**options)
        self.summary = Summary()
        self.failures: list[Failure] = []
        self.queue: JobQueue | None = None
        self.pool: WorkerPool | None = None
        self._gen: Iterator[Result] | None = None

    def __iter__(self) -> Iterator[Result]:
        if self._gen is None:
            self._gen = self._run()
        return self._gen

    def close(self) -> None:
        """Stop early: workers stop, leases go back, the output is closed consistently."""
        if self._gen is not None:
            self._gen.close()

    def __enter__(self) -> "Run":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _run(self) -> Iterator[Result]:
        """The run, holding its output (one writer per output, raycollect/output/lock.py) and with
        its journal checked, both before Ray starts."""
        output = open_output(self.config)
        try:
            yield from self._render(output)
        finally:
            output.close()

    def _render(self, output: Output) -> Iterator[Result]:
        t_start = time.time()
        config, n_workers = _start(self.config)
        self.config = config
        self.summary = Summary()
        bar, feeder, store_down = None, None, False
        try:
            # The queue actor's start is not waited for here: the feeder's first call waits
            # for it while the workers start (a run's start-up is these processes' starts).
            self.queue = q = _open_queue(config, output.journal)
            feeder = self._feeder = _Feeder(self.jobs, self.keys, q, output.recorded)
            feeder.start()
            bar = tqdm(total=None, unit="frame", disable=not config.progress,
                       dynamic_ncols=True, desc="raycollect")
            feeder.first.wait()
            if feeder.has_work and feeder.error is None:
                n_workers = workers_for(n_workers, feeder.total, config.views_per_update)
                self.pool = WorkerPool(q, n_workers, self.scene, config)
                self.pool.start()
                yield from self._consume(q, output, bar)
            feeder.done.wait()
            if feeder.error is not None:
                raise feeder.error
        except RaycollectError as e:
            # The store is gone past its retries (here, or on a worker): what the end of a
            # run writes to it (failures, contact sheet, the last manifest part) would only
            # wait as long again. A rerun finishes the output; what was not recorded renders
            # again.
            store_down = isinstance(e, StoreError) or isinstance(e.__cause__, StoreError)
            raise
        finally:
            if feeder is not None:
                # It stops between chunks; it must not be inside a Ray call once the run is
                # over (the caller may shut Ray down next).
                feeder.stop.set()
                feeder.join(FEEDER_STOP_GRACE)
            if bar is not None:
                bar.close()
            self._finish(None if store_down else output, feeder, t_start)

    def _consume(self, q: JobQueue, output: Output, bar: tqdm) -> Iterator[Result]:
        """The run's loop: record what arrived and hand it over, replace lost workers, and
        read the queue's stats until they say the run is over. Each step is a method of its
        own below; this thread is the only one that writes the summary."""
        pool = self.pool
        clock = _Timers()
        while True:
            frames, deaths = pool.take(RECORD_BATCH, INBOX_WAIT)
            results, stats = output.record(q, frames)
            for result in results:
                bar.update(1)
                self.summary.rendered += 1
                yield result
            self._replace(pool, deaths)
            self._check_workers_left(pool, clock)
            if clock.due("browsers", BROWSER_STATUS_PERIOD):
                # A call to every browser host: rarer than the queue's stats.
                self._read_browsers(pool)
            # The queue's stats tell when the run is over. Recording frames reads them in the
            # same call; without frames they are polled (each read is a call to the actor).
            if stats is None and clock.due("stats", STATS_POLL_PERIOD):
                stats = q.stats()
            if stats is not None:
                clock.reset("stats")
                self._show(bar, stats, pool)
                if self._over(stats):
                    # The summary's browser counts are read every few seconds: a restart
                    # since the last read still belongs to this run.
                    self._read_browsers(pool)
                    return

    def _replace(self, pool: WorkerPool, deaths: list) -> None:
        for event in deaths:  # died, or finished unasked: either way it is gone
            pool.replace(event.worker, event.error)
        self.summary.workers_restarted = pool.replaced

    def _check_workers_left(self, pool: WorkerPool, clock: "_Timers") -> None:
        """A run with no worker, and none coming, fails (at once, or after
        no_worker_timeout while replacements cannot be placed)."""
        if pool.members:
            clock.clear("no_worker")
        elif not pool.replacing:
            raise RunFailed("no render worker is left and none could be started")
        elif clock.since("no_worker") > self.config.no_worker_timeout:
            raise RunFailed(f"no render worker has been left for "
                            f"{self.config.no_worker_timeout:.0f} s and none could be "
                            f"placed (every node lost?); rerun to render the rest")

    def _show(self, bar: tqdm, stats: dict, pool: WorkerPool) -> None:
        bar.set_postfix(failed=stats["failed"], stale=stats["stale_refused"],
                        workers=len(pool.members), refresh=False)
        feeder = self._feeder
        if feeder.done.is_set() and bar.total is None:
            bar.total = feeder.submitted
            bar.refresh()

    def _over(self, stats: dict) -> bool:
        """Every job submitted, none pending or leased. A feeder that failed ends the run."""
        feeder = self._feeder
        if feeder.error is not None:
            raise feeder.error
        return feeder.done.is_set() and stats["pending"] == 0 and stats["leased"] == 0

    def _read_browsers(self, pool: WorkerPool) -> None:
        browsers = pool.browser_status()
        self.summary.browsers_restarted = browsers["restarts"]
        self.summary.browsers_recycled = browsers["recycles"]
        if browsers["errors"] and len(browsers["errors"]) >= len(pool.members):
            raise RunFailed("; ".join(browsers["errors"]))

    def _finish(self, output: Output | None, feeder: "_Feeder | None",
                t_start: float) -> None:
        failures = list(feeder.invalid) if feeder else []
        if feeder is not None:  # joined by now: its counts are final
            self.summary.jobs, self.summary.skipped = feeder.seen, feeder.skipped
            self.summary.invalid = len(feeder.invalid)
        if self.pool is not None:
            _pool_end(self.pool, self.summary)
        if self.queue is not None:
            failures += _queue_end(self.queue, self.summary)
        self.summary.failed = len(failures)
        if output is not None and output.url is not None:
            self.summary.contact_sheet = output.finish(
                [f.to_json() for f in failures], self.config,
                lost=bool(self.summary.workers_restarted or self.summary.leases_expired))
            self.summary.frames_on_disk = len(output.recorded)
            self.summary.out = output.url
        secs = time.time() - t_start
        self.summary.seconds = round(secs, 2)
        self.summary.frames_per_s = round(self.summary.rendered / secs, 2) if secs else 0.0
        self.failures = failures
        log.info("raycollect: %s", self.summary.line())


def render(jobs: Iterable[Any], scene=None, workers: int | str = C.DEFAULT_WORKERS,
           out: str | Path | None = None, address: str | None = None,
           keys: Sequence[str] | None = None, **options) -> Run:
    """Render jobs; iterate the returned Run for Results as frames arrive.

    jobs: dicts with params["camera"] = {"matrix", "fov", "width", "height"[, "near", "far"]};
    every other key is the scene's. scene: a function params -> vuer elements, or
    "module:function"; None is the built-in demo. workers: an int or "auto". out: a directory
    for frames/, manifest.jsonl, failures.jsonl and contact_sheet.png. address: a Ray cluster
    address (None: a live cluster recorded by `ray start`, else a local Ray). keys: one id per
    job instead of content hashes. Every other option is a field of raycollect.config.Config
    (depth, masks, assets, browsers, lease_ttl, max_attempts, views_per_update, ...)."""
    return Run(jobs, scene=scene, keys=keys, workers=workers, out=None if out is None else str(out),
               address=address, **options)
