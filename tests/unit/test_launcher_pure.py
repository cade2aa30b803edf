"""The launcher path's pieces that need no Ray: the two example configs run the same node
commands, the job-table match for `raycollect browsers`, and the raylet liveness check."""

import socket
from pathlib import Path

import yaml

from raycollect import node_watch
from raycollect.preflight import _BROWSERS

ROOT = Path(__file__).resolve().parents[2]
NODE_COMMANDS = ("setup_commands", "head_setup_commands", "worker_setup_commands",
                 "head_start_ray_commands", "worker_start_ray_commands", "file_mounts",
                 "rsync_exclude", "rsync_filter")


def test_cloud_config_runs_what_the_tested_local_config_runs():
    cloud = yaml.safe_load((ROOT / "examples" / "cluster.yaml").read_text())
    local = yaml.safe_load((ROOT / "examples" / "cluster-local.yaml").read_text())
    for key in NODE_COMMANDS:
        assert cloud.get(key) == local.get(key), key
    assert local["setup_commands"] == ["bash ~/raycollect/scripts/node_setup.sh"]
    for script in ("node_setup.sh", "node_start.sh"):
        assert (ROOT / "scripts" / script).exists()


def test_browsers_drivers_are_told_from_other_drivers():
    for line in ("/v/bin/python /v/bin/raycollect browsers --address auto",
                 "raycollect -v browsers", "/usr/local/bin/raycollect browsers"):
        assert _BROWSERS.search(line), line
    for line in ("python scripts/collect.py --address auto --browsers external",
                 "/v/bin/raycollect run --browsers external", "raycollect browsersx"):
        assert not _BROWSERS.search(line), line


def test_raylet_check_follows_the_socket(tmp_path):
    path = str(tmp_path / "raylet")
    assert not node_watch.raylet_answers(path)  # no socket at all
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(path)
    server.listen(1)
    assert node_watch.raylet_answers(path)
    server.close()  # the file stays, as a dead raylet's does
    assert Path(path).exists() and not node_watch.raylet_answers(path)
