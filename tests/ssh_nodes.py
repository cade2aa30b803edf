"""Machines for Ray's cluster launcher, on this one: each "node" is a network namespace with
its own address on a private bridge, running its own sshd (Debian's openssh-server) that
takes one key made for the test. Ray started there has its ports to itself, so a test's
cluster neither collides with nor is found by any other Ray on the machine.

Each node has its own PID namespace, so `ray stop` there sees only that node's processes.
A node also gets a home of its own (its folder bind-mounted on root's home in the node's own
mount namespace, so that everything that reads the home from the password database, as ssh
does for `-i ~/key`, finds the node's), and a TMPDIR and environment of its own through
sshd's SetEnv: what the launcher's commands write under ~ (the shipped working copy,
~/.bashrc, ~/.ray) and under TMPDIR (Ray's session folders, Chromium profiles) stays in the
test's folder. Files a node must see must therefore not be under root's home.

Needs root (ip netns, a bridge) and /usr/sbin/sshd; `available()` says what is missing.
"""

from __future__ import annotations

import os
import random
import shutil
import signal
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

SSHD = "/usr/sbin/sshd"
SSH_PORT = 22  # each node has its own network namespace, so the standard port is free there
SSHD_UP_TIMEOUT = 20.0
PROCESS_STOP_GRACE = 5.0
SUBNET_PREFIX = "10.231"  # a /24 under it is picked per fabric, one not routed already


def available() -> str | None:
    """Why nodes cannot be made here, or None."""
    if os.geteuid() != 0:
        return "needs root (ip netns, a bridge, sshd)"
    for tool in (SSHD, shutil.which("ip"), shutil.which("ssh-keygen"), shutil.which("rsync")):
        if not tool or not os.path.exists(tool):
            return "needs openssh-server, openssh-client, rsync and iproute2 (scripts/setup.sh)"
    return None


def _run(*cmd: str) -> str:
    return subprocess.run(cmd, check=True, capture_output=True, text=True, timeout=30).stdout


def _free_subnet() -> str:
    used = _run("ip", "-4", "route", "show") + _run("ip", "-4", "addr", "show")
    for third in random.sample(range(256), 256):
        net = f"{SUBNET_PREFIX}.{third}."
        if net not in used:
            return net
    raise RuntimeError(f"no free /24 under {SUBNET_PREFIX}.0.0/16")


@dataclass
class Node:
    name: str
    ip: str
    netns: str
    root: Path  # home, tmp and sshd files of this node
    env: dict = field(default_factory=dict)
    sshd: subprocess.Popen | None = None

    @property
    def home(self) -> Path:
        return self.root / "home"

    @property
    def tmp(self) -> Path:
        return self.root / "tmp"

    def pids(self) -> list[int]:
        """Every process in this node's network namespace (all started through this fabric)."""
        out = subprocess.run(["ip", "netns", "pids", self.netns], capture_output=True,
                             text=True, timeout=30).stdout
        return [int(p) for p in out.split()]

    def commands(self, exclude_sshd: bool = True) -> dict[int, str]:
        found = {}
        for pid in self.pids():
            try:
                cmd = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode().strip()
            except OSError:
                continue
            if exclude_sshd and self.sshd is not None and pid == self.sshd.pid:
                continue
            found[pid] = cmd
        return found


