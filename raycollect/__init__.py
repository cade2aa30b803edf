"""raycollect: render large synthetic-image datasets in parallel with Ray, Vuer and Chromium."""

from .errors import (BrowserError, InvalidJob, NoBrowser, QueueUnavailable, RaycollectError,
                     RenderError, RunFailed, SceneError, UnknownJob, WrongQueue)
from .jobs import JobState, Lease
from .queue import JobQueue

__all__ = [
    "JobQueue", "JobState", "Lease",
    "RaycollectError", "InvalidJob", "UnknownJob", "WrongQueue", "QueueUnavailable",
    "SceneError", "BrowserError", "NoBrowser", "RenderError", "RunFailed",
]
