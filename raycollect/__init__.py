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

import sys as _sys
import types as _types
from importlib import import_module as _import_module

from .errors import (AssetsError, BrokenModel, BrowserError, ClusterUnreachable, FatalFault,
                     InvalidJob, JobFault, JournalDamaged, ModelLoadError, NoBrowser,
                     OutputBusy, OutputError, QueueUnavailable, RaycollectError, RenderError,
                     RunFailed, SceneError, StoreError, TransientFault, UnknownJob,
                     WrongQueue)

# The rest of the public surface is imported when first used (PEP 562): every Ray actor's
# process imports this package before its own module, and the queue actor and the browser
# hosts need neither Vuer nor numpy nor PIL; importing them all cost each such process about a
# second of CPU at every run's start (tests/unit/test_imports.py checks what they load).
_LAZY = {
    "asset": "assets", "intrinsics": "camera", "look_at": "camera", "project": "camera",
    "Config": "config", "flow": "flow", "read": "output.dataset", "Run": "driver",
    "render": "driver", "export": "output.export", "Job": "jobs", "JobState": "jobs",
    "Lease": "jobs", "Result": "result", "mjcf": "mjcf", "JobQueue": "queue",
    "Failure": "records", "Summary": "records", "demo_scene": "scene", "orbit": "scene",
    "skybox": "scene",
    "rng": "seeding",
}
_SUBMODULES = {"physics", "randomize", "sample"}


def __getattr__(name: str):
    if name in _SUBMODULES:
        value = _import_module(f"{__name__}.{name}")
    elif name in _LAZY:
        value = getattr(_import_module(f"{__name__}.{_LAZY[name]}"), name)
    else:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))


class _Package(_types.ModuleType):
    """`rc.render`, `rc.flow` and `rc.mjcf` are functions named as subpackages/modules:
    importing `raycollect.render` (any worker module) would otherwise set the package's
    `render` to that subpackage, and `rc.render(...)` would then call a module."""

    _SHADOWED = frozenset({"render", "flow", "mjcf"})

    def __reduce__(self):
        # As a module is pickled (cloudpickle's table knows only types.ModuleType itself):
        # by reference, imported again where it is unpickled.
        return _import_module, (self.__name__,)

    def __setattr__(self, name, value):
        if name in self._SHADOWED and isinstance(value, _types.ModuleType):
            return  # the import system's binding of the subpackage; the function is wanted
        super().__setattr__(name, value)


_sys.modules[__name__].__class__ = _Package


__all__ = [
    "render", "Run", "Config", "Summary", "Failure", "read", "export", "asset", "look_at", "intrinsics", "project", "demo_scene", "orbit", "flow", "skybox",
    "mjcf",
    "rng", "sample", "randomize", "physics",
    "JobQueue", "JobState", "Job", "Lease", "Result",
    "RaycollectError", "InvalidJob", "UnknownJob", "WrongQueue", "QueueUnavailable",
    "SceneError", "BrowserError", "NoBrowser", "RenderError", "RunFailed", "AssetsError",
    "ModelLoadError", "BrokenModel", "ClusterUnreachable", "JobFault", "TransientFault",
    "FatalFault", "OutputBusy", "OutputError", "JournalDamaged", "StoreError",
]
