"""Notices that this process's Ray node has gone (`ray stop`, the node lost), for processes that
outlive nothing of Ray's on their own: `raycollect browsers` is a Ray driver that `ray stop`
does not stop, and whose Chromium must not outlive the node it serves."""

from __future__ import annotations

import logging
import socket
import threading
from typing import Callable


log = logging.getLogger(__name__)

# `raycollect browsers` checks that its node's raylet still answers this often, and exits
# (its browsers with it) after this many failed checks in a row: `ray stop` does not stop it
# (it is a driver, not one of Ray's processes), and a driver whose node is gone would otherwise
# live on for Ray's 60 s GCS reconnect timeout, or wait for a queue forever.
NODE_CHECK_PERIOD = 1.0
NODE_GONE_CHECKS = 3
# ...giving its browsers this long to stop and remove their profiles (they die with it anyway).
NODE_GONE_STOP_GRACE = 10.0


def raylet_socket() -> str:
    """The unix socket of this driver's local raylet (after ray.init)."""
    import ray

    return ray._private.worker.global_worker.node.raylet_socket_name


def raylet_answers(path: str) -> bool:
    # A live raylet accepts on its socket; once it has exited the file may stay, but a
    # connection is refused.
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.settimeout(NODE_CHECK_PERIOD)
        try:
            s.connect(path)
        except OSError:
            return False
    return True


def watch(path: str, on_gone: Callable[[], None]) -> threading.Event:
    """Call on_gone (in a daemon thread) once the raylet at `path` has failed
    NODE_GONE_CHECKS checks in a row. Set the returned event to stop watching."""
    stop = threading.Event()

    def loop():
        failed = 0
        while not stop.wait(NODE_CHECK_PERIOD):
            failed = 0 if raylet_answers(path) else failed + 1
            if failed >= NODE_GONE_CHECKS:
                log.info("this node's raylet (%s) is gone", path)
                on_gone()
                return

    threading.Thread(target=loop, name="raycollect-node-watch", daemon=True).start()
    return stop
