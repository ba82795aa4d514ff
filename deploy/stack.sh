#!/usr/bin/env bash
# make up | down | status | logs | mail: picks the mode and hands over.
# Docker mode when a Docker engine answers (`docker info`), else local processes; STACK=docker|local forces one.
# down/status/logs/mail follow the mode that `up` recorded in the state folder.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
source "$here/local/lib.sh"
command="${1:?usage: stack.sh up|down|status|logs|mail|restart|rebuild}"
run_dir="${SHOP_RUN_DIR:-$ROOT/.run}"

compose() {
  if docker compose version >/dev/null 2>&1; then docker compose -f "$ROOT/docker-compose.yml" "$@"
  elif command -v docker-compose >/dev/null; then docker-compose -f "$ROOT/docker-compose.yml" "$@"
  else die "Docker answers but Compose is missing: install the docker compose plugin, or STACK=local"; fi
}

mode="${STACK:-}"
if [ -z "$mode" ] && [ "$command" != up ] && [ -f "$run_dir/mode" ]; then mode="$(cat "$run_dir/mode")"; fi
if [ -z "$mode" ]; then
  if command -v docker >/dev/null && timeout 10 docker info >/dev/null 2>&1; then mode=docker; else mode=local; fi
  [ "$command" = up ] && say "mode: $mode ($([ "$mode" = docker ] && echo 'a Docker engine answers' || echo 'no Docker engine answers'); STACK=docker|local forces one)"
else
  [ "$command" = up ] && say "mode: $mode (STACK=$mode)"
fi
case "$mode" in local | docker) ;; *) die "STACK must be docker or local, not '$mode'" ;; esac

if [ "$mode" = local ]; then
  case "$command" in
    up | down | status | logs | restart | rebuild) exec "$here/local/$command.sh" ;;
    mail) stack_settings; exec "$VENV/bin/python" "$here/local/stackctl.py" mail "$MAIL_DIR" "${N:-20}" ;;
    *) die "unknown command $command" ;;
  esac
fi

gateway_port="${GATEWAY_PORT:-8080}"
case "$command" in
  up)
    mkdir -p "$run_dir" && echo docker > "$run_dir/mode"
    [ "${BROKER_NODES:-1}" = 1 ] || say "BROKER_NODES is local mode's: docker-compose.yml runs one RabbitMQ node (deploy/k8s runs three)"
    say "building the images and starting docker-compose.yml"
    compose up --detach --build
    say "waiting for every service to answer its health check through the gateway"
    waited=0
    for svc in "${SERVICES[@]}"; do
      until [ "$(http_status 127.0.0.1 "$gateway_port" "/api/$svc/health")" = 200 ]; do
        [ "$waited" -lt 300 ] || die "$svc does not answer through the gateway after 300 s; see: make logs S=$svc"
        [ $((waited % 5)) -eq 0 ] && echo "    waiting for $svc (${waited}s)"
        sleep 1; waited=$((waited + 1))
      done
      say "$svc answers through the gateway"
    done
    cat <<INFO

  The shop runs (docker mode).
    gateway        http://127.0.0.1:$gateway_port
    first admin    ${ADMIN_EMAIL:-admin@example.com} / ${ADMIN_PASSWORD:-admin-password}
    mail           http://127.0.0.1:${MAILPIT_UI_PORT:-8025}  (the development SMTP sink's web page)
    logs           make logs, make logs S=orders;  state: make status;  stop: make down (volumes stay)

INFO
    ;;
  down) compose down ;;  # volumes stay; `docker compose down -v` would drop the data
  status) compose ps ;;
  logs) if [ -n "${S:-}" ]; then compose logs -f "$S"; else compose logs -f; fi ;;
  rebuild) compose exec "${S:?make rebuild S=<service>}" shop-events history rebuild "$S" ;;
  restart) die "make restart is local mode's (one process at a time behind the gateway); on Kubernetes a rollout does it (kubectl -n shop rollout restart deployment/<svc>-api)" ;;
  mail) say "the mail is at http://127.0.0.1:${MAILPIT_UI_PORT:-8025}" ;;
  *) die "unknown command $command" ;;
esac
