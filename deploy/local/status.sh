#!/usr/bin/env bash
# make status: each process and health check, queue depths and consumers, parked messages, outbox backlog, the
# history stream and any rebuild's position.
set -uo pipefail
source "$(dirname "$0")/lib.sh"
stack_settings
[ -f "$RUN_DIR/stack.env" ] && source "$RUN_DIR/stack.env"
echo "stack in $RUN_DIR (mode: $(cat "$RUN_DIR/mode" 2>/dev/null || echo 'not started'))"

echo "processes:"
for name in gateway "${SERVICES[@]}" smtp; do
  if pid="$(recorded_pid "$name")"; then printf '  %-14s running, pid %s\n' "$name" "$pid"; else printf '  %-14s not running\n' "$name"; fi
done

echo "health through the gateway ($GATEWAY_URL):"
"$VENV/bin/python" "$ROOT/deploy/local/stackctl.py" health "$GATEWAY_URL" "${SERVICES[@]}"

vhost="$(amqp_vhost)"
if [ -f "$RUN_DIR/broker-cluster/cluster.env" ]; then
  echo "broker nodes (BROKER_NODES=$BROKER_NODES):"
  "$ROOT/deploy/local/broker_cluster.sh" status "$RUN_DIR/broker-cluster" "$vhost"
fi
echo "queues in vhost $vhost (messages, consumers):"
"$VENV/bin/python" "$ROOT/deploy/local/stackctl.py" queues "$AMQP_URL" "${SERVICES[@]}"

echo "outbox backlog:"
dbs=(); for svc in "${SERVICES[@]}"; do dbs+=("$(database_url "$svc")"); done
"$VENV/bin/python" "$ROOT/deploy/local/stackctl.py" outbox "${dbs[@]}"

echo "history (shop.history; rebuilds: make rebuild S=<service>):"
"$VENV/bin/python" "$ROOT/deploy/local/stackctl.py" history "$AMQP_URL" "${dbs[@]}"
