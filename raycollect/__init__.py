"""raycollect: render large synthetic-image datasets in parallel with Ray, Vuer and Chromium.

The layers, from the caller down:

    render(), Run, Config, JobQueue, errors, camera   the public surface (this package)
    driver.py, pool.py, browser_hosts.py              the driver: feed, record, replace
    queue.py, journal.py, jobs.py                     the job queue actor and its journal
    result.py                                         Result: what a rendered job gives back
    render/  (worker, batches, leases, page, stage, ids, sink, server, capture_js/)
    output/  (open, writer, lock, store, manifest, files, shards, sheet, dataset, exports)
    testing/ (the pybullet reference, soak, example scenes, chaos)   never imported at run time

A job's path: render(jobs) validates and submits them to the queue actor in chunks ->
a RenderWorker leases a batch, builds the scene, sends it to its browser page and waits
until the page shows that revision -> it grabs each view (RGB, depth and ids from one
render, capture_js/), encodes the files (to the store itself, for an s3:// output) and
yields Results -> the driver completes their leases in one queue call, and the frames the
queue accepted are written and their manifest lines appended: a job is in the output
exactly when its line is there -> the Result is handed to you. docs/design.md has the rest.
"""

from .assets import asset
from .errors import (AssetsError, BrokenModel, BrowserError, ClusterUnreachable, FatalFault,
                     InvalidJob, JobFault, JournalDamaged, ModelLoadError, NoBrowser,
                     OutputBusy, OutputError, QueueUnavailable, RaycollectError, RenderError,
                     RunFailed, SceneError, StoreError, TransientFault, UnknownJob,
                     WrongQueue)
from .camera import intrinsics, look_at, project
from .config import Config
from .flow import flow
from .output.dataset import read
from .driver import Run, render
from .output.export import export
from .jobs import Job, JobState, Lease
from .result import Result
from .mjcf import mjcf
from .queue import JobQueue
from .records import Failure, Summary
from .scene import demo_scene, orbit
from .seeding import rng
from . import physics, randomize, sample

__all__ = [
    "render", "Run", "Config", "Summary", "Failure", "read", "export", "asset", "look_at", "intrinsics", "project", "demo_scene", "orbit", "flow",
    "mjcf",
    "rng", "sample", "randomize", "physics",
    "JobQueue", "JobState", "Job", "Lease", "Result",
    "RaycollectError", "InvalidJob", "UnknownJob", "WrongQueue", "QueueUnavailable",
    "SceneError", "BrowserError", "NoBrowser", "RenderError", "RunFailed", "AssetsError",
    "ModelLoadError", "BrokenModel", "ClusterUnreachable", "JobFault", "TransientFault",
    "FatalFault", "OutputBusy", "OutputError", "JournalDamaged", "StoreError",
]
