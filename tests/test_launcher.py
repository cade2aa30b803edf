"""Ray's cluster launcher, run whole, over SSH: `ray up` of examples/cluster-local.yaml (only
its provider and auth changed) onto a head and a worker node, each a network namespace with
its own address and its own sshd (tests/ssh_nodes.py); `ray submit` of scripts/collect.py;
`ray down`. What the launcher runs on the nodes is the shipped scripts/node_setup.sh and
scripts/node_start.sh, the same commands examples/cluster.yaml gives clouds."""

from __future__ import annotations

import concurrent.futures
import contextlib
import getpass
import hashlib
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
import yaml

import ssh_nodes
from conftest import read_jsonl

# Needs root (network namespaces, a bridge, sshd), openssh-server and rsync, which
# scripts/setup.sh installs; skipped, saying so, only where it cannot run as root.
pytestmark = [pytest.mark.browser, pytest.mark.launcher]
ROOT = Path(__file__).resolve().parents[1]
CONFIG = ROOT / "examples" / "cluster-local.yaml"
BIN = Path(sys.executable).parent
# Enough small batches that the head's worker, whose browser is up first, is still
# rendering when the worker node's browser attaches (a single worker on this machine takes
# about a minute over them; the second attaches seconds after the first): with 16 views, one
# update of 14 and the prefetched rest went to the first worker before the other had a page.
VIEWS = 96
VIEWS_PER_UPDATE = 2
# A first `ray up` installs raycollect and its dependencies into the nodes' venv (about a
# minute and a half from pip's cache here); later runs find it installed.
UP_TIMEOUT = 600
SUBMIT_TIMEOUT = 300
NODES_TIMEOUT = 240.0  # the head's autoscaler sets the worker node up after `ray up` returns
# After `ray down` (which runs `ray stop` on the head only), a worker node's Ray is stopped by
# scripts/head_watch.sh once the head has been gone this long (60 s by default, as Ray's own
# GCS reconnect timeout; shorter here to keep the suite's time).
HEAD_GONE_S = 6
HEAD_GONE_TIMEOUT = 30.0
WORKER_GONE_TIMEOUT = HEAD_GONE_S + 60.0
LEFTOVERS = ("raylet", "gcs_server", "raycollect", "chromium", "ray::", "dashboard", "monitor.py")


def _node_venv() -> Path:
    """The nodes' venv, kept between runs (installing Ray into a new one takes a minute or
    more), one per working copy so that two checkouts' tests never share one. Not under
    root's home, which a node sees as its own (tests/ssh_nodes.py)."""
    digest = hashlib.sha256(str(ROOT).encode()).hexdigest()[:8]
    return Path("/var/tmp/raycollect-launcher") / f"venv-{digest}"


def _config(path: Path, head: str, workers: list[str], key: Path, name: str) -> Path:
    config = yaml.safe_load(CONFIG.read_text())
    config["cluster_name"] = name
    config["provider"].update(head_ip=head, worker_ips=workers)
    config["auth"].update(ssh_user="root", ssh_private_key=str(key))
    path.write_text(yaml.safe_dump(config))
    return path


