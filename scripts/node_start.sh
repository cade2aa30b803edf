#!/usr/bin/env bash
# Starts Ray and `raycollect browsers` on one cluster node: the cluster launcher's start
# commands run it (`node_start.sh head` on the head, `node_start.sh worker` on every worker,
# where the launcher sets RAY_HEAD_IP). Run again, it restarts both.
#
#   RAYCOLLECT_VENV             the node's venv, as scripts/node_setup.sh made it [~/raycollect-venv]
#   RAYCOLLECT_RAY_START_ARGS   more `ray start` options for this node, e.g. --num-cpus=8
#   RAYCOLLECT_RAY_PORT         the head's GCS port [6379]
#   RAYCOLLECT_NODE_IP          the address this node is known by [the one the launcher SSHed to]
#   RAYCOLLECT_HEAD_GONE_S      a worker node stops its Ray once the head is gone this long [60]
set -euo pipefail
role=${1:?usage: node_start.sh head|worker}
venv=${RAYCOLLECT_VENV:-$HOME/raycollect-venv}
port=${RAYCOLLECT_RAY_PORT:-6379}
export PATH="$venv/bin:$PATH"
node=$(hostname)
command -v raycollect >/dev/null ||
  { echo "node_start ($node): no raycollect in $venv; scripts/node_setup.sh installs it" >&2; exit 1; }
# A token shipped by file_mounts means the cluster runs with token authentication.
[ -f ~/.ray/auth_token ] && export RAY_AUTH_MODE=token

# `raycollect browsers` also stops by itself within seconds of its node's Ray going away.
pidfile=~/.raycollect-browsers.pid
watchfile=~/.raycollect-watch.pid
for f in "$pidfile" "$watchfile"; do
  if [ -f "$f" ]; then kill "$(cat "$f")" 2>/dev/null || true; rm -f "$f"; fi
done
ray stop >/dev/null

# The node's address: the one the launcher reached it at (this SSH session's server side, the
# address head_ip / worker_ips name), unless RAYCOLLECT_NODE_IP says otherwise. Ray's own guess
# goes through a route to the internet, which machines on a closed network do not have, and
# then falls back to what the hostname resolves to (often 127.0.1.1).
ip=${RAYCOLLECT_NODE_IP:-$(echo "${SSH_CONNECTION:-}" | awk '{print $3}')}
ip_arg=${ip:+--node-ip-address=$ip}

# shellcheck disable=SC2086  # the extra options are words
case "$role" in
  head) ray start --head --port="$port" --dashboard-host=0.0.0.0 --disable-usage-stats \
          --autoscaling-config=~/ray_bootstrap_config.yaml $ip_arg ${RAYCOLLECT_RAY_START_ARGS:-} ;;
  worker) ray start --address="${RAY_HEAD_IP:?the launcher sets RAY_HEAD_IP}:$port" \
          $ip_arg ${RAYCOLLECT_RAY_START_ARGS:-} ;;
  *) echo "node_start: the role is head or worker, got $role" >&2; exit 2 ;;
esac

# Detached from this SSH session (its own session, no terminal, no inherited output), so the
# launcher's SSH command returns while the browsers keep running.
setsid nohup raycollect browsers --address auto > ~/raycollect-browsers.log 2>&1 < /dev/null &
echo $! > "$pidfile"
echo "node_start ($node): Ray ($role) and raycollect browsers (pid $!, log ~/raycollect-browsers.log) started"

# `ray down` stops the head's Ray only; a worker node's must stop by itself (scripts/head_watch.sh).
if [ "$role" = worker ]; then
  setsid nohup bash "$(dirname "$0")/head_watch.sh" "$RAY_HEAD_IP" "$port" \
    > ~/raycollect-watch.log 2>&1 < /dev/null &
  echo $! > "$watchfile"
fi
