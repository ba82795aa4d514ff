#!/usr/bin/env bash
# Local mode of `make up`: RabbitMQ, PostgreSQL, nginx, keys, SMTP sink, the five services and the gateway,
# as processes of this machine, recorded under the state folder. Safe to run again: what runs is kept.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
cd "$ROOT"
stack_settings

ensure_venv
if [ "$BROKER_NODES" -gt 1 ]; then ensure_broker_cluster; else ensure_rabbitmq; fi
echo "$BROKER_NODES" > "$RUN_DIR/broker_nodes"  # for make status, restart and down
ensure_postgres
ensure_nginx
ensure_vhost
mkdir -p "$LOG_DIR" "$PID_DIR" "$MAIL_DIR"
echo local > "$RUN_DIR/mode"

# Recorded for make status/logs/down and for people: where everything of this stack is.
{
  for name in RUN_DIR GATEWAY_PORT GATEWAY_URL SHOP_PORT_BASE SMTP_HOST SMTP_PORT AMQP_URL BROKER_NODES SHOP_DB_PREFIX SHOP_POSTGRES_URL; do
    printf '%s=%q\n' "$name" "${!name}"
  done
  for svc in "${SERVICES[@]}"; do
    printf '%s_PORT=%q\n%s_DATABASE_URL=%q\n' "${svc^^}" "$(service_port "$svc")" "${svc^^}" "$(database_url "$svc")"
  done
} > "$RUN_DIR/stack.env"

"$VENV/bin/python" deploy/keys/generate.py "$KEY_DIR"
dbs=(); for svc in "${SERVICES[@]}"; do dbs+=("$(database_url "$svc")"); done
"$VENV/bin/python" deploy/local/stackctl.py createdb "${dbs[@]}"
# Each service's own database role and broker user (lib.sh: service_database_url, service_amqp_url).
owned=(); for svc in "${SERVICES[@]}"; do var="${svc^^}_DATABASE_URL"; [ -n "${!var:-}" ] || owned+=("$(database_url "$svc")"); done
[ "${#owned[@]}" = 0 ] || "$VENV/bin/python" deploy/local/stackctl.py own "${owned[@]}"
ensure_broker_users

if pid="$(recorded_pid smtp)"; then
  say "SMTP sink already running (pid $pid), mail in $MAIL_DIR"
elif port_open "$SMTP_HOST" "$SMTP_PORT"; then
  say "an SMTP relay already listens on $SMTP_HOST:$SMTP_PORT; using it (no sink started)"
else
  say "starting the development SMTP sink on $SMTP_HOST:$SMTP_PORT (mail kept in $MAIL_DIR)"
  start_process smtp "$LOG_DIR/smtp.log" "$VENV/bin/python" deploy/local/smtp_sink.py "$SMTP_HOST" "$SMTP_PORT" "$MAIL_DIR"
  wait_port "$SMTP_HOST" "$SMTP_PORT" smtp 20 || die "the SMTP sink did not start; see $LOG_DIR/smtp.log"
fi

# SHOP_REPLICAS=2 runs a second process of every service on its port + 10 (pid and log name <svc>-2), listed
# beside the first in the gateway's upstream: API replicas, competing consumers, relays side by side.
echo "$REPLICAS" > "$RUN_DIR/replicas"  # for make restart
for svc in "${SERVICES[@]}"; do
  for ((replica = 1; replica <= REPLICAS; replica++)); do
    name="$(replica_name "$svc" "$replica")"
    if pid="$(recorded_pid "$name")"; then say "$name already running (pid $pid)"; continue; fi
    start_replica "$svc" "$replica"
  done
done

render_gateway
if pid="$(recorded_pid gateway)"; then
  say "gateway already running (pid $pid); reloading its config"
  kill -HUP "$pid"
else
  port_open 127.0.0.1 "$GATEWAY_PORT" && die "port $GATEWAY_PORT is taken by another program; set GATEWAY_PORT"
  say "starting the gateway (nginx) on 127.0.0.1:$GATEWAY_PORT"
  start_process gateway "$LOG_DIR/gateway.log" nginx -c "$RUN_DIR/gateway/nginx.conf" -p "$RUN_DIR/gateway"
fi

say "waiting for every process to answer its health check, then every service through the gateway"
processes=()
for svc in "${SERVICES[@]}"; do
  for ((replica = 1; replica <= REPLICAS; replica++)); do processes+=("$(replica_name "$svc" "$replica")=$(replica_port "$svc" "$replica")"); done
done
"$VENV/bin/python" deploy/local/stackctl.py wait "$GATEWAY_URL" "$RUN_DIR" "${processes[@]}"

cat <<INFO

  The shop runs (local mode).
    gateway        $GATEWAY_URL   (e.g. curl $GATEWAY_URL/api/products, docs at /api/<service>/docs)
    first admin    $ADMIN_EMAIL / $ADMIN_PASSWORD   (set ADMIN_EMAIL, ADMIN_PASSWORD)
    mail           ${MAIL_DIR}/*.eml   (make mail)
    logs           $LOG_DIR/   (make logs, make logs S=orders)
    state          make status;  stop with make down (the data stays)

INFO
