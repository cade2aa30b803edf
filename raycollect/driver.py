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
import queue as stdqueue
import shutil
import tempfile
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
from .errors import InvalidJob, OutputError, RaycollectError, RunFailed, StoreError
from .jobs import MalformedJob, Result, prepare
from .pool import WorkerPool
from .queue import JobQueue
from .records import Failure, Summary
from .lock import OutputLock
from .repair import check_journal
from .store import StoreLock
from .writer import STATE_DIR, OutputWriter, StoreWriter, output_error, writer_for

log = logging.getLogger(__name__)


def resolve_workers(workers: int | str) -> int:
    """An int, or "auto": one worker per CPU slot of the cluster (its browser shares it)."""
    if workers == "auto":
        return max(1, int(ray.cluster_resources().get("CPU", 1)))
    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
        raise ValueError(f"workers must be a positive int or 'auto', got {workers!r}")
    return workers


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


class _Feeder(threading.Thread):
    """Validates and submits a run's jobs in chunks while it renders, so the first frame
    comes within seconds whatever the job count, and the driver never holds the job list:
    a generator or a jsonl file is read as the queue takes it."""

    def __init__(self, jobs: Iterable[Any], keys: Sequence[str] | None, queue: JobQueue,
                 writer: OutputWriter | None, summary: Summary):
        super().__init__(daemon=True, name="raycollect-feeder")
        self.jobs, self.keys, self.queue, self.writer, self.summary = jobs, keys, queue, writer, summary
        self.invalid: list[Failure] = []
        self.submitted = 0
        self.error: BaseException | None = None
        self.first = threading.Event()  # something was submitted, or there is nothing
        self.done = threading.Event()
        self.stop = threading.Event()

    def run(self) -> None:
        try:
            it, index, size = iter(self.jobs), 0, C.FIRST_SUBMIT_CHUNK
            while not self.stop.is_set():
                chunk = list(itertools.islice(it, size))
                if not chunk:
                    break
                valid, invalid = validate_jobs(chunk, self.keys, index)
                index += len(chunk)
                size = C.SUBMIT_CHUNK
                self._submit(valid, invalid)
        except BaseException as e:  # reported to the run, which stops with it
            self.error = e
        finally:
            self.done.set()
            self.first.set()

    def _submit(self, valid: list[tuple[str, dict]], invalid: list[Failure]) -> None:
        for f in invalid:
            log.error("invalid job %s: %s", f.job, f.error)
        self.invalid += invalid
        done = self.writer.done if self.writer is not None else ()
        todo = [(j, p) for j, p in valid if j not in done]
        self.summary.jobs += len(valid) + len(invalid)
        self.summary.invalid += len(invalid)
        self.summary.skipped += len(valid) - len(todo)
        if todo:
            self.queue.submit_prepared(todo)  # validate_jobs already made ids and plain params
            # Jobs the journal calls done or failed but the output lacks: render again.
            self.queue.requeue([j for j, _ in todo])
            self.submitted += len(todo)
            self.first.set()


