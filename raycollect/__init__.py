"""raycollect: render large synthetic-image datasets in parallel with Ray, Vuer and Chromium."""

from .assets import asset
from .errors import (AssetsError, BrokenModel, BrowserError, ClusterUnreachable, FatalFault,
                     InvalidJob, JobFault, JournalDamaged, ModelLoadError, NoBrowser,
                     OutputBusy, OutputError, QueueUnavailable, RaycollectError, RenderError,
                     RunFailed, SceneError, StoreError, TransientFault, UnknownJob,
                     WrongQueue)
from .camera import intrinsics, look_at, project
from .config import Config
from .dataset import read
from .driver import Run, render
from .export import export
from .jobs import Job, JobState, Lease, Result
from .queue import JobQueue
from .records import Failure, Summary
from .scene import demo_scene, orbit

__all__ = [
    "render", "Run", "Config", "Summary", "Failure", "read", "export", "asset", "look_at", "intrinsics", "project", "demo_scene", "orbit",
    "JobQueue", "JobState", "Job", "Lease", "Result",
    "RaycollectError", "InvalidJob", "UnknownJob", "WrongQueue", "QueueUnavailable",
    "SceneError", "BrowserError", "NoBrowser", "RenderError", "RunFailed", "AssetsError",
    "ModelLoadError", "BrokenModel", "ClusterUnreachable", "JobFault", "TransientFault",
    "FatalFault", "OutputBusy", "OutputError", "JournalDamaged", "StoreError",
]
