# Shared by the local scripts: progress lines, and making sure the machine has what local mode needs.
# Safe to run again: each step checks first and does nothing when it is already done.

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
VENV="$ROOT/.venv"
PY="${PYTHON:-python3}"
AMQP_URL="${AMQP_URL:-amqp://guest:guest@127.0.0.1:5672/}"

say() { printf '==> %s\n' "$*"; }
die() { printf 'error: %s\n' "$*" >&2; exit 1; }

port_open() { (exec 3<>"/dev/tcp/$1/$2") 2>/dev/null; }

# host and port out of a URL like scheme://user:pw@host:port/path
url_host() { local h="${1#*://}"; h="${h#*@}"; h="${h%%/*}"; echo "${h%%:*}"; }
url_port() { local h="${1#*://}"; h="${h#*@}"; h="${h%%/*}"; [[ "$h" == *:* ]] && echo "${h##*:}" || echo "$2"; }

apt_install() {
  [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null || return 1
  say "installing Debian packages: $*"
  if [ ! -f /var/lib/apt/.shop-updated ] || [ -z "$(ls -A /var/lib/apt/lists 2>/dev/null | grep -v lock)" ]; then
    apt-get update -qq && touch /var/lib/apt/.shop-updated
  fi
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@" >/dev/null
}

wait_port() {  # host port what seconds
  local i
  for ((i = 0; i < ${4:-60}; i++)); do port_open "$1" "$2" && return 0; sleep 1; done
  return 1
}

ensure_venv() {
  local stamp="$VENV/.installed" want
  want="$(cat "$ROOT"/shared/*/pyproject.toml "$ROOT"/services/*/pyproject.toml "$ROOT"/requirements-dev.txt 2>/dev/null | sha256sum | cut -c1-16)"
  if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then return 0; fi
  command -v "$PY" >/dev/null || die "python3 is needed (3.11 or newer)"
  if [ ! -x "$VENV/bin/python" ]; then
    say "creating the virtual environment in .venv"
    "$PY" -m venv "$VENV" || { apt_install python3-venv && "$PY" -m venv "$VENV"; } || die "could not create .venv"
  fi
  say "installing the pinned Python packages into .venv"
  local editable=() dir
  for dir in "$ROOT"/shared/events "$ROOT"/shared/common "$ROOT"/services/*; do
    [ -f "$dir/pyproject.toml" ] && editable+=(-e "$dir")
  done
  "$VENV/bin/pip" install -q --disable-pip-version-check "${editable[@]}" -r "$ROOT/requirements-dev.txt" \
    || die "pip install failed"
  echo "$want" > "$stamp"
}

ensure_rabbitmq() {
  local host port; host="$(url_host "$AMQP_URL")"; port="$(url_port "$AMQP_URL" 5672)"
  if port_open "$host" "$port"; then say "RabbitMQ answers on $host:$port"; return 0; fi
  [ "$host" = 127.0.0.1 ] || [ "$host" = localhost ] || die "RabbitMQ at $host:$port does not answer"
  command -v rabbitmq-server >/dev/null || apt_install rabbitmq-server \
    || die "RabbitMQ is not running on $host:$port and can't be installed here: install rabbitmq-server (or run as root on Debian)"
  say "starting RabbitMQ"
  rabbitmq-server -detached >/dev/null 2>&1 || true
  wait_port "$host" "$port" RabbitMQ 90 || die "RabbitMQ did not start; see /var/log/rabbitmq"
  rabbitmqctl -q await_startup >/dev/null 2>&1 || true
}

ensure_postgres() {
  local url="${SHOP_POSTGRES_URL:-${TEST_POSTGRES_URL:-postgresql://postgres@127.0.0.1:5432/postgres}}" host port
  host="$(url_host "$url")"; port="$(url_port "$url" 5432)"
  if port_open "$host" "$port"; then say "PostgreSQL answers on $host:$port"; return 0; fi
  [ "$host" = 127.0.0.1 ] || [ "$host" = localhost ] || die "PostgreSQL at $host:$port does not answer"
  command -v pg_ctlcluster >/dev/null || apt_install postgresql \
    || die "PostgreSQL is not running on $host:$port and can't be installed here: install postgresql (or run as root on Debian)"
  say "starting PostgreSQL"
  local version; version="$(ls /etc/postgresql | sort -V | tail -1)"
  # Local mode trusts connections from this machine only, as docs/contract.md section 1 says.
  local hba="/etc/postgresql/$version/main/pg_hba.conf"
  if ! grep -q 'shop: trust local' "$hba" 2>/dev/null; then
    sed -i '1i # shop: trust local\nhost all all 127.0.0.1/32 trust\nhost all all ::1/128 trust\nlocal all all trust' "$hba"
  fi
  pg_ctlcluster --skip-systemctl-redirect "$version" main start >/dev/null 2>&1 || true
  wait_port "$host" "$port" PostgreSQL 60 || die "PostgreSQL did not start"
}

# ---------------------------------------------------------------------------------------------------------
# The stack's settings. Every one can be set, so that a test can run a second, isolated copy beside `make up`.

# SERVICES, SERVICE_PORTS, SERVICE_DATABASES: generated from shared/events/shop_events/registry.py.
source "$ROOT/deploy/local/services.sh"

stack_settings() {
  RUN_DIR="${SHOP_RUN_DIR:-$ROOT/.run}"
  mkdir -p "$RUN_DIR"
  RUN_DIR="$(cd "$RUN_DIR" && pwd)"
  LOG_DIR="$RUN_DIR/logs"; PID_DIR="$RUN_DIR/pids"; KEY_DIR="$RUN_DIR/keys"; MAIL_DIR="$RUN_DIR/mail"
  GATEWAY_PORT="${GATEWAY_PORT:-8080}"
  # Processes a service: SHOP_REPLICAS (make up: REPLICAS), else what the running stack was started with.
  REPLICAS="${SHOP_REPLICAS:-$(cat "$RUN_DIR/replicas" 2>/dev/null || echo 1)}"
  # RabbitMQ nodes: BROKER_NODES (1: the machine's broker), else what the running stack was started with.
  BROKER_NODES="${BROKER_NODES:-$(cat "$RUN_DIR/broker_nodes" 2>/dev/null || echo 1)}"
  [ "$BROKER_NODES" -gt 1 ] && use_broker_cluster
  GATEWAY_RATE_LIMIT="${GATEWAY_RATE_LIMIT:-500}"
  GATEWAY_RATE_BURST="${GATEWAY_RATE_BURST:-1000}"
  GATEWAY_LOGIN_RATE_LIMIT="${GATEWAY_LOGIN_RATE_LIMIT:-1}"
  GATEWAY_LOGIN_RATE_BURST="${GATEWAY_LOGIN_RATE_BURST:-5}"
  SHOP_PORT_BASE="${SHOP_PORT_BASE:-$SERVICE_PORT_BASE}"
  SMTP_HOST="${SMTP_HOST:-127.0.0.1}"
  SMTP_PORT="${SMTP_PORT:-1025}"
  SHOP_DB_PREFIX="${SHOP_DB_PREFIX:-}"
  SHOP_POSTGRES_URL="${SHOP_POSTGRES_URL:-${TEST_POSTGRES_URL:-postgresql://postgres@127.0.0.1:5432/postgres}}"
  ADMIN_EMAIL="${ADMIN_EMAIL:-admin@example.com}"
  ADMIN_PASSWORD="${ADMIN_PASSWORD:-admin-password}"
  GATEWAY_URL="http://127.0.0.1:$GATEWAY_PORT"
}

service_index() {  # its position in SERVICES
  local i
  for i in "${!SERVICES[@]}"; do [ "${SERVICES[$i]}" = "$1" ] && { echo "$i"; return; }; done
  die "no such service: $1"
}

service_port() {  # the registry's port, moved with SHOP_PORT_BASE (auth 8001 ... analytics 8005 by default)
  local i; i="$(service_index "$1")" || return 1
  echo $((SHOP_PORT_BASE + SERVICE_PORTS[i] - SERVICE_PORT_BASE))
}

database_url() {  # <SERVICE>_DATABASE_URL when set, else <prefix><its database> on SHOP_POSTGRES_URL's server
  local var i; var="$(echo "$1" | tr a-z A-Z)_DATABASE_URL"
  if [ -n "${!var:-}" ]; then echo "${!var}"; return; fi
  i="$(service_index "$1")" || return 1
  local base="${SHOP_POSTGRES_URL%%\?*}"
  echo "${base%/*}/${SHOP_DB_PREFIX}${SERVICE_DATABASES[i]}"
}

amqp_vhost() {  # the vhost named in AMQP_URL ("/" when none; the first node's, when it lists a cluster's)
  local rest="${AMQP_URL%%,*}" v
  rest="${rest#*://}"
  v="${rest#*/}"; [ "$v" = "$rest" ] && v=""
  v="${v%%\?*}"; v="${v//%2F//}"; v="${v//%2f//}"
  echo "${v:-/}"
}