class Launcher:
    """`ray up/submit/exec/down` as a user runs them from their own machine: a home of its
    own (the token in ~/.ray), and a TMPDIR of its own for the launcher's state files."""

    def __init__(self, root: Path, config: Path):
        self.config = config
        self.home, self.tmp = root / "laptop", root / "laptop-tmp"
        for d in (self.home, self.tmp):
            d.mkdir()
        env = {k: v for k, v in os.environ.items() if not k.startswith("RAY_")}
        env.update(HOME=str(self.home), TMPDIR=str(self.tmp), PATH=f"{BIN}:{os.environ['PATH']}",
                   RAY_USAGE_STATS_ENABLED="0",
                   # As docs/cluster.md says: with the local provider, Ray 2.60's autoscaler v2
                   # (`ray up`'s default since 2.50) never set up the worker machines.
                   RAY_UP_enable_autoscaler_v2="0")
        self.env = env
        self.log: list[str] = []

    def run(self, *args: str, timeout: float = 120) -> subprocess.CompletedProcess:
        t0 = time.monotonic()
        done = subprocess.run([str(BIN / "ray"), *args], cwd=ROOT, env=self.env,
                              capture_output=True, text=True, timeout=timeout)
        self.log.append(f"$ ray {' '.join(args)}  # {time.monotonic() - t0:.1f} s, "
                        f"exit {done.returncode}\n{(done.stdout + done.stderr)[-3000:]}")
        return done

    def exec(self, command: str, timeout: float = 120) -> subprocess.CompletedProcess:
        return self.run("exec", str(self.config), command, timeout=timeout)


def _alive_nodes(launcher: Launcher) -> int:
    done = launcher.exec("python -c 'import ray; ray.init(address=\"auto\", log_to_driver=False); "
                         "print(\"NODES\", sum(n[\"Alive\"] for n in ray.nodes()))'")
    found = re.search(r"NODES (\d+)", done.stdout)
    return int(found.group(1)) if found else 0


def _wait(condition, timeout: float, what: str, period: float = 1.0):
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"{what} within {timeout:.0f} s")
        time.sleep(period)


def _leftovers(node: ssh_nodes.Node) -> list[str]:
    return [cmd for cmd in node.commands().values() if any(k in cmd for k in LEFTOVERS)]


def _control_path(name: str) -> Path:
    # Where Ray's SSH runner keeps its ControlMaster sockets (autoscaler/_private/command_runner.py).
    user = hashlib.sha256(getpass.getuser().encode()).hexdigest()[:10]
    return Path("/tmp") / f"ray_ssh_{user}" / hashlib.sha256(name.encode()).hexdigest()[:10]


@contextlib.contextmanager
def _pip_proxy(host: str):
    """tests/connect_proxy.py on the bridge: the nodes' only way out, for pip."""
    proc = subprocess.Popen([sys.executable, str(Path(__file__).parent / "connect_proxy.py"), host],
                            stdout=subprocess.PIPE, text=True, start_new_session=True)
    try:
        port = int(proc.stdout.readline())
        yield f"http://{host}:{port}"
    finally:
        proc.kill()
        proc.wait(10)


def _pip_env(proxy: str, root: Path) -> dict:
    """pip on the nodes as on this machine: its settings, its package index, through the proxy
    (PIP_PROXY is pip's alone: Ray's gRPC on the nodes must not see a proxy)."""
    env = {k: v for k, v in os.environ.items() if k.startswith("PIP_")}
    user_conf = Path.home() / ".config" / "pip" / "pip.conf"  # a node's home is its own
    if user_conf.exists() and "PIP_CONFIG_FILE" not in env:
        shutil.copy(user_conf, root / "pip.conf")
        env["PIP_CONFIG_FILE"] = str(root / "pip.conf")
    return {**env, "PIP_PROXY": proxy}


@pytest.fixture
def fabric_root():
    why = ssh_nodes.available()
    if why and os.geteuid() != 0:
        pytest.skip(why)
    assert why is None, why
    # Short: Ray's unix socket paths under each node's TMPDIR must stay within 107 bytes.
    root = Path(tempfile.mkdtemp(prefix="rcl-", dir="/tmp"))
    yield root
    shutil.rmtree(root, ignore_errors=True)
    shutil.rmtree(_control_path(_cluster_name(root)), ignore_errors=True)
    try:
        _control_path("").parent.rmdir()  # when no other cluster's is left
    except OSError:
        pass


def _cluster_name(root: Path) -> str:
    return f"rc-test-{root.name[4:]}"


