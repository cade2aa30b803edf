"""`ray job submit`, retried while the cluster's job agent is not up yet.

Right after `ray start --head` the dashboard answers before its job agent has registered, and
`ray job submit` fails with "No available agent to submit job, please try again later" (HTTP
500): the job was refused, nothing ran, so submitting again is safe. This script passes its
arguments to `ray job submit`, shows its output as it comes, and submits again (after 1, 2, 4,
... s, for up to --agent-wait seconds) only when that is the answer. Any other failure, and
the job's own exit status, are returned as they are.

    RAY_AUTH_MODE=token python scripts/job_submit.py --address http://HEAD:8265 \\
        --working-dir . -- python scripts/collect.py --address auto --workers auto ...
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time

NO_AGENT = "No available agent to submit job"
AGENT_WAIT_S = 120.0
FIRST_PAUSE_S = 1.0
MAX_PAUSE_S = 8.0


def _ray() -> str:
    beside = os.path.join(os.path.dirname(sys.executable), "ray")
    return beside if os.path.exists(beside) else (shutil.which("ray") or "ray")


def submit(args: list[str], agent_wait: float = AGENT_WAIT_S) -> int:
    deadline = time.monotonic() + agent_wait
    pause = FIRST_PAUSE_S
    while True:
        proc = subprocess.Popen([_ray(), "job", "submit", *args], stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, text=True, bufsize=1)
        refused = False
        for line in proc.stdout:
            sys.stdout.write(line)
            sys.stdout.flush()
            refused = refused or NO_AGENT in line
        code = proc.wait()
        if code == 0 or not refused or time.monotonic() + pause > deadline:
            return code
        print(f"job_submit: the cluster's job agent is not up yet; submitting again in "
              f"{pause:.0f} s", file=sys.stderr, flush=True)
        time.sleep(pause)
        pause = min(pause * 2, MAX_PAUSE_S)


def main(argv: list[str]) -> int:
    wait = AGENT_WAIT_S
    if argv[:1] == ["--agent-wait"]:
        wait, argv = float(argv[1]), argv[2:]
    return submit(argv, wait)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