# Least privilege: each service connects as its own PostgreSQL role, which owns only its database
# (`stackctl.py own`), and as its own broker user, allowed only its own queues (deploy/broker/).
# A <SERVICE>_DATABASE_URL set by hand is used as it is; so is AMQP_URL for a broker this machine can't manage.
service_database_url() {
  local var; var="$(echo "$1" | tr a-z A-Z)_DATABASE_URL"
  if [ -n "${!var:-}" ]; then echo "${!var}"; return; fi
  local url rest socket; url="$(database_url "$1")"; rest="${url#*://}"; rest="${rest#*@}"
  socket="$(postgres_socket "$url")"; [ -z "$socket" ] || rest="$socket/${rest#*/}"
  echo "${url%%://*}://shop_${url##*/}@$rest"
}

# A service reaches a PostgreSQL on this machine through its unix socket (in SHOP_POSTGRES_SOCKET_DIR; empty:
# always TCP): a round trip costs its client and backend about a fifth less CPU than over loopback TCP (45 + 30
# against 58 + 36 us, README's capacity section), and a service makes dozens an order.
postgres_socket() {  # the URL's server as "<its socket's directory, %2F-quoted>:<port>"; nothing if it has none here
  local dir="${SHOP_POSTGRES_SOCKET_DIR-/var/run/postgresql}" host port
  host="$(url_host "$1")"; port="$(url_port "$1" 5432)"
  { [ "$host" = 127.0.0.1 ] || [ "$host" = localhost ]; } && [ -n "$dir" ] && [ -S "$dir/.s.PGSQL.$port" ] || return 0
  echo "${dir//\//%2F}:$port"
}

