#!/usr/bin/env bash
# The tests on a fresh machine: set up what is missing, then run the whole suite against a
# real local Ray, real headless Chromium and the real Vuer client. Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
# The cluster-launcher test (tests/test_launcher.py: machines made of network namespaces, each
# with its own sshd) needs root, an SSH server and client, rsync and iproute2.
missing=()
[ -x /usr/sbin/sshd ] || missing+=(openssh-server)
command -v ssh >/dev/null || missing+=(openssh-client)
command -v rsync >/dev/null || missing+=(rsync)
command -v ip >/dev/null || missing+=(iproute2)
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    echo "test: installing ${missing[*]} for tests/test_launcher.py"
    DEBIAN_FRONTEND=noninteractive apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null ||
      echo "test: apt could not install ${missing[*]}; tests/test_launcher.py will fail" >&2
  else
    echo "test: tests/test_launcher.py needs root and ${missing[*]}" \
         "(sudo apt-get install -y ${missing[*]}); it is skipped without root" >&2
  fi
fi
# robosuite's MJCF files for the MuJoCo comparison (its wheel, unpacked, not installed); the
# tests that need them skip, saying so, when they cannot be fetched.
if [ -z "${RAYCOLLECT_ROBOSUITE_ASSETS:-}" ] && \
    found=$(.venv/bin/python scripts/fetch_robosuite.py); then
  export RAYCOLLECT_ROBOSUITE_ASSETS="$found"
fi
exec .venv/bin/python -m pytest -q "$@"
