#!/usr/bin/env bash
# Local mode of `make restart [S=<service>]`: replaces a service's processes one at a time (every service in
# turn when none is named) while the others carry on; the next goes only when the new one answers its health
# check. A process asked to stop (shop_common/serve.py) refuses new connections, so the gateway sends new
# requests to the other replica, closes its open ones after their answers, lets its requests finish, and then
# stops its consumers and relay. With one process a service (no REPLICAS=2) there is nobody to take over: that
# service answers 503 for the seconds it is away.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
cd "$ROOT"
stack_settings
recorded_pid gateway >/dev/null || die "the stack is not running here (no gateway in $RUN_DIR); make up first"
if [ $# -gt 0 ]; then chosen=("$@"); elif [ -n "${S:-}" ]; then read -ra chosen <<< "$S"; else chosen=("${SERVICES[@]}"); fi
for svc in "${chosen[@]}"; do service_index "$svc" >/dev/null || die "no service named $svc (one of: ${SERVICES[*]})"; done
[ "$REPLICAS" -gt 1 ] || say "one process a service: each is away while it restarts (REPLICAS=2 make up for none)"

for svc in "${chosen[@]}"; do
  for ((replica = 1; replica <= REPLICAS; replica++)); do
    name="$(replica_name "$svc" "$replica")"; port="$(replica_port "$svc" "$replica")"
    started=$SECONDS
    stop_process "$name"
    start_replica "$svc" "$replica"
    for ((i = 0; i < 600; i++)); do
      [ "$(http_status 127.0.0.1 "$port" "/api/$svc/health")" = 200 ] && break
      recorded_pid "$name" >/dev/null || die "$name exited while starting; see $LOG_DIR/$name.log"
      sleep 0.1
    done
    [ "$(http_status 127.0.0.1 "$port" "/api/$svc/health")" = 200 ] || die "$name not healthy in 60 s; see $LOG_DIR/$name.log"
    say "$name replaced in $((SECONDS - started)) s"
  done
done