broker_is_local() {
  local host port; host="$(url_host "$AMQP_URL")"; port="$(url_port "$AMQP_URL" 5672)"
  # rabbitmqctl finds a node by name, not by port: another port is another node, reached only when
  # RABBITMQ_NODENAME names it (else its users would land on this machine's default node).
  { [ "$host" = 127.0.0.1 ] || [ "$host" = localhost ]; } && command -v rabbitmqctl >/dev/null &&
    { [ "$port" = 5672 ] || [ -n "${RABBITMQ_NODENAME:-}" ]; }
}

ensure_broker_users() {  # one user per service, passwords made once in $RUN_DIR/broker
  broker_is_local || { say "the broker is not on this machine: services use AMQP_URL's user"; return 0; }
  "$VENV/bin/python" "$ROOT/deploy/broker/definitions.py" local "$RUN_DIR" "$(amqp_vhost)" "$SHOP_DB_PREFIX"
}

service_amqp_url() {  # AMQP_URL with the service's own user, on every node it lists
  local file="$RUN_DIR/broker/$1.password" url urls=() nodes
  [ -f "$file" ] || { echo "$AMQP_URL"; return; }
  IFS=, read -ra nodes <<< "$AMQP_URL"
  for url in "${nodes[@]}"; do
    urls+=("${url%%://*}://shop_${SHOP_DB_PREFIX}$1:$(cat "$file")@$(rest="${url#*://}"; echo "${rest#*@}")")
  done
  (IFS=,; echo "${urls[*]}")
}

# BROKER_NODES=3: a RabbitMQ cluster of the stack's own (deploy/local/broker_cluster.sh, in $RUN_DIR/broker-cluster,
# AMQP ports from BROKER_PORT, 5701 by default) instead of the machine's broker; AMQP_URL then lists its nodes,
# and rabbitmqctl reaches it by its first node's name and the cluster's cookie.
ensure_broker_cluster() {
  "$ROOT/deploy/local/broker_cluster.sh" start "$RUN_DIR/broker-cluster" "$BROKER_NODES" "${BROKER_PORT:-5701}" \
    || die "the broker cluster did not start; see $RUN_DIR/broker-cluster/logs"
  use_broker_cluster
}

use_broker_cluster() {  # the recorded cluster, if this stack has one
  local env="$RUN_DIR/broker-cluster/cluster.env"
  [ -f "$env" ] || return 0
  # shellcheck disable=SC1090
  AMQP_URL="$(source "$env"; echo "$AMQP_URL")"
  RABBITMQ_NODENAME="$("$ROOT/deploy/local/broker_cluster.sh" name "$RUN_DIR/broker-cluster" 1)"
  RABBITMQ_ERLANG_COOKIE="$(cat "$RUN_DIR/broker-cluster/home/.erlang.cookie")"
  export AMQP_URL RABBITMQ_NODENAME RABBITMQ_ERLANG_COOKIE
}

# What each service process gets, one NAME=value a line: the same names compose and k8s set.
service_env() {
  local svc="$1" upper; upper="$(echo "$svc" | tr a-z A-Z)"
  echo "AMQP_URL=$(service_amqp_url "$svc")"
  echo "${upper}_DATABASE_URL=$(service_database_url "$svc")"
  echo "JWT_PUBLIC_KEY_PATH=$KEY_DIR/jwt_public.pem"
  case "$svc" in
    auth)
      echo "JWT_PRIVATE_KEY_PATH=$KEY_DIR/jwt_private.pem"
      echo "ADMIN_EMAIL=$ADMIN_EMAIL"
      echo "ADMIN_PASSWORD=$ADMIN_PASSWORD" ;;
    notifications)
      echo "SMTP_HOST=$SMTP_HOST"
      echo "SMTP_PORT=$SMTP_PORT" ;;
  esac
}

