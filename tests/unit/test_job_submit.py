"""scripts/job_submit.py submits again only while the job agent is not up (no Ray here: a
stand-in `ray` executable answers as Ray's CLI did on a busy machine)."""

from __future__ import annotations

import importlib.util
import stat
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "job_submit.py"


def _module():
    spec = importlib.util.spec_from_file_location("job_submit", SCRIPT)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _fake_ray(tmp_path, refusals: int, then: str) -> Path:
    count = tmp_path / "count"
    count.write_text("0")
    ray = tmp_path / "ray"
    ray.write_text(f"""#!/bin/sh
n=$(cat {count}); echo $((n + 1)) > {count}
if [ "$n" -lt {refusals} ]; then
  echo "Request failed with status code 500: No available agent to submit job, please try again later."
  exit 1
fi
{then}
""")
    ray.chmod(ray.stat().st_mode | stat.S_IEXEC)
    return ray


def test_refused_for_no_agent_is_submitted_again_and_other_failures_are_not(tmp_path, monkeypatch):
    mod = _module()
    monkeypatch.setattr(mod, "FIRST_PAUSE_S", 0.01)
    ray = str(_fake_ray(tmp_path, 2, 'echo "job ok"; exit 0'))
    monkeypatch.setattr(mod, "_ray", lambda: ray)
    assert mod.submit(["--address", "http://x", "--", "true"], agent_wait=10) == 0
    assert (tmp_path / "count").read_text().strip() == "3"
    # The job's own failure is returned as it is, not retried.
    ray = str(_fake_ray(tmp_path, 0, 'echo "job failed"; exit 7'))
    monkeypatch.setattr(mod, "_ray", lambda: ray)
    assert mod.submit(["--", "false"], agent_wait=10) == 7
    assert (tmp_path / "count").read_text().strip() == "1"
    # An agent that never comes: given up after the wait, with Ray's answer.
    ray = str(_fake_ray(tmp_path, 1000, "exit 0"))
    monkeypatch.setattr(mod, "_ray", lambda: ray)
    assert mod.submit(["--", "true"], agent_wait=0.05) == 1
