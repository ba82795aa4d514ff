#!/usr/bin/env bash
# A throwaway RabbitMQ node and PostgreSQL cluster for the fault suite, on their own ports and folders,
# started and stopped by the pids recorded here, so restarting them never touches the machine's servers.
#
#   servers.sh start DIR AMQP_PORT PG_PORT [postgres]   make and start both (the node also takes AMQP_PORT+1
#                                            for Erlang distribution), or PostgreSQL alone (the broker is a
#                                            cluster: BROKER_NODES); DIR/urls.env holds AMQP_URL, SHOP_POSTGRES_URL
#   servers.sh stop DIR                      stop both, by their recorded pids; the folder stays
#   servers.sh restart rabbitmq|postgres DIR stop one by its pid and start it again on the same data
#   servers.sh start-one rabbitmq|postgres DIR / stop-one rabbitmq|postgres DIR
#
# RabbitMQ runs as the rabbitmq user (the machine's Erlang cookie, so `rabbitmqctl -n <node>` reaches it),
# PostgreSQL as the postgres user (initdb refuses root), both trusting local connections only.
set -euo pipefail
source "$(dirname "$0")/../local/lib.sh"

PG_BIN="${PG_BIN:-$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1)}"

as_user() {  # user command...: exec as that user, no fork, so the recorded pid is the server's own
  local user="$1"; shift
  if [ "$(id -un)" = "$user" ]; then "$@"; else setpriv --reuid "$user" --regid "$user" --init-groups "$@"; fi
}

settings() {  # DIR: what start recorded
  DIR="$(cd "$1" && pwd)"; PID_DIR="$DIR/pids"
  # shellcheck disable=SC1091
  source "$DIR/servers.env"
}

prepare() {  # DIR AMQP_PORT PG_PORT
  local dir="$1" run
  mkdir -p "$dir/pids" "$dir/logs"
  chmod 755 "$dir"
  run="$(cd "$dir" && pwd | sha256sum | cut -c1-10)"  # one node name per folder
  {
    printf 'RABBIT_NODE=%q\n' "shopfaults-${run}@localhost"
    printf 'AMQP_PORT=%q\nRABBIT_DIST_PORT=%q\nPG_PORT=%q\n' "$2" "$(($2 + 1))" "$3"
  } > "$dir/servers.env"
  settings "$dir"
  mkdir -p "$DIR/rabbitmq" "$DIR/postgres"
  # The machine's /etc/rabbitmq files name the shared node's port: this node reads its own instead.
  printf 'listeners.tcp.local = 127.0.0.1:%s\nloopback_users = none\n' "$AMQP_PORT" > "$DIR/rabbitmq/rabbitmq.conf"
  echo '[].' > "$DIR/rabbitmq/enabled_plugins"
  : > "$DIR/rabbitmq/rabbitmq-env.conf"
  chown -R rabbitmq:rabbitmq "$DIR/rabbitmq" 2>/dev/null || true
  if [ ! -f "$DIR/postgres/data/PG_VERSION" ]; then
    chown postgres:postgres "$DIR/postgres" 2>/dev/null || true
    as_user postgres "$PG_BIN/initdb" -D "$DIR/postgres/data" -A trust -U postgres --no-sync -E UTF8 \
      >"$DIR/logs/initdb.log" 2>&1 || die "initdb failed; see $DIR/logs/initdb.log"
  fi
  {
    printf 'AMQP_URL=%q\n' "amqp://guest:guest@127.0.0.1:$AMQP_PORT/"
    printf 'SHOP_POSTGRES_URL=%q\n' "postgresql://postgres@127.0.0.1:$PG_PORT/postgres"
    printf 'RABBIT_NODE=%q\n' "$RABBIT_NODE"
  } > "$DIR/urls.env"
}