@pytest.mark.timeout(900)
def test_ray_up_submit_down_over_ssh(fabric_root):
    root = fabric_root
    key = root / "id_ed25519"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)], check=True)
    name = _cluster_name(root)
    timings = {}
    with ssh_nodes.Fabric(root, (key.with_suffix(".pub")).read_text()) as fabric, \
            _pip_proxy(fabric.host_ip) as proxy:
        node_env = {"RAYCOLLECT_VENV": str(_node_venv()),
                    # Two nodes on a 2-core machine: one render worker each.
                    "RAYCOLLECT_RAY_START_ARGS": "--num-cpus=1",
                    "RAYCOLLECT_HEAD_GONE_S": str(HEAD_GONE_S), **_pip_env(proxy, root)}
        head, worker = fabric.add("head", node_env), fabric.add("worker", node_env)
        config = _config(root / "cluster.yaml", head.ip, [worker.ip], key, name)
        launcher = Launcher(root, config)
        # Token authentication, as examples/cluster-local.yaml says: a token on the user's
        # machine, which file_mounts copies to every node.
        subprocess.run([str(BIN / "ray"), "get-auth-token", "--generate"], env=launcher.env,
                       check=True, capture_output=True, timeout=60)
        up = False
        try:
            t0 = time.monotonic()
            done = launcher.run("up", "-y", str(config), timeout=UP_TIMEOUT)
            timings["first ray up"] = time.monotonic() - t0
            up = True
            assert done.returncode == 0, launcher.log[-1]
            assert (head.home / ".ray" / "auth_token").read_text() == \
                (launcher.home / ".ray" / "auth_token").read_text()

            t0 = time.monotonic()
            _wait(lambda: _alive_nodes(launcher) == 2, NODES_TIMEOUT,
                  "the worker node did not join", period=3.0)
            timings["worker joined after ray up"] = time.monotonic() - t0
            assert (worker.home / ".ray" / "auth_token").exists()

            out = head.home / "renders"
            t0 = time.monotonic()
            done = launcher.run("submit", str(config), "scripts/collect.py", "--",
                                "--address", "auto", "--workers", "auto", "--views", str(VIEWS),
                                "--views-per-update", str(VIEWS_PER_UPDATE),
                                "--size", "96x72", "--browsers", "external", "--out", str(out),
                                "--no-progress", timeout=SUBMIT_TIMEOUT)
            timings["ray submit"] = time.monotonic() - t0
            assert done.returncode == 0, "\n".join(launcher.log[-2:])
            assert f"{VIEWS} rendered" in done.stdout + done.stderr
            manifest = read_jsonl(out / "manifest.jsonl")
            assert len(manifest) == VIEWS
            assert len({m["job_id"] for m in manifest}) == VIEWS
            assert len({m["node"] for m in manifest}) == 2, "frames came from both nodes"

            # Idempotent: the same cluster brought up again, and node_setup.sh run again.
            t0 = time.monotonic()
            done = launcher.run("up", "-y", "--no-restart", str(config), timeout=UP_TIMEOUT)
            timings["second ray up"] = time.monotonic() - t0
            assert done.returncode == 0, launcher.log[-1]
            t0 = time.monotonic()
            done = launcher.exec("bash ~/raycollect/scripts/node_setup.sh")
            timings["node_setup.sh again"] = time.monotonic() - t0
            assert done.returncode == 0, launcher.log[-1]
            assert "already installed" in done.stdout + done.stderr, launcher.log[-1]

            t0 = time.monotonic()
            done = launcher.run("down", "-y", str(config), timeout=180)
            up = False
            assert done.returncode == 0, launcher.log[-1]
            _wait(lambda: not _leftovers(head), HEAD_GONE_TIMEOUT,
                  f"Ray or browsers still running on the head after `ray down`: {_leftovers(head)}")
            timings["head clean after ray down"] = time.monotonic() - t0
            _wait(lambda: not _leftovers(worker), WORKER_GONE_TIMEOUT,
                  f"Ray or browsers still running on the worker: {_leftovers(worker)}")
            timings["worker clean after ray down"] = time.monotonic() - t0
            for node in (head, worker):
                assert not list(node.tmp.glob("raycollect-chromium-*")), "browser profiles left"
                assert not (node.tmp / "ray" / "ray_current_cluster").exists()
        finally:
            if up:
                launcher.run("down", "-y", str(config), timeout=180)
            print("\n".join(launcher.log))
            for node in (head, worker):
                for log in (node.home / "raycollect-browsers.log", node.home / "raycollect-watch.log",
                            *node.tmp.glob("ray/session_*/logs/monitor.log")):
                    if log.exists():
                        print(f"--- {node.name}: {log.name}\n{log.read_text()[-3000:]}")
            print("timings:", {k: round(v, 1) for k, v in timings.items()})


