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
  local url="${TEST_POSTGRES_URL:-postgresql://postgres@127.0.0.1:5432/postgres}" host port
  host="$(url_host "$url")"; port="$(url_port "$url" 5432)"
  if port_open "$host" "$port"; then say "PostgreSQL answers on $host:$port"; return 0; fi
  [ "$host" = 127.0.0.1 ] || [ "$host" = localhost ] || die "PostgreSQL at $host:$port does not answer"
  command -v pg_ctlcluster >/dev/null || apt_install postgresql \
    || die "PostgreSQL is not running on $host:$port and can't be installed here: install postgresql (or run as root on Debian)"
  say "starting PostgreSQL"
  local version; version="$(ls /etc/postgresql | sort -V | tail -1)"
  # Local mode trusts connections from this machine only, as contract.md section 1 says.
  local hba="/etc/postgresql/$version/main/pg_hba.conf"
  if ! grep -q 'shop: trust local' "$hba" 2>/dev/null; then
    sed -i '1i # shop: trust local\nhost all all 127.0.0.1/32 trust\nhost all all ::1/128 trust\nlocal all all trust' "$hba"
  fi
  pg_ctlcluster --skip-systemctl-redirect "$version" main start >/dev/null 2>&1 || true
  wait_port "$host" "$port" PostgreSQL 60 || die "PostgreSQL did not start"
}