# ---------------------------------------------------------------------------------------------------------
# Processes this runner started: pids/<name>.pid holds "pid start-time command", so that a pid the
# kernel gave to another program since is never taken for ours.

proc_start_time() { awk '{print $22}' "/proc/$1/stat" 2>/dev/null; }

recorded_pid() {  # prints the pid when the recorded process is still the one we started
  local file="$PID_DIR/$1.pid" pid start
  [ -f "$file" ] || return 1
  read -r pid start _ < "$file" || return 1
  [ -n "$pid" ] && [ -d "/proc/$pid" ] || return 1
  [ "$(proc_start_time "$pid")" = "$start" ] || return 1
  grep -q '^State:.*Z' "/proc/$pid/status" 2>/dev/null && return 1
  echo "$pid"
}

start_process() {  # name log command...: in its own session, detached, pid recorded
  local name="$1" log="$2"; shift 2
  mkdir -p "$PID_DIR" "$(dirname "$log")"
  setsid "$@" >>"$log" 2>&1 </dev/null &
  local pid=$!
  echo "$pid $(proc_start_time "$pid") $*" > "$PID_DIR/$name.pid"
}

stop_process() {  # name: TERM its process group, then KILL after 15 s; forgets it
  local name="$1" pid i
  if pid="$(recorded_pid "$name")"; then
    say "stopping $name (pid $pid)"
    kill -TERM -- "-$pid" 2>/dev/null || kill -TERM "$pid" 2>/dev/null || true
    for ((i = 0; i < 150; i++)); do recorded_pid "$name" >/dev/null || break; sleep 0.1; done
    if recorded_pid "$name" >/dev/null; then
      say "$name did not stop in 15 s; killing it"
      kill -KILL -- "-$pid" 2>/dev/null || kill -KILL "$pid" 2>/dev/null || true
    fi
  fi
  rm -f "$PID_DIR/$name.pid"
}

# ---------------------------------------------------------------------------------------------------------
# The services' processes and the gateway in front of them (up.sh, restart.sh).

replica_name() { if [ "$2" = 1 ]; then echo "$1"; else echo "$1-$2"; fi; }  # svc replica
replica_port() { echo $(($(service_port "$1") + 10 * ($2 - 1))); }  # svc replica: its port + 10 a replica

