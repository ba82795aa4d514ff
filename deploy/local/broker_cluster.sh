#!/usr/bin/env bash
# A RabbitMQ cluster of this machine's own: N extra nodes beside the machine's broker, each with its own node
# name, AMQP port, distribution port, data and log folders, one Erlang cookie of their own, joined with
# join_cluster. Started and stopped by the pids recorded here; the machine's broker is never touched.
#
#   broker_cluster.sh start DIR N AMQP_PORT   nodes 1..N on AMQP_PORT..AMQP_PORT+N-1 (distribution: +1000);
#                                             DIR/cluster.env then holds AMQP_URL (every node), the nodes' names
#   broker_cluster.sh stop DIR                every node, gracefully, by its recorded pid; the data stays
#   broker_cluster.sh kill9|stop-one|start-one DIR I   node I killed with SIGKILL, stopped, or started again
#   broker_cluster.sh cut|heal DIR I          node I cut off from the other nodes at the network (nftables on
#                                             loopback, only its own ports and addresses), or the cut undone
#   broker_cluster.sh cut-client|heal-client DIR I PORT   the client connection from PORT to node I cut or healed
#   broker_cluster.sh ctl DIR I ARGS...       rabbitmqctl against node I (the cluster's cookie)
#   broker_cluster.sh name DIR I / status DIR [VHOST]   node I's name / the nodes and each queue's leader
#
# Each node runs as the rabbitmq user. Its outgoing distribution connections leave from an address of its own
# (127.0.1.I), so a cut can name exactly the traffic between it and its peers. Partition handling is
# pause_minority: a node cut off from the majority pauses (closes its clients' connections, which then fail
# over), and its quorum queue replicas on the majority side elect a leader and go on; after the heal it
# rejoins and catches up. No side ever accepts writes alone, so no split brain has to be merged by hand.
set -euo pipefail
source "$(dirname "$0")/lib.sh"

LETTERS=(- a b c d e f g h i)  # node 1 is <cluster>-a@localhost

settings() {  # DIR: what start recorded
  DIR="$(cd "$1" && pwd)"; PID_DIR="$DIR/pids"
  # shellcheck disable=SC1091
  source "$DIR/cluster.env"
}

node_env() {  # I: the node's settings as NAME=value words (node_name, ports, folders)
  local i="$1" amqp=$((AMQP_BASE + $1 - 1)) node; node="$(node_name "$i")"
  echo "RABBITMQ_NODENAME=$node RABBITMQ_NODE_IP_ADDRESS=127.0.0.1 RABBITMQ_NODE_PORT=$amqp"
  echo "RABBITMQ_DIST_PORT=$((amqp + 1000)) RABBITMQ_MNESIA_BASE=$DIR/node$i/mnesia RABBITMQ_LOG_BASE=$DIR/node$i/log"
  echo "RABBITMQ_CONFIG_FILE=$DIR/node$i/rabbitmq.conf RABBITMQ_CONF_ENV_FILE=$DIR/node$i/rabbitmq-env.conf"
  echo "RABBITMQ_ENABLED_PLUGINS_FILE=$DIR/node$i/enabled_plugins RABBITMQ_PID_FILE=$DIR/node$i/node.pid"
}

node_name() { echo "$CLUSTER_NAME-${LETTERS[$1]}@localhost"; }

ctl() {  # I ARGS...: rabbitmqctl against node I with the cluster's cookie
  local i="$1"; shift
  HOME="$DIR/home" rabbitmqctl --erlang-cookie "$(cat "$DIR/home/.erlang.cookie")" -n "$(node_name "$i")" "$@"
}

