#!/usr/bin/env bash
# make bench: venv, broker, database and nginx as for the tests, wrk and Postfix's smtp-sink for the capacity figures, then the benchmark harness (bench/run.py).
set -euo pipefail
source "$(dirname "$0")/lib.sh"
cd "$ROOT"
ensure_venv
ensure_rabbitmq
ensure_postgres
ensure_nginx
ensure_wrk
ensure_smtp_sink
[[ " $* " == *" brokers "* || " $* " == *"--only=brokers"* ]] && ensure_comparison_servers
say "running the benchmark"
exec "$VENV/bin/python" -m bench.run "$@"
