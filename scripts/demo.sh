#!/usr/bin/env bash
# The main job on a fresh machine: set up what is missing, then render the demo dataset
# (an orbit of 64 views at 320x240, 2 workers, local Ray, managed Chromium) into ./renders.
# Extra arguments go to `raycollect run` (try --help).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec .venv/bin/raycollect run "$@"