start_replica() {  # svc replica: one uvicorn process of the service, pid and log under its replica name
  local svc="$1" replica="$2" name port factory_var="${1^^}_APP_FACTORY" env_vars
  name="$(replica_name "$svc" "$replica")"; port="$(replica_port "$svc" "$replica")"
  port_open 127.0.0.1 "$port" && die "port $port for $name is taken by another program; set SHOP_PORT_BASE"
  say "starting $name on 127.0.0.1:$port (log: $LOG_DIR/$name.log)"
  mapfile -t env_vars < <(service_env "$svc")
  # <SVC>_APP_FACTORY names another app factory (the fault suite's switchable handlers). shop_common.serve is
  # uvicorn with a stop that drops no request (docs/design.md).
  start_process "$name" "$LOG_DIR/$name.log" env "${env_vars[@]}" \
    "$VENV/bin/python" -m shop_common.serve "${!factory_var:-$svc.main:create_app}" --host 127.0.0.1 --port "$port"
}

render_gateway() {  # the gateway's config, with REPLICAS processes a service
  local svc replica upstream
  export GATEWAY_PORT GATEWAY_RATE_LIMIT GATEWAY_RATE_BURST GATEWAY_LOGIN_RATE_LIMIT GATEWAY_LOGIN_RATE_BURST
  for svc in "${SERVICES[@]}"; do
    upstream="127.0.0.1:$(service_port "$svc")"
    for ((replica = 2; replica <= REPLICAS; replica++)); do upstream+=",127.0.0.1:$(replica_port "$svc" "$replica")"; done
    export "${svc^^}_UPSTREAM=$upstream"
  done
  "$VENV/bin/python" "$ROOT/deploy/gateway/render.py" "$RUN_DIR/gateway" "$LOG_DIR"
  nginx -t -q -c "$RUN_DIR/gateway/nginx.conf" -p "$RUN_DIR/gateway" 2>>"$LOG_DIR/gateway.log" \
    || die "the generated gateway config is refused by nginx; see $LOG_DIR/gateway.log"
}

ensure_comparison_servers() {  # make bench --only brokers: Redis and NATS binaries, run as servers of its own
  PATH="$PATH:/usr/sbin"
  command -v redis-server >/dev/null && command -v nats-server >/dev/null && return 0
  local policy=/usr/sbin/policy-rc.d made=""  # installed, not started: the comparison starts its own
  if [ "$(id -u)" = 0 ] && [ ! -e "$policy" ]; then printf '#!/bin/sh\nexit 101\n' > "$policy"; chmod +x "$policy"; made=1; fi
  apt_install redis-server nats-server || true
  [ -n "$made" ] && rm -f "$policy"
  command -v redis-server >/dev/null && command -v nats-server >/dev/null \
    || die "the comparison of brokers needs redis-server and nats-server (Debian packages of those names)"
}

ensure_nginx() {
  command -v nginx >/dev/null && return 0
  [ -x /usr/sbin/nginx ] && { PATH="$PATH:/usr/sbin"; return 0; }
  # Debian starts a package's service on install; the gateway is our own nginx, so keep the system's stopped.
  local policy=/usr/sbin/policy-rc.d made=""
  if [ "$(id -u)" = 0 ] && [ ! -e "$policy" ]; then printf '#!/bin/sh\nexit 101\n' > "$policy"; chmod +x "$policy"; made=1; fi
  apt_install nginx-light || apt_install nginx || true
  [ -n "$made" ] && rm -f "$policy"
  command -v nginx >/dev/null || [ -x /usr/sbin/nginx ] \
    || die "nginx is needed for the gateway and can't be installed here: install nginx (or run as root on Debian)"
  PATH="$PATH:/usr/sbin"
}

ensure_wrk() {  # Debian's wrk, the benchmark's load generator for the capacity figures (bench/capacity.py)
  command -v wrk >/dev/null && return 0
  apt_install wrk || true
  command -v wrk >/dev/null \
    || die "wrk is needed for the benchmark's capacity figures and can't be installed here: install wrk (or run as root on Debian)"
}

