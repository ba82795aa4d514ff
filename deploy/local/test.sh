#!/usr/bin/env bash
# make test: venv, linters, broker and database (installed and started, or run in containers, when missing), then the whole suite.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
cd "$ROOT"
ensure_venv
# The whole suite (make test, CI) starts with the linters; a run of chosen tests skips them unless SHOP_LINT=1.
if [ $# -eq 0 ] || [ "${SHOP_LINT:-0}" = 1 ]; then "$ROOT/deploy/local/lint.sh"; fi
# The broker and database: the servers at the configured URLs (installed when missing), or containers when a
# Docker engine answers and those servers don't (shop_common/infrastructure.py; SHOP_TEST_INFRA forces one).
servers="$("$VENV/bin/python" -m shop_common.infrastructure choose)" || exit 1
if [ "$servers" = local ]; then
  ensure_rabbitmq
  ensure_postgres
fi
ensure_nginx  # the gateway tests and the end-to-end stack run a real nginx
ensure_chromium  # the operations page is tested in a real headless browser
ensure_prometheus  # the observability tests run a real Prometheus and promtool on the shipped files
ensure_node_tools  # the contract tests run the official AsyncAPI parser
say "running the test suite"
if [ "$servers" = containers ]; then
  exec "$VENV/bin/python" -m shop_common.infrastructure run "$VENV/bin/pytest" "$@"
fi
exec "$VENV/bin/pytest" "$@"
