"""Headless Chromium, launched as a plain subprocess: finding it, one page per render worker,
and a manager that keeps one browser attached to every worker of its node.

Each browser gets a fresh profile directory (removed on exit, and also its TMPDIR: Chromium
leaves a directory for its singleton socket in TMPDIR each time it is killed), its own process
group (so the whole Chromium tree is stopped together) and PR_SET_PDEATHSIG, so that even a
SIGKILLed parent leaves no orphan Chromium behind. A profile is named after the process that
made it; the profiles of a process that was killed before it could remove them (about 10 MB
each) are removed by the next browser manager on that machine.
"""

from __future__ import annotations

import ctypes
import logging
import os
import shutil
import signal
import subprocess
import tempfile
import threading
import time
from dataclasses import dataclass, field

from . import constants as C
from .errors import BrowserError

CHROMIUM_CANDIDATES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
BROWSER_MAX_CRASHES = 5
BROWSER_CRASH_WINDOW = 60.0
BROWSER_POLL_PERIOD = 0.5
BROWSER_STOP_GRACE = 3.0
# A worker missing from the registry keeps its browser this long: a restarted queue forgets
# its registry until the workers' next refresh, and that must not cost them their pages.
BROWSER_ABSENT_GRACE = 15.0
# `raycollect browsers` lets go of a queue it could not reach this many polls in a row (the
# run ended) and waits for the next one.
BROWSER_QUEUE_GONE_POLLS = 10
CHROMIUM_VERSION_TIMEOUT = 30.0  # `chromium --version`
BROWSER_THREAD_JOIN = 30.0  # a browser host's watcher thread, when it stops

log = logging.getLogger(__name__)

# Flags measured to work on these machines (README, Performance): software WebGL through SwiftShader, and
# no background traffic to a network that is closed.
CHROMIUM_FLAGS = (
    "--headless=new", "--no-sandbox", "--disable-gpu", "--use-angle=swiftshader",
    "--enable-unsafe-swiftshader", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-quic",
    "--disable-default-apps", "--disable-extensions", "--mute-audio",
    "--no-default-browser-check", "--disable-dev-shm-usage",
    # A page in a background tab would be throttled; ours is the only one and must not be.
    "--disable-background-timer-throttling", "--disable-renderer-backgrounding",
    "--disable-backgrounding-occluded-windows", "--window-size=800,600",
)

INSTALL_HINT = ("install Chromium (Debian/Ubuntu: `sudo apt-get install -y chromium`) or set "
                f"{C.CHROMIUM_ENV} to a Chromium or Chrome binary")


def find_chromium(required: bool = True) -> str | None:
    """The browser binary: $RAYCOLLECT_CHROMIUM, else the first candidate on PATH."""
    env = os.environ.get(C.CHROMIUM_ENV)
    if env:
        path = shutil.which(env)
        if path is None:
            raise BrowserError(f"{C.CHROMIUM_ENV}={env!r} is not an executable")
        return path
    for name in CHROMIUM_CANDIDATES:
        path = shutil.which(name)
        if path:
            return path
    if required:
        raise BrowserError(f"no Chromium found on PATH (tried {', '.join(CHROMIUM_CANDIDATES)}): "
                           f"{INSTALL_HINT}")
    return None


def chromium_version(path: str) -> str:
    try:
        out = subprocess.run([path, "--version"], capture_output=True, text=True,
                             timeout=CHROMIUM_VERSION_TIMEOUT)
        return out.stdout.strip() or out.stderr.strip()
    except (OSError, subprocess.TimeoutExpired) as e:
        return f"unknown ({e})"


_PR_SET_PDEATHSIG = 1


def undo_ray_niceness() -> None:
    """Ray starts worker processes at niceness 15 so that its own services win the CPU. A
    render worker and its browser are the job itself: at 15 they lose to everything else on
    the node (the driver, Ray's services), and a browser inherits its parent's niceness.
    Lowering niceness needs CAP_SYS_NICE; without it we keep what Ray gave."""
    try:
        os.setpriority(os.PRIO_PROCESS, 0, 0)
    except PermissionError:
        log.debug("cannot lower niceness from %d (no CAP_SYS_NICE)", os.getpriority(os.PRIO_PROCESS, 0))