ensure_smtp_sink() {  # Postfix's smtp-sink, the capacity figures' mail relay (bench/stack.py); Postfix itself unconfigured, stopped
  [ -x /usr/sbin/smtp-sink ] && return 0
  local policy=/usr/sbin/policy-rc.d made=""
  if [ "$(id -u)" = 0 ] && [ ! -e "$policy" ]; then printf '#!/bin/sh\nexit 101\n' > "$policy"; chmod +x "$policy"; made=1; fi
  [ "$(id -u)" = 0 ] && echo "postfix postfix/main_mailer_type select No configuration" | debconf-set-selections 2>/dev/null
  apt_install postfix || true
  [ -n "$made" ] && rm -f "$policy"
  [ -x /usr/sbin/smtp-sink ] \
    || die "Postfix's smtp-sink is needed for the benchmark's capacity figures: install postfix (or run as root on Debian)"
}

ensure_prometheus() {  # Debian's prometheus and promtool, for tests/observability; its own service stays stopped
  command -v prometheus >/dev/null && command -v promtool >/dev/null && return 0
  # Debian starts a package's service on install (on 9090); the tests run their own prometheus on their own port.
  local policy=/usr/sbin/policy-rc.d made=""
  if [ "$(id -u)" = 0 ] && [ ! -e "$policy" ]; then printf '#!/bin/sh\nexit 101\n' > "$policy"; chmod +x "$policy"; made=1; fi
  rm -f /var/lib/apt/.shop-updated 2>/dev/null  # package lists as of now: apt_install updates them first
  apt_install prometheus || true
  [ -n "$made" ] && rm -f "$policy"
  # and on a machine run by systemd, it would start at the next boot: only the unit this install enabled.
  if [ -d /run/systemd/system ] && command -v systemctl >/dev/null; then systemctl disable --now --quiet prometheus 2>/dev/null || true; fi
  command -v prometheus >/dev/null && command -v promtool >/dev/null \
    || die "prometheus and promtool are needed for the observability tests and can't be installed here: install prometheus (or run as root on Debian)"
}

ensure_vhost() {  # the vhost of AMQP_URL, on a local broker, for its user
  local vhost user; vhost="$(amqp_vhost)"
  [ "$vhost" = / ] && return 0
  command -v rabbitmqctl >/dev/null || return 0
  rabbitmqctl -q list_vhosts 2>/dev/null | grep -qxF "$vhost" && return 0
  user="${AMQP_URL#*://}"; user="${user%%@*}"; user="${user%%:*}"
  say "creating the RabbitMQ vhost $vhost"
  rabbitmqctl -q add_vhost "$vhost" >/dev/null
  rabbitmqctl -q set_permissions -p "$vhost" "${user:-guest}" '.*' '.*' '.*' >/dev/null
}

http_status() {  # host port path: the status code of a GET, with nothing but bash
  local code
  { exec 4<>"/dev/tcp/$1/$2"; } 2>/dev/null || { echo 000; return; }
  printf 'GET %s HTTP/1.0\r\nHost: %s\r\n\r\n' "$3" "$1" >&4
  read -r _ code _ <&4 || code=000
  exec 4>&-
  echo "${code:-000}"
}

ensure_chromium() {  # Debian's chromium, for the operations page's browser test (Playwright drives it; no download)
  command -v chromium >/dev/null && return 0
  apt_install chromium || say "chromium is not installed and can't be here: the browser test will be skipped (or, run as root, fail)"
}

ensure_node_tools() {  # the official AsyncAPI parser for tests/contract, exactly as its package-lock.json pins it
  local dir="$ROOT/tests/contract" want
  want="$(sha256sum < "$dir/package-lock.json" | cut -c1-16)"
  [ "$(cat "$dir/node_modules/.installed" 2>/dev/null)" = "$want" ] && return 0
  command -v npm >/dev/null || apt_install nodejs npm \
    || die "Node.js and npm are needed for the contract tests and can't be installed here: install nodejs and npm"
  say "installing the pinned Node.js packages into tests/contract/node_modules"
  # --ignore-scripts: the parser needs no install step, and one dependency's only script is telemetry.
  npm ci --prefix "$dir" --ignore-scripts --no-audit --no-fund --loglevel=error >/dev/null || die "npm ci failed"
  echo "$want" > "$dir/node_modules/.installed"
}