prepare() {  # DIR N AMQP_PORT
  local dir="$1" i run
  mkdir -p "$dir/pids" "$dir/logs" "$dir/home"
  chmod 755 "$dir"
  run="$(cd "$dir" && pwd | sha256sum | cut -c1-8)"  # node names unique per folder
  if [ ! -f "$dir/cluster.env" ]; then
    local urls=()
    # Heartbeats every 5 s: a connection cut silently is given up in ~18 s (aiormq allows three missed, plus
    # one), not the 3 minutes of the default 60 s, so a client fails over to another node that soon.
    for ((i = 1; i <= $2; i++)); do urls+=("amqp://guest:guest@127.0.0.1:$(($3 + i - 1))/?heartbeat=5"); done
    {
      printf 'CLUSTER_NAME=%q\nNODES=%q\nAMQP_BASE=%q\n' "shop$run" "$2" "$3"
      printf 'AMQP_URL=%q\n' "$(IFS=,; echo "${urls[*]}")"
    } > "$dir/cluster.env"
  fi
  settings "$dir"
  [ -f "$DIR/home/.erlang.cookie" ] || head -c 32 /dev/urandom | sha256sum | cut -c1-40 | tr -d '\n' > "$DIR/home/.erlang.cookie"
  chmod 400 "$DIR/home/.erlang.cookie"
  for ((i = 1; i <= NODES; i++)); do
    mkdir -p "$DIR/node$i"
    {
      printf 'listeners.tcp.local = 127.0.0.1:%s\nloopback_users = none\n' "$((AMQP_BASE + i - 1))"
      printf 'cluster_partition_handling = pause_minority\n'
    } > "$DIR/node$i/rabbitmq.conf"
    echo '[].' > "$DIR/node$i/enabled_plugins"
    : > "$DIR/node$i/rabbitmq-env.conf"
  done
  chown -R rabbitmq:rabbitmq "$DIR" 2>/dev/null || true
}

start_node() {  # I
  local i="$1" amqp=$((AMQP_BASE + $1 - 1))
  recorded_pid "node$i" >/dev/null && return 0
  port_open 127.0.0.1 "$amqp" && die "port $amqp is taken"
  say "starting RabbitMQ node $(node_name "$i") on 127.0.0.1:$amqp"
  # shellcheck disable=SC2046
  start_process "node$i" "$DIR/logs/node$i.out" env HOME="$DIR/home" $(node_env "$i") \
    ERL_EPMD_ADDRESS=127.0.0.1 RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS="-kernel net_ticktime 10" \
    ERL_FLAGS="-kernel inet_dist_use_interface {127,0,0,1} -kernel inet_dist_connect_options [{ip,{127,0,1,$i}}]" \
    setpriv --reuid rabbitmq --regid rabbitmq --init-groups /usr/lib/rabbitmq/bin/rabbitmq-server
}

await_node() {  # I: until it takes connections; a node that exited is not waited for
  local n
  for ((n = 0; n < 240; n++)); do
    port_open 127.0.0.1 "$((AMQP_BASE + $1 - 1))" && break
    recorded_pid "node$1" >/dev/null || break
    sleep 0.5
  done
  port_open 127.0.0.1 "$((AMQP_BASE + $1 - 1))" || die "node $1 did not start; see $DIR/logs/node$1.out"
  ctl "$1" -q await_startup >/dev/null 2>&1 || true
}

join() {  # I: node I joins node 1's cluster (once; a member already is left as it is)
  ctl "$1" -q cluster_status --formatter json 2>/dev/null | grep -q "$(node_name 1)" && return 0
  say "node $(node_name "$1") joins $(node_name 1)"
  ctl "$1" -q stop_app >/dev/null
  ctl "$1" -q join_cluster "$(node_name 1)" >>"$DIR/logs/join.log" 2>&1
  ctl "$1" -q start_app >>"$DIR/logs/join.log" 2>&1
}

stop_node() {  # I: SIGTERM is the node's graceful stop
  stop_process "node$1"
}

kill9_node() {  # I
  local pid
  pid="$(recorded_pid "node$1")" || die "node $1 is not running"
  say "kill -9 node $(node_name "$1") (pid $pid)"
  kill -KILL -- "-$pid" 2>/dev/null || kill -KILL "$pid"
  while recorded_pid "node$1" >/dev/null; do sleep 0.05; done
  rm -f "$PID_DIR/node$1.pid"
}

# A cut is an nftables table of its own, dropping packets on loopback that only this cluster's nodes and
# clients send; healing deletes the table. Between nodes: others reach node I on its distribution port, node I
# reaches them from its own source address (127.0.1.I).
node_cut_rules() {  # I: nft rule bodies, one a line
  local i="$1" j dist=$((AMQP_BASE + $1 - 1 + 1000)) other
  for ((j = 1; j <= NODES; j++)); do
    [ "$j" = "$i" ] && continue
    other=$((AMQP_BASE + j - 1 + 1000))
    echo "ip saddr 127.0.1.$j tcp dport $dist drop"
    echo "ip daddr 127.0.1.$j tcp sport $dist drop"
    echo "ip saddr 127.0.1.$i tcp dport $other drop"
    echo "ip daddr 127.0.1.$i tcp sport $other drop"
  done
}

