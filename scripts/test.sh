#!/usr/bin/env bash
# The tests on a fresh machine: set up what is missing, then run the whole suite against a
# real local Ray, real headless Chromium and the real Vuer client. Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
# robosuite's MJCF files for the MuJoCo comparison (its wheel, unpacked, not installed); the
# tests that need them skip, saying so, when they cannot be fetched.
if [ -z "${RAYCOLLECT_ROBOSUITE_ASSETS:-}" ] && \
    found=$(.venv/bin/python scripts/fetch_robosuite.py); then
  export RAYCOLLECT_ROBOSUITE_ASSETS="$found"
fi
exec .venv/bin/python -m pytest -q "$@"
