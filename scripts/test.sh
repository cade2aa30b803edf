#!/usr/bin/env bash
# The tests on a fresh machine: set up what is missing, then run the whole suite against a
# real local Ray, real headless Chromium and the real Vuer client. Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec .venv/bin/python -m pytest -q "$@"
