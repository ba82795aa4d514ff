#!/usr/bin/env bash
# Local mode of `make down`: stops the processes that up.sh recorded, by pid, and nothing else.
# The databases, the broker, the keys and the received mail stay; so does a broker cluster's data
# (BROKER_NODES), whose nodes are stopped by their recorded pids too.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
stack_settings
stop_broker_cluster() {
  [ -f "$RUN_DIR/broker-cluster/cluster.env" ] && "$ROOT/deploy/local/broker_cluster.sh" stop "$RUN_DIR/broker-cluster"
  return 0
}
trap stop_broker_cluster EXIT  # after the services, so that they stop with their broker still there
if [ ! -d "$PID_DIR" ] || [ -z "$(ls -A "$PID_DIR" 2>/dev/null)" ]; then
  say "nothing to stop in $RUN_DIR"
  exit 0
fi
stop_process gateway
for svc in "${SERVICES[@]}"; do stop_process "$svc"; done
for svc in "${SERVICES[@]}"; do for replica in 2 3 4 5 6 7 8 9; do stop_process "$svc-$replica"; done; done  # SHOP_REPLICAS
stop_process smtp
say "stopped; data kept (databases, keys in $KEY_DIR, mail in $MAIL_DIR)"
