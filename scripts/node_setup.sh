#!/usr/bin/env bash
# Installs Chromium and raycollect on one cluster node, into a venv of its own. The cluster
# launcher's setup_commands run it on every node (examples/cluster-local.yaml for machines of
# your own, examples/cluster.yaml for clouds), from the working copy that file_mounts shipped.
# Safe to run again: a second `ray up` installs nothing when nothing changed.
#
#   RAYCOLLECT_VENV   the node's venv [~/raycollect-venv]
set -euo pipefail
src=$(cd "$(dirname "$0")/.." && pwd)   # the shipped working copy
venv=${RAYCOLLECT_VENV:-$HOME/raycollect-venv}
node=$(hostname)

fail() { echo "node_setup ($node): $*" >&2; exit 1; }

if [ "$(id -u)" = 0 ]; then SUDO=""; elif command -v sudo >/dev/null; then SUDO="sudo -n"; else SUDO=none; fi
apt_install() {
  [ "$SUDO" != none ] && command -v apt-get >/dev/null ||
    fail "cannot install $* here (needs apt-get and root or sudo); install it on this node by hand"
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq "$@" >/dev/null
}

# shellcheck source=scripts/browser.sh
. "$src/scripts/browser.sh"
if ! have_browser; then
  echo "node_setup ($node): installing Chromium"
  apt_install chromium || apt_install chromium-browser ||
    fail "apt could not install chromium; install it, or set RAYCOLLECT_CHROMIUM to a Chromium binary"
fi
command -v python3 >/dev/null || apt_install python3 python3-venv
python3 -c "import ensurepip" 2>/dev/null || apt_install python3-venv

# Two nodes that share a home (NFS) share the venv too: one installs, the other waits.
mkdir -p "$(dirname "$venv")"
exec 9>"$venv.lock"
flock 9
[ -x "$venv/bin/python" ] || python3 -m venv "$venv" || fail "python3 -m venv $venv failed"
# The dependencies are reinstalled when pyproject.toml changes, raycollect itself when its
# source does: a non-editable install, so a node runs the copy it was given even while a newer
# one is being shipped.
deps=$(sha256sum < "$src/pyproject.toml" | cut -c1-16)
code=$(cd "$src" && find pyproject.toml raycollect -type f \( -name '*.py' -o -name '*.js' -o -name '*.toml' \) \
         -not -path '*/__pycache__/*' | LC_ALL=C sort | xargs sha256sum | sha256sum | cut -c1-16)
if [ "$(cat "$venv/.raycollect-deps" 2>/dev/null)" != "$deps" ]; then
  echo "node_setup ($node): installing raycollect and its dependencies into $venv"
  "$venv/bin/python" -m pip install -q "$src" || fail "pip install $src into $venv failed"
  echo "$deps" > "$venv/.raycollect-deps"
  echo "$code" > "$venv/.raycollect-code"
elif [ "$(cat "$venv/.raycollect-code" 2>/dev/null)" != "$code" ]; then
  echo "node_setup ($node): installing this copy of raycollect into $venv"
  "$venv/bin/python" -m pip install -q --no-deps --force-reinstall "$src" ||
    fail "pip install $src into $venv failed"
  echo "$code" > "$venv/.raycollect-code"
else
  echo "node_setup ($node): raycollect and Chromium already installed"
fi
rm -rf "$src/build"  # pip's in-tree build leftovers, not part of the shipped copy

# The launcher runs every command in a login shell that sources ~/.bashrc (`ray submit` runs
# `python`, `ray down` runs `ray stop`): the venv goes first on PATH there, and with a token
# shipped, every client of the cluster needs RAY_AUTH_MODE=token.
line="export PATH=\"$venv/bin:\$PATH\""
grep -qxF "$line" ~/.bashrc 2>/dev/null || echo "$line" >> ~/.bashrc
if [ -f ~/.ray/auth_token ]; then
  grep -qxF "export RAY_AUTH_MODE=token" ~/.bashrc || echo "export RAY_AUTH_MODE=token" >> ~/.bashrc
fi
