#!/usr/bin/env bash
# make lint (and the first step of make test): ruff, then mypy --strict, on shared/ and services/ (settings in
# pyproject.toml). Any finding fails the run. Fixing imports: .venv/bin/ruff check --fix shared services
set -euo pipefail
source "$(dirname "$0")/lib.sh"
cd "$ROOT"
ensure_venv
say "ruff on shared/ and services/"
"$VENV/bin/ruff" check --quiet shared services
say "mypy --strict on shared/ and services/"
"$VENV/bin/mypy"
