#!/usr/bin/env bash
# Stops a worker node's Ray (and so its `raycollect browsers`) once the head has been
# unreachable for a while. scripts/node_start.sh starts it, detached, on every worker node.
#
# Why: `ray down` runs `ray stop` on the head only; a worker machine's raylet is meant to exit
# by itself when it has not reached the head's GCS for Ray's reconnect timeout (60 s), but with
# Ray 2.60 it can stay up for good (Ray's "zombie raylet" issue, ray-project/ray#64349), with
# its agents and the node's browsers, on a machine the user believes released.
#
#   head_watch.sh HEAD_IP PORT
#   RAYCOLLECT_HEAD_GONE_S   how long the head's GCS port must refuse or time out [60]
set -uo pipefail
head=${1:?usage: head_watch.sh HEAD_IP PORT}
port=${2:?usage: head_watch.sh HEAD_IP PORT}
grace=${RAYCOLLECT_HEAD_GONE_S:-60}
period=2        # seconds between checks
connect=3       # a check's connect timeout: an unreachable machine counts as gone too

reachable() { timeout "$connect" bash -c ": < /dev/tcp/$head/$port" 2>/dev/null; }
raylet_up() { pgrep -x raylet >/dev/null; }

last_seen=$(date +%s)
while sleep "$period"; do
  # This node's Ray was stopped some other way (`ray stop`, node_start.sh again): nothing to do.
  raylet_up || { echo "head_watch: this node's raylet is gone; exiting"; exit 0; }
  now=$(date +%s)
  if reachable; then
    last_seen=$now
  elif [ $((now - last_seen)) -ge "$grace" ]; then
    echo "head_watch: the head $head:$port unreachable for $((now - last_seen)) s; ray stop"
    ray stop --grace-period 5  # a raylet in that state can ignore SIGTERM: Ray then kills it
    exit 0
  fi
done