def _die_with_parent() -> None:  # runs in the child between fork and exec
    try:
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
    except OSError:
        pass  # not Linux: the process group kill in stop() still applies


PROFILE_PREFIX = "raycollect-chromium-"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process
        return True
    return True


def remove_orphan_profiles(folder: str | None = None) -> int:
    """Remove the browser profiles whose owner process is gone (a browser host or worker that
    was SIGKILLed, or lost with Ray, could not remove them). Returns how many."""
    folder = folder or tempfile.gettempdir()
    removed = 0
    try:
        names = os.listdir(folder)
    except OSError:
        return 0
    for name in names:
        owner = name[len(PROFILE_PREFIX):].split("-", 1)[0]
        if name.startswith(PROFILE_PREFIX) and owner.isdigit() and not _alive(int(owner)):
            shutil.rmtree(os.path.join(folder, name), ignore_errors=True)
            removed += 1
    if removed:
        log.info("removed %d browser profile(s) left by processes that are gone", removed)
    return removed


class Browser:
    """One headless Chromium with one page open at `url`."""

    def __init__(self, url: str, binary: str | None = None):
        self.url = url
        self.binary = binary or find_chromium()
        self.profile = tempfile.mkdtemp(prefix=f"{PROFILE_PREFIX}{os.getpid()}-")
        self.started = time.time()
        self.proc = subprocess.Popen(
            [self.binary, *CHROMIUM_FLAGS, f"--user-data-dir={self.profile}", url],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            env={**os.environ, "TMPDIR": self.profile},
            start_new_session=True, preexec_fn=_die_with_parent)
        log.debug("chromium pid %d -> %s", self.proc.pid, url)

    @property
    def pid(self) -> int:
        return self.proc.pid

    def alive(self) -> bool:
        return self.proc.poll() is None

    def stop(self) -> None:
        """Stop the whole Chromium process group and remove the profile."""
        if self.proc.poll() is None:
            for sig, wait in ((signal.SIGTERM, BROWSER_STOP_GRACE), (signal.SIGKILL, 5.0)):
                try:
                    os.killpg(self.proc.pid, sig)
                except ProcessLookupError:
                    break
                try:
                    self.proc.wait(wait)
                    break
                except subprocess.TimeoutExpired:
                    continue
        try:  # children that outlived the leader are still in its group
            os.killpg(self.proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        shutil.rmtree(self.profile, ignore_errors=True)


@dataclass
class _Slot:
    """The browser of one worker and its crash history."""

    url: str
    browser: Browser | None = None
    frames_at_launch: int = 0
    crashes: list = field(default_factory=list)
    launches: int = 0
    gave_up: str | None = None
    seen: float = field(default_factory=time.time)  # last time the registry listed it


class BrowserManager:
    """Keeps one headless page attached to each render worker of this node.

    Follows the queue's registry of workers: a worker that appears gets a browser, one that
    goes away has its browser stopped. A browser that exits is relaunched; one that crashes
    BROWSER_MAX_CRASHES times within BROWSER_CRASH_WINDOW is given up with an error. A browser
    is recycled after `recycle_frames` frames, since Chromium grows in memory over time."""

    def __init__(self, queue, node_id: str | None = None, binary: str | None = None,
                 recycle_frames: int = C.BROWSER_RECYCLE_JOBS,
                 poll_period: float = BROWSER_POLL_PERIOD):
        self.queue = queue
        # Nodes are told apart by Ray node id, not IP: several nodes can share one address
        # (ray.cluster_utils on one machine), and a browser must reach its worker by loopback.
        self.node_id = node_id
        self.binary = binary or find_chromium()
        self.recycle_frames = recycle_frames
        self.poll_period = poll_period
        self.slots: dict[str, _Slot] = {}
        self.restarts = 0
        self.recycles = 0
        self.errors: list[str] = []
        # Set when this manager cannot do its job at all (Chromium will not launch): the run
        # reads it and stops with this cause instead of waiting for browsers that never come.
        self.fatal: str | None = None
        self.queue_lost = False
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        remove_orphan_profiles()  # before this manager launches any browser of its own

    # --- lifecycle -------------------------------------------------------------------------
    def start(self) -> "BrowserManager":
        self._thread = threading.Thread(target=self._loop, name="raycollect-browsers", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=BROWSER_THREAD_JOIN)
        with self._lock:
            for slot in self.slots.values():
                if slot.browser is not None:
                    slot.browser.stop()
                    slot.browser = None

    def __enter__(self) -> "BrowserManager":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    def run_forever(self) -> None:
        """For `raycollect browsers`: follow the registry until interrupted."""
        try:
            self._loop()
        finally:
            self.stop()

    # --- the loop ----------------------------------------------------------------------------
    def _loop(self) -> None:
        failures = 0
        while not self._stop.is_set():
            try:
                registry = self.queue.workers()
                failures = 0
            except Exception as e:  # the queue may be restarting; keep the browsers we have
                failures += 1
                log.warning("browser manager: cannot read the worker registry: %s", e)
                registry = None
                if failures >= BROWSER_QUEUE_GONE_POLLS:
                    self.queue_lost = True
                    return
            if registry is not None:
                try:
                    with self._lock:
                        self._sync(registry)
                except BrowserError as e:
                    self.fatal = str(e)
                    log.error("browser manager stops: %s", e)
                    return
            self._stop.wait(self.poll_period)

    def _sync(self, registry: dict[str, dict]) -> None:
        now = time.time()
        mine = {w: info for w, info in registry.items()
                if self.node_id is None or info.get("node_id") == self.node_id}
        for worker in list(self.slots):
            slot = self.slots[worker]
            if worker in mine and mine[worker]["url"] == slot.url:
                slot.seen = now
                continue
            if worker in mine or now - slot.seen > BROWSER_ABSENT_GRACE:
                if slot.browser is not None:
                    slot.browser.stop()
                del self.slots[worker]
        for worker, info in mine.items():
            slot = self.slots.setdefault(worker, _Slot(info["url"]))
            if slot.gave_up:
                continue
            frames = int(info.get("frames", 0))
            if slot.browser is not None and slot.browser.alive():
                if self.recycle_frames and frames - slot.frames_at_launch >= self.recycle_frames:
                    log.info("recycling the browser of %s after %d frames", worker,
                             frames - slot.frames_at_launch)
                    self.recycles += 1
                    slot.browser.stop()
                    self._launch(worker, slot, frames)
                continue
            if slot.browser is not None:  # it exited without being asked to
                code = slot.browser.proc.returncode
                slot.browser.stop()
                slot.browser = None
                now = time.time()
                slot.crashes = [t for t in slot.crashes if now - t < BROWSER_CRASH_WINDOW] + [now]
                log.warning("browser of %s exited (code %s); crash %d of %d allowed per %.0f s",
                            worker, code, len(slot.crashes), BROWSER_MAX_CRASHES,
                            BROWSER_CRASH_WINDOW)
                if len(slot.crashes) >= BROWSER_MAX_CRASHES:
                    slot.gave_up = (f"the browser for {worker} ({slot.url}) crashed "
                                    f"{len(slot.crashes)} times within {BROWSER_CRASH_WINDOW:.0f} s; "
                                    f"giving up on it (last exit code {code})")
                    log.error(slot.gave_up)
                    self.errors.append(slot.gave_up)
                    continue
                self.restarts += 1
            self._launch(worker, slot, frames)

    def _launch(self, worker: str, slot: _Slot, frames: int) -> None:
        try:
            slot.browser = Browser(slot.url, self.binary)
        except OSError as e:
            raise BrowserError(f"cannot start {self.binary}: {e}; {INSTALL_HINT}") from e
        slot.frames_at_launch = frames
        slot.launches += 1
        log.info("browser pid %d attached to %s (%s)", slot.browser.pid, worker, slot.url)
