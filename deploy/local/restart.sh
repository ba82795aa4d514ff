#!/usr/bin/env bash
# Local mode of `make restart [S=<service>]`: replaces a service's processes one at a time (every service in
# turn when none is named) while the others carry on. Each process leaves the gateway's rotation first (its
# upstream server is marked down and nginx reloaded, so it gets no new request), is stopped gracefully (uvicorn
# finishes its requests; the app cancels its consumers and stops its relay), and is started again; the next one
# goes only when the new one answers its health check. With one process a service (no REPLICAS=2) there is
# nobody to take over: that service answers 503 for the seconds it is away.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
cd "$ROOT"
stack_settings
pid="$(recorded_pid gateway)" || die "the stack is not running here (no gateway in $RUN_DIR); make up first"
gateway_pid="$pid"
if [ $# -gt 0 ]; then chosen=("$@"); elif [ -n "${S:-}" ]; then read -ra chosen <<< "$S"; else chosen=("${SERVICES[@]}"); fi
for svc in "${chosen[@]}"; do service_index "$svc" >/dev/null || die "no service named $svc (one of: ${SERVICES[*]})"; done
[ "$REPLICAS" -gt 1 ] || say "one process a service: each is away while it restarts (REPLICAS=2 make up for none)"

connections_to() {  # port: established TCP connections to it (the gateway's upstream ones, once drained)
  ss -Htn state established "( dport = :$1 )" 2>/dev/null | wc -l
}

for svc in "${chosen[@]}"; do
  for ((replica = 1; replica <= REPLICAS; replica++)); do
    name="$(replica_name "$svc" "$replica")"; port="$(replica_port "$svc" "$replica")"
    started=$SECONDS
    if [ "$REPLICAS" -gt 1 ]; then
      render_gateway "$name" && kill -HUP "$gateway_pid"
      # The old workers finish what they have and close their connections; the new ones never open one.
      for ((i = 0; i < 150; i++)); do [ "$(connections_to "$port")" = 0 ] && break; sleep 0.1; done
    fi
    stop_process "$name"
    start_replica "$svc" "$replica"
    for ((i = 0; i < 600; i++)); do
      [ "$(http_status 127.0.0.1 "$port" "/api/$svc/health")" = 200 ] && break
      recorded_pid "$name" >/dev/null || die "$name exited while starting; see $LOG_DIR/$name.log"
      sleep 0.1
    done
    [ "$(http_status 127.0.0.1 "$port" "/api/$svc/health")" = 200 ] || die "$name not healthy in 60 s; see $LOG_DIR/$name.log"
    [ "$REPLICAS" -gt 1 ] && render_gateway && kill -HUP "$gateway_pid"
    say "$name replaced in $((SECONDS - started)) s"
  done
done
