#!/usr/bin/env bash
# make logs [S=orders]: follow every log of the stack, or one service's.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
stack_settings
if [ -n "${S:-}" ]; then
  [ -f "$LOG_DIR/$S.log" ] || die "no log for '$S' in $LOG_DIR (try one of: ${SERVICES[*]} gateway smtp)"
  exec tail -n 50 -F "$LOG_DIR/$S.log"
fi
shopt -s nullglob
files=("$LOG_DIR"/*.log)
[ ${#files[@]} -gt 0 ] || die "no logs in $LOG_DIR yet: run make up"
exec tail -n 10 -F "${files[@]}"
