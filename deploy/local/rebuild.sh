#!/usr/bin/env bash
# Local mode of `make rebuild S=<service>`: the service's read model emptied and replayed from the history
# stream through its own handlers (shop-events history rebuild), with the service's own database and broker
# user, while the stack runs on. Run again after an interruption: it resumes where it had committed.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
cd "$ROOT"
stack_settings
[ -f "$RUN_DIR/stack.env" ] && source "$RUN_DIR/stack.env"
svc="${1:-${S:-}}"
[ -n "$svc" ] || die "name the service: make rebuild S=analytics"
service_index "$svc" >/dev/null || die "no service named $svc (one of: ${SERVICES[*]})"
mapfile -t env_vars < <(service_env "$svc")
exec env "${env_vars[@]}" "$VENV/bin/shop-events" history rebuild "$svc"
