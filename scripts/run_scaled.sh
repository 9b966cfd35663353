#!/usr/bin/env bash
# The scaled-out topology on one machine, as `make run-scaled` runs it:
# PostgreSQL, the Redis channel layer, 2 web processes (daphne) and 2 worker
# processes, static files collected and served by WhiteNoise. Ctrl+C stops all.
#
# Every knob is an environment variable (defaults in brackets):
#   DATABASE_URL      [postgres://postgres@127.0.0.1:5432/migrator_scaled] created when missing
#   CHANNEL_LAYER_URL [redis://127.0.0.1:6379/1]
#   DATA_DIR          [./data/scaled] saved bundles: shared storage across machines
#   WEB_PORTS         ["8001 8002"] one daphne per port
#   WORKERS           [2] `manage.py run_worker` processes
#   HOST              [127.0.0.1]
# On several machines, run the web and worker lines below on each; see the
# README, "Scaling out".
set -euo pipefail
cd "$(dirname "$0")/.."
BIN="${BIN:-.venv/bin}"

export DATA_DIR="${DATA_DIR:-$PWD/data/scaled}"
export DATABASE_URL="${DATABASE_URL:-postgres://postgres@127.0.0.1:5432/migrator_scaled}"
export CHANNEL_LAYER_URL="${CHANNEL_LAYER_URL:-redis://127.0.0.1:6379/1}"
export WORKER_MODE=external
# Hashed, compressed files from collectstatic, served by WhiteNoise from STATIC_ROOT.
export STATIC_MANIFEST=true
export WHITENOISE_USE_FINDERS=false
export PYTHONUNBUFFERED=1
HOST="${HOST:-127.0.0.1}"
WEB_PORTS="${WEB_PORTS:-8001 8002}"
WORKERS="${WORKERS:-2}"

# The database, created when missing (the role needs CREATEDB; else create it by hand).
"$BIN/python" - <<'PY'
import os
import sys
from urllib.parse import unquote, urlsplit

import psycopg
from psycopg import sql

url = urlsplit(os.environ["DATABASE_URL"])
if url.scheme not in ("postgres", "postgresql", "pgsql"):
    sys.exit("run-scaled needs a PostgreSQL DATABASE_URL (postgres://user:pass@host:5432/db)")
name = unquote(url.path.strip("/"))
params = {
    "host": url.hostname or "",
    "port": url.port or 5432,
    "user": unquote(url.username or ""),
    "password": unquote(url.password or ""),
}
try:
    with psycopg.connect(dbname="postgres", autocommit=True, connect_timeout=5, **params) as conn:
        if not conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name]).fetchone():
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
            print(f"Created the PostgreSQL database {name!r}.")
except psycopg.Error as exc:
    sys.exit(f"PostgreSQL at {url.hostname}:{url.port or 5432}: {exc}".strip())
PY

"$BIN/python" - <<'PY'
import os
import sys

import redis

try:
    redis.Redis.from_url(os.environ["CHANNEL_LAYER_URL"], socket_connect_timeout=3).ping()
except redis.RedisError as exc:
    sys.exit(f"Redis (CHANNEL_LAYER_URL) does not answer: {exc}")
PY

# Once, before any server starts (this also generates DATA_DIR's secrets
# when SECRET_KEY / FIELD_ENCRYPTION_KEYS are not set, so all share them).
"$BIN/python" manage.py migrate --noinput -v0
"$BIN/python" manage.py ensure_admin
"$BIN/python" manage.py collectstatic --noinput -v0

pids=()
stop() {
  trap - EXIT
  # A second Ctrl+C is passed on: a worker takes it as "stop now" and hands
  # its running task back instead of finishing it.
  trap 'echo "Stopping now: running tasks are handed back…"; kill -TERM "${pids[@]}" 2>/dev/null' INT TERM
  echo "Stopping ${#pids[@]} process(es)…"
  kill -TERM "${pids[@]}" 2>/dev/null || true
  # `wait` returns early when a signal arrives: wait again until each is gone.
  for pid in "${pids[@]}"; do
    while kill -0 "$pid" 2>/dev/null; do wait "$pid" 2>/dev/null; done
  done
}
trap 'stop; exit 130' INT
trap 'stop; exit 143' TERM
trap stop EXIT

# Each server in its own session: Ctrl+C reaches this script only, which then
# sends one SIGTERM to each (workers finish their running task first, for at
# most WORKER_SHUTDOWN_TIMEOUT); a second Ctrl+C sends another ("stop now").
for port in $WEB_PORTS; do
  setsid "$BIN/daphne" -b "$HOST" -p "$port" migrator.asgi:application &
  pids+=($!)
  echo "web     http://$HOST:$port/ (pid $!)"
done
for n in $(seq 1 "$WORKERS"); do
  setsid "$BIN/python" manage.py run_worker &
  pids+=($!)
  echo "worker  $n (pid $!)"
done
hide() { sed -E 's#//[^@/]*@#//#' <<<"$1"; }  # no credentials on screen
echo "Scaled out: PostgreSQL $(hide "$DATABASE_URL"), Redis $(hide "$CHANNEL_LAYER_URL"). Ctrl+C stops all."

# One process dying ends the whole set, loudly, rather than half a cluster.
set +e
wait -n "${pids[@]}"
status=$?
echo "A process exited (status $status): stopping the others." >&2
exit "$status"