start_rabbitmq() {
  recorded_pid rabbitmq >/dev/null && return 0
  port_open 127.0.0.1 "$AMQP_PORT" && die "port $AMQP_PORT is taken"
  say "starting the throwaway RabbitMQ node $RABBIT_NODE on 127.0.0.1:$AMQP_PORT"
  start_process rabbitmq "$DIR/logs/rabbitmq.out" env HOME=/var/lib/rabbitmq \
    RABBITMQ_NODENAME="$RABBIT_NODE" RABBITMQ_NODE_IP_ADDRESS=127.0.0.1 RABBITMQ_NODE_PORT="$AMQP_PORT" \
    RABBITMQ_DIST_PORT="$RABBIT_DIST_PORT" RABBITMQ_MNESIA_BASE="$DIR/rabbitmq/mnesia" \
    RABBITMQ_LOG_BASE="$DIR/rabbitmq/log" RABBITMQ_CONFIG_FILE="$DIR/rabbitmq/rabbitmq.conf" \
    RABBITMQ_CONF_ENV_FILE="$DIR/rabbitmq/rabbitmq-env.conf" \
    RABBITMQ_ENABLED_PLUGINS_FILE="$DIR/rabbitmq/enabled_plugins" \
    RABBITMQ_PID_FILE="$DIR/rabbitmq/node.pid" \
    ERL_EPMD_ADDRESS=127.0.0.1 ERL_FLAGS="-kernel inet_dist_use_interface {127,0,0,1}" \
    setpriv --reuid rabbitmq --regid rabbitmq --init-groups /usr/lib/rabbitmq/bin/rabbitmq-server
  wait_port 127.0.0.1 "$AMQP_PORT" rabbitmq 90 || die "the throwaway RabbitMQ did not start; see $DIR/logs"
  rabbitmqctl -q -n "$RABBIT_NODE" await_startup >/dev/null 2>&1 || true
}

start_postgres() {
  recorded_pid postgres >/dev/null && return 0
  port_open 127.0.0.1 "$PG_PORT" && die "port $PG_PORT is taken"
  say "starting the throwaway PostgreSQL cluster on 127.0.0.1:$PG_PORT"
  start_process postgres "$DIR/logs/postgres.log" setpriv --reuid postgres --regid postgres --init-groups \
    "$PG_BIN/postgres" -D "$DIR/postgres/data" -p "$PG_PORT" -k "$DIR/postgres" \
    -c listen_addresses=127.0.0.1 -c max_connections=400 -c fsync=off -c full_page_writes=off
  local i
  for ((i = 0; i < 60; i++)); do
    "$PG_BIN/pg_isready" -q -h 127.0.0.1 -p "$PG_PORT" && return 0
    recorded_pid postgres >/dev/null || break
    sleep 0.5
  done
  die "the throwaway PostgreSQL did not start; see $DIR/logs/postgres.log"
}

stop_postgres() {  # SIGINT is PostgreSQL's fast shutdown (SIGTERM would wait for every client to leave)
  local pid i
  if pid="$(recorded_pid postgres)"; then
    say "stopping the throwaway PostgreSQL (pid $pid)"
    kill -INT "$pid" 2>/dev/null || true
    for ((i = 0; i < 300; i++)); do recorded_pid postgres >/dev/null || break; sleep 0.1; done
    recorded_pid postgres >/dev/null && kill -KILL "$pid" 2>/dev/null || true
  fi
  rm -f "$PID_DIR/postgres.pid"
}

stop_rabbitmq() { stop_process rabbitmq; }

command="${1:-}"
case "$command" in
  start)
    [ $# -eq 4 ] || [ "${5:-}" = postgres ] || die "usage: servers.sh start DIR AMQP_PORT PG_PORT [postgres]"
    prepare "$2" "$3" "$4"
    [ "${5:-}" = postgres ] || start_rabbitmq
    start_postgres ;;
  stop)
    settings "$2"
    stop_rabbitmq
    stop_postgres ;;
  restart|start-one|stop-one)
    settings "$3"
    case "$2" in rabbitmq|postgres) ;; *) die "rabbitmq or postgres, not $2" ;; esac
    [ "$command" = start-one ] || "stop_$2"
    [ "$command" = stop-one ] || "start_$2" ;;
  *) sed -n '2,11p' "$0"; exit 2 ;;
esac
