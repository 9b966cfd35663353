#!/usr/bin/env bash
# Stop the Superset test servers started by up.sh (by pidfile; state is kept).
# Usage: down.sh [source] [target]   (default: both)
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="$(cd "$HERE/../.." && pwd)"
SUPERSET_HOME="${SUPERSET_HOME:-$REPO/.superset}"

log() { echo "[superset down] $*" >&2; }

is_gunicorn() { grep -q gunicorn "/proc/$1/cmdline" 2>/dev/null; }

stop_instance() {
    local name="$1" pidfile="$SUPERSET_HOME/$1/gunicorn.pid" pid i
    if [[ ! -f "$pidfile" ]]; then
        log "$name: not running (no pidfile)"
        return 0
    fi
    pid="$(cat "$pidfile" 2>/dev/null || true)"
    if [[ -z "$pid" ]] || ! kill -0 "$pid" 2>/dev/null || ! is_gunicorn "$pid"; then
        log "$name: not running (stale pidfile)"
        rm -f "$pidfile"
        return 0
    fi
    kill -TERM "$pid"
    for i in $(seq 1 150); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.2
    done
    if kill -0 "$pid" 2>/dev/null; then
        log "$name: gunicorn $pid ignored SIGTERM for 30 s: SIGKILL"
        pkill -KILL -P "$pid" 2>/dev/null || true
        kill -KILL "$pid" 2>/dev/null || true
    fi
    rm -f "$pidfile"
    log "$name: stopped (pid $pid)"
}

names=("$@")
(( ${#names[@]} )) || names=(source target)
for n in "${names[@]}"; do
    stop_instance "$n" &
done
wait