# A failed `ray up` waits for SSH this long (Ray's AUTOSCALER_NODE_START_WAIT_S, 900 s by
# default) before it gives up on the node.
SSH_WAIT_S = 15


@pytest.mark.timeout(600)
def test_ray_up_that_cannot_work_says_why(fabric_root):
    """What a user sees when `ray up` of examples/cluster-local.yaml cannot work: a head
    machine that is not there, a key it does not accept, and a setup command that fails
    (node_setup.sh without a package index): each ends `ray up` with exit status 1, and its
    output names the machine and the cause."""
    root = fabric_root
    key, other = root / "id_ed25519", root / "other_key"
    for k in (key, other):
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(k)], check=True)
    # node_setup.sh installing into a new venv with no index to install from.
    no_index = {"RAYCOLLECT_VENV": str(root / "fresh-venv"), "PIP_INDEX_URL": "http://127.0.0.1:9/simple",
                "PIP_RETRIES": "0", "PIP_TIMEOUT": "2", "PIP_CONFIG_FILE": "/dev/null"}
    with ssh_nodes.Fabric(root, key.with_suffix(".pub").read_text()) as fabric:
        head = fabric.add("head", no_index)
        absent = f"{fabric.subnet}250"  # on the bridge, no machine answers there
        cases = {"absent": (absent, key, [absent, "Failed to setup head node"]),
                 "wrong-key": (head.ip, other, [head.ip, "Permission denied"]),
                 "setup-fails": (head.ip, key, ["node_setup (", "pip install",
                                                "Failed to setup head node"])}

        def attempt(case: str) -> tuple[list[str], str | None]:
            """`ray up` of one case: (its log, what was wrong or None)."""
            ip, k, expected = cases[case]
            name = f"{_cluster_name(root)}-{case}"
            config = _config(root / f"{case}.yaml", ip, [], k, name)
            (root / case).mkdir()
            launcher = Launcher(root / case, config)
            launcher.env["AUTOSCALER_NODE_START_WAIT_S"] = str(SSH_WAIT_S)
            subprocess.run([str(BIN / "ray"), "get-auth-token", "--generate"],
                           env=launcher.env, check=True, capture_output=True, timeout=60)
            try:
                done = launcher.run("up", "-y", str(config), timeout=300)
            finally:
                shutil.rmtree(_control_path(name), ignore_errors=True)
            text = done.stdout + done.stderr
            if done.returncode != 1:
                return launcher.log, f"{case}: exit {done.returncode}, not 1"
            missing = [e for e in expected if e not in text]
            return launcher.log, (f"{case}: {missing} not in the output" if missing else None)

        # The cases are independent (own config, cluster name, laptop home) and mostly wait
        # (on SSH, on pip): run together, they take the time of the slowest, not the sum.
        log = []
        try:
            with concurrent.futures.ThreadPoolExecutor(len(cases)) as pool:
                outcomes = list(pool.map(attempt, cases))
            for case_log, _ in outcomes:
                log += case_log
            wrong = [why for _, why in outcomes if why]
            assert not wrong, "\n".join(wrong)
        finally:
            print("\n".join(log))