client_cut_rules() {  # I PORT: one client's connection to node I (its own port is the broker's peer_port)
  local port=$((AMQP_BASE + $1 - 1))
  echo "ip saddr 127.0.0.1 tcp sport $2 tcp dport $port drop"
  echo "ip saddr 127.0.0.1 tcp sport $port tcp dport $2 drop"
}

make_cut() {  # NAME RULES...: the table NAME with these rules on loopback's input
  local table="$1" rule; shift
  command -v nft >/dev/null || apt_install nftables || die "nft (nftables) is needed to cut the network"
  nft add table inet "$table"
  nft "add chain inet $table input { type filter hook input priority 0; policy accept; }"
  for rule in "$@"; do nft add rule inet "$table" input iifname lo $rule; done  # (word-split on purpose)
}

heal_cut() {  # NAME
  nft list table inet "$1" >/dev/null 2>&1 && nft delete table inet "$1"
  return 0
}

heal_all() {  # every cut of this cluster, nodes' and clients'
  local table
  command -v nft >/dev/null || return 0
  for table in $(nft list tables inet 2>/dev/null | awk '{print $3}' | grep "^${CLUSTER_NAME}_"); do heal_cut "$table"; done
}

cut_node() {
  say "cutting node $(node_name "$1") off from the other nodes"
  mapfile -t rules < <(node_cut_rules "$1")
  make_cut "${CLUSTER_NAME}_node$1" "${rules[@]}"
}

heal_node() {
  say "healing the cut of node $(node_name "$1")"
  heal_cut "${CLUSTER_NAME}_node$1"
}

show_status() {  # VHOST: each node (running or not, its pid) and which node leads each queue of the vhost
  local i pid queues=""
  for ((i = 1; i <= NODES; i++)); do
    if pid="$(recorded_pid "node$i")"; then
      printf '  %-30s 127.0.0.1:%s  running, pid %s\n' "$(node_name "$i")" "$((AMQP_BASE + i - 1))" "$pid"
    else
      printf '  %-30s 127.0.0.1:%s  not running\n' "$(node_name "$i")" "$((AMQP_BASE + i - 1))"
    fi
  done
  for ((i = 1; i <= NODES; i++)); do  # the first node that answers (a paused one does not)
    recorded_pid "node$i" >/dev/null || continue
    queues="$(ctl "$i" -q list_queues -p "$1" name type leader online --formatter json 2>/dev/null)" && break
  done
  [ -n "$queues" ] || { echo "  no node answers"; return 0; }
  echo "queue leaders in vhost $1 (queue, type, leader, replicas online):"
  "$VENV/bin/python" -c '
import json, sys
for q in sorted(json.loads(sys.argv[1]), key=lambda q: q["name"]):
    print("  %-40s %-7s %-30s %d" % (q["name"], q["type"], q.get("leader") or "-", len(q.get("online") or [])))' "$queues"
}

command="${1:-}"
case "$command" in
  start)
    [ $# -eq 4 ] || die "usage: broker_cluster.sh start DIR N AMQP_PORT"
    prepare "$2" "$3" "$4"
    for ((i = 1; i <= NODES; i++)); do start_node "$i"; done
    for ((i = 1; i <= NODES; i++)); do await_node "$i"; done
    for ((i = 2; i <= NODES; i++)); do join "$i"; done ;;
  stop)
    settings "$2"
    heal_all
    for ((i = 1; i <= NODES; i++)); do stop_node "$i"; done ;;
  kill9) settings "$2"; kill9_node "$3" ;;
  stop-one) settings "$2"; stop_node "$3" ;;
  start-one) settings "$2"; start_node "$3"; await_node "$3" ;;
  cut) settings "$2"; cut_node "$3" ;;
  heal) settings "$2"; heal_node "$3" ;;
  cut-client) settings "$2"; mapfile -t rules < <(client_cut_rules "$3" "$4"); make_cut "${CLUSTER_NAME}_client$4" "${rules[@]}" ;;
  heal-client) settings "$2"; heal_cut "${CLUSTER_NAME}_client$4" ;;
  ctl) settings "$2"; i="$3"; shift 3; ctl "$i" "$@" ;;
  name) settings "$2"; node_name "$3" ;;
  status) settings "$2"; show_status "${3:-/}" ;;
  *) sed -n '2,16p' "$0"; exit 2 ;;
esac
