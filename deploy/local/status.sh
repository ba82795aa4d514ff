#!/usr/bin/env bash
# make status: each process and health check, queue depths and consumers, parked messages, outbox backlog.
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
echo "queues in vhost $vhost (messages, consumers):"
if command -v rabbitmqctl >/dev/null; then
  queues="$(rabbitmqctl -q list_queues -p "$vhost" name messages consumers 2>/dev/null | grep -E '^(auth|products|orders|notifications|analytics)\.' | sort)"
  echo "$queues" | grep -v -E '\.(retry\.[0-9]+|dlq)\s' | awk 'NF {printf "  %-34s %6s messages %3s consumers\n", $1, $2, $3}'
  echo "$queues" | awk '$1 ~ /\.retry\.[0-9]+$/ {n += $2} END {printf "  waiting to retry: %d\n", n}'
  echo "parked (replay: .venv/bin/shop-events parked list / replay):"
  echo "$queues" | awk '$1 ~ /\.dlq$/ {n += $2; if ($2 > 0) printf "  %-34s %6s parked\n", $1, $2} END {printf "  parked in all: %d\n", n}'
else
  echo "  (rabbitmqctl is not on this machine)"
fi

echo "outbox backlog:"
dbs=(); for svc in "${SERVICES[@]}"; do dbs+=("$(database_url "$svc")"); done
"$VENV/bin/python" "$ROOT/deploy/local/stackctl.py" outbox "${dbs[@]}"