class Run:
    """An iterator of Results; after it is exhausted, `summary` says what happened and
    `failures` lists this run's failed jobs."""

    def __init__(self, jobs: Iterable[Any], scene=None, keys: Sequence[str] | None = None,
                 config: Config | None = None, **options):
        self.scene = scenes.load_scene(scene)
        self._pickle_scene_by_value(self.scene)
        self.jobs, self.keys = jobs, keys
        self.config = (config or Config()).replace(**options)
        self.summary = Summary()
        self.failures: list[Failure] = []
        self.queue: JobQueue | None = None
        self.pool: WorkerPool | None = None
        self._gen: Iterator[Result] | None = None

    @staticmethod
    def _pickle_scene_by_value(fn) -> None:
        """Workers on other nodes cannot import a scene module that lives beside the driver
        script: ship its code with the function instead of a reference to it."""
        import sys
        module = sys.modules.get(getattr(fn, "__module__", "") or "")
        path = getattr(module, "__file__", None) or ""
        if module is None or module.__name__ in ("__main__", "raycollect.scene"):
            return
        if "site-packages" in path or "dist-packages" in path:
            return
        cloudpickle.register_pickle_by_value(module)

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
        """The run, holding its output (one writer per output, raycollect/lock.py) and with
        its journal checked, both before Ray starts."""
        lock = None
        cfg = self.config
        if cfg.out is not None and cfg.to_store:
            lock = StoreLock(cfg.location())
            lock.acquire()
        elif cfg.out is not None:
            state = Path(cfg.out) / STATE_DIR
            try:
                lock = OutputLock(state)
                lock.acquire()
            except OSError as e:
                raise output_error(cfg.out, e) from e
        try:
            if lock is not None and not cfg.to_store:
                check_journal(state / "queue.sqlite", cfg.out)
            yield from self._render()
        finally:
            if lock is not None:
                lock.release()

    def _render(self) -> Iterator[Result]:
        t_start = time.time()
        # Fail in a second, not after starting a cluster of workers; browser hosts on other
        # nodes look for their own.
        cfg = self.config
        if cfg.browsers == "managed" and cfg.chromium is None:
            found = find_chromium()
            # Browser hosts on other nodes of a cluster look for their own.
            cfg = cfg.replace(chromium=found if cfg.address is None else None)
        cluster.init(cfg.address, include_dashboard=False, configure_logging=False,
                     log_to_driver=True)
        n_workers = resolve_workers(cfg.workers)
        if cfg.assets is not None and not isinstance(cfg.assets, asset_folder.Assets):
            cfg = cfg.replace(assets=asset_folder.prepare(cfg.assets))
        self.config = cfg
        writer = writer_for(cfg)
        # Frames of a store output come back without their bytes: a Result reads its arrays
        # from the store when asked (raycollect/jobs.py).
        self._location = cfg.location() if cfg.to_store else None
        scratch = None
        if writer is not None:
            journal = writer.journal_path
            journal.parent.mkdir(parents=True, exist_ok=True)
        else:
            scratch = tempfile.mkdtemp(prefix="raycollect-")
            journal = Path(scratch) / "queue.sqlite"
        self.summary = Summary()
        bar, feeder, store_down = None, None, False
        try:
            self.queue = q = self._open_queue(journal)
            # This run renders its own jobs only: what an earlier run over the same output
            # left pending stays in the journal, parked; the feeder's submits take back the
            # ones this run is given again.
            q.focus([])
            feeder = self._feeder = _Feeder(self.jobs, self.keys, q, writer, self.summary)
            feeder.start()
            bar = tqdm(total=None, unit="frame", disable=not cfg.progress,
                       dynamic_ncols=True, desc="raycollect")
            feeder.first.wait()
            if feeder.submitted:
                self.pool = WorkerPool(q, n_workers, self.scene, cfg)
                self.pool.start()
                yield from self._consume(q, writer, bar)
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
                feeder.join(C.FEEDER_STOP_GRACE)
            if bar is not None:
                bar.close()
            self._finish(None if store_down else writer, feeder.invalid if feeder else [],
                         t_start)
            if scratch:
                shutil.rmtree(scratch, ignore_errors=True)

    def _open_queue(self, journal: Path) -> JobQueue:
        try:
            ray.get_actor(self.config.queue_name, namespace=C.RAY_NAMESPACE)
        except ValueError:
            pass
        else:
            raise RunFailed(f"a queue named {self.config.queue_name!r} is already in use on "
                            f"this Ray cluster (another run?); pass a different queue name")
        return JobQueue.create(name=self.config.queue_name, lease_ttl=self.config.lease_ttl,
                               max_attempts=self.config.max_attempts, journal=str(journal))

    def _consume(self, q: JobQueue, writer: OutputWriter | None, bar: tqdm) -> Iterator[Result]:
        pool = self.pool
        last_stats = last_browsers = 0.0
        no_worker_since = None
        while True:
            frames, deaths = self._take_events(pool)
            results, s = self._record(q, writer, frames)
            for result in results:
                bar.update(1)
                self.summary.rendered += 1
                yield result
            for event in deaths:  # "dead", or "finished" unasked: either way it is gone
                pool.replace(event.worker, event.item)
                self.summary.workers_restarted = pool.replaced
            if pool.members:
                no_worker_since = None
            elif not pool.replacing:
                raise RunFailed("no render worker is left and none could be started")
            else:
                no_worker_since = no_worker_since or time.monotonic()
                if time.monotonic() - no_worker_since > self.config.no_worker_timeout:
                    raise RunFailed(f"no render worker has been left for "
                                    f"{self.config.no_worker_timeout:.0f} s and none could be "
                                    f"placed (every node lost?); rerun to render the rest")
            now = time.time()
            if now - last_browsers >= C.BROWSER_STATUS_PERIOD:
                # A call to every browser host: rarer than the queue's stats, which end the run.
                last_browsers = now
                self._read_browsers(pool)
            # The queue's stats tell when the run is over. Recording frames reads them in the
            # same call; without frames they are polled (each read is a call to the actor).
            if s is None and now - last_stats >= C.STATS_POLL_PERIOD:
                s = q.stats()
            if s is not None:
                last_stats = now
                bar.set_postfix(failed=s["failed"], stale=s["stale_refused"],
                                workers=len(pool.members), refresh=False)
                feeder = self._feeder
                if feeder.error is not None:
                    raise feeder.error
                if feeder.done.is_set() and bar.total is None:
                    bar.total = feeder.submitted
                    bar.refresh()
                if feeder.done.is_set() and s["pending"] == 0 and s["leased"] == 0:
                    # The summary's browser counts are read every few seconds: a restart
                    # since the last read still belongs to this run.
                    self._read_browsers(pool)
                    return

    def _read_browsers(self, pool: WorkerPool) -> None:
        browsers = pool.browser_status()
        self.summary.browsers_restarted = browsers["restarts"]
        self.summary.browsers_recycled = browsers["recycles"]
        if browsers["errors"] and len(browsers["errors"]) >= len(pool.members):
            raise RunFailed("; ".join(browsers["errors"]))

    @staticmethod
    def _take_events(pool: WorkerPool) -> tuple[list, list]:
        """Whatever has arrived (waiting a little if nothing has), frames apart from deaths."""
        frames, deaths = [], []
        try:
            event = pool.inbox.get(timeout=C.INBOX_WAIT)
        except stdqueue.Empty:
            return frames, deaths
        while event is not None:
            (frames if event.kind == "frame" else deaths).append(event)
            if len(frames) >= C.RECORD_BATCH:
                break
            try:
                event = pool.inbox.get_nowait()
            except stdqueue.Empty:
                event = None
        return [e.item for e in frames], deaths

    def _record(self, q: JobQueue, writer: OutputWriter | None,
                frames: list) -> tuple[list[Result], dict | None]:
        """Stage the frames' files, complete their leases in one call, and commit the ones
        the queue accepted. A refused lease is a stale attempt: its frame never lands.
        Returns the recorded results and the queue's stats as of that call."""
        if not frames:
            return [], None
        t0 = time.perf_counter()
        staged = []
        for frame in frames:
            lease = frame.lease
            result = Result(lease.job_id, lease.params, camera=frame.camera, worker=frame.worker,
                            attempt=lease.attempt, timings=dict(frame.timings), node=frame.node,
                            instances=frame.instances, objects=frame.objects,
                            files=frame.files, keys=frame.keys, shard=frame.shard,
                            location=self._location)
            # Already in the output (a rerun over a journal that lost the completion): the
            # lease is completed below, the frame is not written again.
            duplicate = writer is not None and lease.job_id in writer.done
            pairs = writer.stage(result, lease.token) if writer and not duplicate else []
            staged.append((result, pairs, duplicate))
        accepted, stats = q.complete_and_count([f.lease for f in frames],
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
            out.append(result)
        if commits:
            writer.commit_many(commits)
        return out, stats

    def _finish(self, writer: OutputWriter | None, invalid: list[Failure], t_start: float) -> None:
        failures = list(invalid)
        if self.pool is not None:
            self.summary.workers = len(self.pool.members)
            self._read_worker_counters()
            self.pool.close()
        if self.queue is not None:
            try:
                s = self.queue.stats()
                self.summary.stale_refused = s["stale_refused"]
                self.summary.leases_expired = s["expired"]
                self.summary.parked = s["parked"]
                self.summary.refused_heartbeats = s["refused_heartbeats"]
                failures += [Failure(f["job_id"], f["error"], f["attempts"], job_id=f["job_id"],
                                     params=f["params"]) for f in self.queue.failures()]
            except RaycollectError as e:
                log.error("could not read the queue at the end: %s", e)
            try:
                self.queue.kill()
            except Exception:  # already gone with its node
                pass
        self.summary.failed = len(failures)
        if writer is not None:
            sheet = None
            try:
                writer.write_failures([f.to_json() for f in failures])
                sheet = writer.contact_sheet()
            except (OutputError, StoreError) as e:  # what stopped the run says it already
                log.error("raycollect: %s", e)
            finally:
                try:
                    if isinstance(writer, StoreWriter):
                        writer.close(sweep=bool(self.summary.workers_restarted
                                                or self.summary.leases_expired))
                    else:
                        writer.close()
                except (OutputError, StoreError) as e:
                    log.error("raycollect: %s", e)
            self.summary.frames_on_disk = len(writer.done)
            self.summary.contact_sheet = str(sheet) if sheet else None
            self.summary.out = writer.url
        secs = time.time() - t_start
        self.summary.seconds = round(secs, 2)
        self.summary.frames_per_s = round(self.summary.rendered / secs, 2) if secs else 0.0
        self.failures = failures
        log.info("raycollect: %s", self.summary.line())


    def _read_worker_counters(self) -> None:
        """Frames/s and waits per worker and node, from the workers' own counters (read
        from each live worker; the registry's copy for those gone)."""
        try:
            registry = self.queue.workers()
        except RaycollectError:
            return
        for m in list(self.pool.members.values()):
            try:
                registry[m.id] = ray.get(m.actor.status.remote(), timeout=5)
            except (ray.exceptions.RayError, TimeoutError):
                pass
        self.summary.by_worker = metrics.per_worker(registry)
        self.summary.by_node = metrics.per_node(self.summary.by_worker)


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
