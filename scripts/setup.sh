#!/usr/bin/env bash
# Sets up a fresh Debian/Ubuntu machine for raycollect: a venv in .venv with the package
# installed (editable, with test extras), and Debian's chromium when no browser is found.
# Safe to run again: it only installs what is missing.
set -euo pipefail
cd "$(dirname "$0")/.."

PY=${PYTHON:-python3}
if ! command -v "$PY" >/dev/null; then
  echo "setup: python3 is missing. Install it: sudo apt-get install -y python3 python3-venv" >&2
  exit 1
fi
if [ ! -x .venv/bin/python ]; then
  echo "setup: creating .venv"
  "$PY" -m venv .venv || {
    echo "setup: could not create a venv. Install it: sudo apt-get install -y python3-venv" >&2
    exit 1; }
fi
# Reinstall only when pyproject.toml changed since the last install.
stamp=.venv/.raycollect-installed
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ] || ! .venv/bin/python -c "import raycollect" 2>/dev/null; then
  echo "setup: installing raycollect and its dependencies into .venv"
  .venv/bin/python -m pip install -q --upgrade pip
  .venv/bin/python -m pip install -q -e ".[test]"
  touch "$stamp"
fi

# shellcheck source=scripts/browser.sh
. scripts/browser.sh
if ! have_browser; then
  echo "setup: no Chromium found; installing Debian's chromium"
  if [ "$(id -u)" = 0 ]; then SUDO=""; elif command -v sudo >/dev/null; then SUDO="sudo"; else
    echo "setup: cannot install chromium without root. Run: sudo apt-get install -y chromium" \
         "(or set RAYCOLLECT_CHROMIUM to a Chromium/Chrome binary)" >&2
    exit 1
  fi
  if ! command -v apt-get >/dev/null; then
    echo "setup: no apt-get here. Install Chromium with your package manager, or set" \
         "RAYCOLLECT_CHROMIUM to a Chromium/Chrome binary" >&2
    exit 1
  fi
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq chromium >/dev/null || $SUDO apt-get install -y -qq chromium-browser >/dev/null || {
    echo "setup: apt could not install chromium. Install it by hand, or set RAYCOLLECT_CHROMIUM" >&2
    exit 1; }
fi