class Fabric:
    """A bridge with nodes on it. `with Fabric(root, key_pub) as f: f.add("head")`.
    Leaving stops every process in the nodes' namespaces and removes what was made."""

    def __init__(self, root: Path, public_key: str, env: dict | None = None):
        self.root = root
        self.public_key = public_key
        self.env = env or {}
        self.tag = f"{random.getrandbits(16):04x}"
        self.bridge = f"rcbr{self.tag}"
        self.subnet = _free_subnet()
        self.nodes: list[Node] = []
        self._links: list[str] = []

    @property
    def host_ip(self) -> str:
        return f"{self.subnet}1"

    def __enter__(self) -> "Fabric":
        _run("ip", "link", "add", self.bridge, "type", "bridge")
        self._links.append(self.bridge)
        _run("ip", "addr", "add", f"{self.host_ip}/24", "dev", self.bridge)
        _run("ip", "link", "set", self.bridge, "up")
        return self

    def add(self, name: str, env: dict | None = None) -> Node:
        i = len(self.nodes)
        node = Node(name, f"{self.subnet}{i + 2}", f"rc-{self.tag}-{name}", self.root / name,
                    {**self.env, **(env or {})})
        self.nodes.append(node)  # before anything is made, so that __exit__ removes it
        outside, inside = f"rcv{self.tag}{i}", f"rcv{self.tag}{i}n"
        _run("ip", "netns", "add", node.netns)
        _run("ip", "link", "add", outside, "type", "veth", "peer", "name", inside)
        self._links.append(outside)
        _run("ip", "link", "set", outside, "master", self.bridge)
        _run("ip", "link", "set", outside, "up")
        _run("ip", "link", "set", inside, "netns", node.netns)
        ns = ("ip", "netns", "exec", node.netns)
        _run(*ns, "ip", "link", "set", "lo", "up")
        _run(*ns, "ip", "addr", "add", f"{node.ip}/24", "dev", inside)
        _run(*ns, "ip", "link", "set", inside, "up")
        self._start_sshd(node)
        return node

    def _start_sshd(self, node: Node) -> None:
        etc = node.root / "sshd"
        for d in (etc, node.home, node.tmp):
            d.mkdir(parents=True, exist_ok=True)
        _run("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(etc / "host_key"))
        (etc / "authorized_keys").write_text(self.public_key)
        env = {"TMPDIR": str(node.tmp), **node.env}
        (etc / "sshd_config").write_text("\n".join([
            f"ListenAddress {node.ip}:{SSH_PORT}",
            f"HostKey {etc / 'host_key'}",
            f"PidFile {etc / 'sshd.pid'}",
            f"AuthorizedKeysFile {etc / 'authorized_keys'}",
            "PermitRootLogin prohibit-password", "PasswordAuthentication no",
            "KbdInteractiveAuthentication no", "UsePAM no",
            "StrictModes no",  # the test's folders are not root's home
            "MaxStartups 50", "MaxSessions 50", "PrintMotd no", "LogLevel ERROR",
            # The node's own home and TMPDIR: what the launcher's commands write stays here.
            "SetEnv " + " ".join(f'{k}="{v}"' if " " in str(v) else f"{k}={v}"
                                 for k, v in env.items()),
        ]) + "\n")
        Path("/run/sshd").mkdir(exist_ok=True)  # sshd's privilege separation directory
        home = os.path.expanduser("~root")
        # `ip netns exec` runs in a mount namespace of its own (mounts made there stay there).
        # A PID namespace too: `ray stop` (node_start.sh, `ray down`) stops every Ray process
        # it can see, which on a shared machine would be the other node's and anyone else's.
        # sshd is its init: when it goes, everything started in the node goes with it.
        node.sshd = subprocess.Popen(
            ["ip", "netns", "exec", node.netns, "unshare", "--pid", "--fork", "--mount-proc",
             "sh", "-c",
             f'mount --bind "$0" "$1" && exec {SSHD} -D -e -f "$2"',
             str(node.home), home, str(etc / "sshd_config")],
            stdout=subprocess.DEVNULL, stderr=open(etc / "sshd.log", "wb"), start_new_session=True)
        deadline = time.monotonic() + SSHD_UP_TIMEOUT
        while True:
            if node.sshd.poll() is not None:
                raise RuntimeError(f"sshd of node {node.name} exited: "
                                   f"{(etc / 'sshd.log').read_text()[-2000:]}")
            try:
                with socket.create_connection((node.ip, SSH_PORT), timeout=1):
                    return
            except OSError:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"sshd of node {node.name} not listening on "
                                       f"{node.ip}:{SSH_PORT} within {SSHD_UP_TIMEOUT:.0f} s")
                time.sleep(0.1)

    def stop_processes(self, node: Node) -> list[str]:
        """Stop every process left in the node's namespace (sshd too); returns what was left
        besides sshd and its sessions."""
        left = [cmd for pid, cmd in node.commands().items() if "sshd" not in cmd]
        for sig in (signal.SIGTERM, signal.SIGKILL):
            pids = node.pids()
            if not pids:
                break
            for pid in pids:
                try:
                    os.kill(pid, sig)
                except ProcessLookupError:
                    pass
            deadline = time.monotonic() + PROCESS_STOP_GRACE
            while node.pids() and time.monotonic() < deadline:
                time.sleep(0.1)
        if node.sshd is not None:
            try:
                node.sshd.wait(PROCESS_STOP_GRACE)
            except subprocess.TimeoutExpired:
                pass
        return left

    def __exit__(self, *exc) -> None:
        for node in self.nodes:
            self.stop_processes(node)
            subprocess.run(["ip", "netns", "del", node.netns], capture_output=True, timeout=30)
        for link in reversed(self._links):
            subprocess.run(["ip", "link", "del", link], capture_output=True, timeout=30)
