"""The exceptions raycollect raises: one base class, one line of meaning each."""


class RaycollectError(Exception):
    """Base class of every error raycollect raises on purpose."""


class InvalidJob(RaycollectError, ValueError):
    """A job's params are unusable; names the job and the offending field."""

    def __init__(self, job: str, field: str, message: str):
        self.job, self.field, self.message = job, field, message
        super().__init__(f"job {job}: field {field!r}: {message}")


class UnknownJob(RaycollectError, KeyError):
    """A call named a job id that this queue never had."""

    def __str__(self) -> str:  # KeyError would print the repr of the message
        return str(self.args[0]) if self.args else "unknown job"


class WrongQueue(RaycollectError, ValueError):
    """A lease was handed to a queue other than the one that issued it."""


class QueueUnavailable(RaycollectError, RuntimeError):
    """The queue actor could not be found, created or reached."""


class SceneError(RaycollectError, RuntimeError):
    """A scene function raised, or returned something that is not vuer elements."""


class BrowserError(RaycollectError, RuntimeError):
    """Chromium is missing, would not start, or kept crashing."""


class NoBrowser(RaycollectError, TimeoutError):
    """No browser session attached to a render worker within the time limit."""


class RenderError(RaycollectError, RuntimeError):
    """The browser did not produce a usable frame for a job."""


class AssetsError(RaycollectError, RuntimeError):
    """The assets folder is missing, or cannot be shipped to or found on a node."""


class ModelLoadError(RaycollectError, RuntimeError):
    """A model or texture of a scene failed to load in the browser, or never loaded."""

    def __init__(self, message: str, retry: bool = False):
        super().__init__(message)
        self.retry = retry  # a time-out may pass; a failed load of the same file will not


class RunFailed(RaycollectError, RuntimeError):
    """A render run ended with failed jobs or could not finish."""
