#!/usr/bin/env bash
# make lint (and the first step of make test): ruff on the Python code (deploy/ not yet), then mypy --strict on
# shared/ and services/ (settings in pyproject.toml). Any finding fails the run.
# Sorting imports and dropping unused ones: .venv/bin/ruff check --fix shared services tests bench
set -euo pipefail
source "$(dirname "$0")/lib.sh"
cd "$ROOT"
ensure_venv
say "ruff on shared/, services/, tests/, bench/ and examples/"
"$VENV/bin/ruff" check --quiet shared services tests bench examples
say "mypy --strict on shared/, services/ and examples/"
"$VENV/bin/mypy"
