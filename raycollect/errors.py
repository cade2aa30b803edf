"""The exceptions raycollect raises: one base class, one line of meaning each.

Every error belongs to one of three groups, and the group alone decides what happens:

- JobFault: this job's input is wrong; retrying cannot help. The job fails now (final).
- TransientFault: this attempt failed; another may not. The job is retried, up to
  max_attempts.
- FatalFault: the run cannot go on (no browser, no Chromium, a bug); the run stops with it.

`disposition(error)` turns any exception into a Disposition (FINAL, RETRY or ABORT);
workers, the pool and the driver all ask it instead of deciding for themselves.
"""

import contextlib
import enum
import os


class RaycollectError(Exception):
    """Base class of every error raycollect raises on purpose."""


class JobFault(RaycollectError):
    """A job's own input is unusable: it fails without retries."""


class TransientFault(RaycollectError):
    """An attempt failed for a reason that may not recur: the job is retried."""


class FatalFault(RaycollectError):
    """The run cannot go on: it stops, saying why."""


class InvalidJob(JobFault, ValueError):
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


class QueueUnavailable(TransientFault, RuntimeError):
    """The queue actor could not be found, created or reached."""


class SceneError(TransientFault, RuntimeError):
    """A scene function raised, or returned something that is not vuer elements (retried:
    scene functions may read files or services that fail for a moment)."""


class SessionLost(TransientFault, ConnectionError):
    """The browser page went away while a batch was on it (its jobs are tried again)."""


class GrabTimedOut(TransientFault, TimeoutError):
    """The page did not answer a grab in time (its jobs are tried again)."""


class RenderError(TransientFault, RuntimeError):
    """The browser did not produce a usable frame for a job."""


class ModelLoadError(TransientFault, RuntimeError):
    """A model or texture of a scene never loaded in the browser (a time-out: retried)."""


class BrokenModel(JobFault, RuntimeError):
    """A model or texture file failed to load or parse in the browser (not retried)."""


class BrowserError(FatalFault, RuntimeError):
    """Chromium is missing, would not start, or kept crashing."""


class NodeNotReady(FatalFault, RuntimeError):
    """A node of the cluster cannot render: raycollect, Chromium or `raycollect browsers` is
    missing there (the message names the node and what to do)."""


class NoBrowser(FatalFault, TimeoutError):
    """No browser session attached to a render worker within the time limit."""


class AssetsError(FatalFault, RuntimeError):
    """The assets folder is missing, or cannot be shipped to or found on a node."""


class OutputBusy(FatalFault, RuntimeError):
    """Another live run is writing the output (raycollect/output/lock.py)."""


class OutputError(FatalFault, OSError):
    """The output cannot be written: a full disk, a read-only or failing filesystem."""


def output_error(root, error: OSError) -> OutputError:
    """What a failed write to the output says: which output (or file of it), what the
    system said, and how much room its filesystem has left."""
    try:
        st = os.statvfs(root if os.path.exists(root) else os.path.dirname(os.path.abspath(root)))
        free = f"{st.f_bavail * st.f_frsize:,} bytes free on its filesystem"
    except OSError:
        free = "its free space unknown"
    return OutputError(f"output {root}: cannot write ({error.strerror or error}; {free}): make "
                       f"room or fix the filesystem, then run again: every job that did not "
                       f"land is rendered then, once")


class StoreError(FatalFault, OSError):
    """An object store output cannot be reached, read or written (after retries), or its
    URL, bucket or credentials are wrong (raycollect/output/store.py)."""


class JournalDamaged(FatalFault, RuntimeError):
    """The output's queue journal cannot be read; `raycollect repair OUT` rebuilds it."""


class ClusterUnreachable(FatalFault, ConnectionError):
    """The Ray cluster named (or recorded by an earlier `ray start`) does not answer."""


class RunFailed(FatalFault, RuntimeError):
    """A render run could not finish."""


class Disposition(str, enum.Enum):
    """What a failed attempt means for its job: fail it now, try it again, or stop the run."""

    FINAL = "final"
    RETRY = "retry"
    ABORT = "abort"


def disposition(error: BaseException) -> Disposition:
    """The one failure policy, for any exception. Anything that is not a raycollect error is
    a bug (in raycollect, or in code it calls where no error was expected): the run stops
    with it rather than retrying it as if a browser had been lost."""
    if isinstance(error, JobFault):
        return Disposition.FINAL
    if isinstance(error, TransientFault):
        return Disposition.RETRY
    return Disposition.ABORT


def unwrap(error: BaseException) -> BaseException:
    """The error behind a Ray error: Ray wraps what a task or actor method raised in a
    RayTaskError whose `cause` is the original. The one place raycollect looks inside."""
    cause = getattr(error, "cause", None)
    return cause if isinstance(cause, BaseException) else error


@contextlib.contextmanager
def from_ray(unreachable=None):
    """Where a call crosses into Ray, the one mapping of what comes back (as httpx's
    map_exceptions does for its transports): a raycollect error the remote code raised is
    raised as itself, not inside Ray's RayTaskError; an actor that is gone (died, or
    unreachable while Ray restarts it past its retries) becomes `unreachable(error)` when
    given. Anything else is Ray's, raised as it is."""
    try:
        yield
    except Exception as e:
        import ray.exceptions as rx  # here: the CLI checks its input before importing Ray

        if isinstance(e, rx.RayTaskError):
            cause = unwrap(e)
            if isinstance(cause, RaycollectError):
                raise cause from None
            raise
        if unreachable is not None and isinstance(e, (rx.ActorUnavailableError,
                                                      rx.ActorDiedError)):
            raise unreachable(e) from e
        raise
