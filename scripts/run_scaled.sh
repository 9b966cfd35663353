#!/usr/bin/env bash
# The scaled-out topology on one machine, as `make run-scaled` runs it:
# PostgreSQL, the Redis channel layer, 2 web processes (daphne) and 2 worker
# processes, static files collected and served by WhiteNoise. The processes
# run under supervisord (scripts/supervisord.conf): one that dies (kill -9, a
# crash) is started again, and its tasks move on after the heartbeat timeout.
# Ctrl+C stops all (workers finish their running task first); a second
# Ctrl+C hands running tasks back at once.
#
# Every knob is an environment variable (defaults in brackets):
#   DATABASE_URL      [postgres://postgres@127.0.0.1:5432/migrator_scaled] created when missing
#   CHANNEL_LAYER_URL [redis://127.0.0.1:6379/1]
#   DATA_DIR          [./data/scaled] saved bundles: shared storage across machines
#   WEB_PORTS         ["8001 8002"] one daphne per port
#   WORKERS           [2] `manage.py run_worker` processes
#   HOST              [127.0.0.1]
# and the app's own settings (WORKER_SHUTDOWN_TIMEOUT, TASK_HEARTBEAT_*, …),
# passed on to every process. On several machines, see the README,
# "Scaling out" (systemd units there).
set -euo pipefail
cd "$(dirname "$0")/.."
BIN="${BIN:-.venv/bin}"
if [[ ! -x "$BIN/supervisord" ]]; then
  echo "No supervisord in $BIN: install the requirements (make run-scaled does)." >&2
  exit 1
fi
BIN="$(cd "$BIN" && pwd)"
# Output sent to a file: append to it, as supervisord does when it copies the
# processes' output there (it opens /dev/stdout anew): else each writer keeps
# its own offset and overwrites the other's lines.
if [[ -f /dev/stdout ]]; then exec >>/dev/stdout; fi
if [[ -f /dev/stderr ]]; then exec 2>>/dev/stderr; fi

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

read -ra ports <<<"$WEB_PORTS"
WEB_COUNT=${#ports[@]}
if ((WEB_COUNT < 1 || WORKERS < 1)); then
  echo "WEB_PORTS and WORKERS must name at least one web process and one worker." >&2
  exit 1
fi
# supervisord's socket, pid file and the like, removed on the way out.
RUN_SCALED_DIR="$(mktemp -d "${TMPDIR:-/tmp}/run-scaled.XXXXXX")"
RUN_SCALED_SECRET="$(od -An -N16 -tx1 /dev/urandom | tr -d ' \n')"
shutdown="${WORKER_SHUTDOWN_TIMEOUT:-30}"
# A worker stopping gets WORKER_SHUTDOWN_TIMEOUT to finish its task, then
# hands it back and exits; supervisord SIGKILLs it only 30 s after that.
WORKER_STOPWAITSECS=$((${shutdown%%.*} + 31))
RUN_SCALED_PID=$$
export BIN HOST WEB_PORTS WEB_COUNT WORKERS RUN_SCALED_DIR RUN_SCALED_SECRET RUN_SCALED_PID
export WORKER_STOPWAITSECS
CONF=scripts/supervisord.conf
names=()
for ((n = 0; n < WEB_COUNT; n++)); do names+=("scaled:web_$n"); done
for ((n = 0; n < WORKERS; n++)); do names+=("scaled:worker_$n"); done
# As root, say so (-u root): else supervisord logs a CRIT line about it.
as=()
if [[ $(id -u) == 0 ]]; then as=(-u root); fi

supervisord=
pids=
stop() {
  set +e
  trap - EXIT
  # A second Ctrl+C is passed on: a worker takes it as "stop now" and hands
  # its running task back instead of finishing it. supervisord answers no
  # questions once stopping: ask for the pids now.
  trap stop_now INT TERM HUP
  echo "Stopping ${#names[@]} process(es)…"
  pids=$("$BIN/supervisorctl" -c "$CONF" pid "${names[@]}" 2>/dev/null | grep -E '^[1-9][0-9]*$')
  kill -TERM "$supervisord" 2>/dev/null
  # `wait` returns early when a signal arrives: wait again until it is gone.
  while kill -0 "$supervisord" 2>/dev/null; do wait "$supervisord" 2>/dev/null; done
  rm -rf "$RUN_SCALED_DIR"
}
stop_now() {
  echo "Stopping now: running tasks are handed back…"
  # shellcheck disable=SC2086  # one pid a word
  [[ -z $pids ]] || kill -TERM $pids 2>/dev/null
}
trap 'stop; exit 130' INT
trap 'stop; exit 143' TERM
trap 'stop; exit 129' HUP
trap stop EXIT

# supervisord in its own session: Ctrl+C reaches this script only, which asks
# supervisord to stop; it sends one SIGTERM to each process (workers finish
# their running task first, for at most WORKER_SHUTDOWN_TIMEOUT) and waits.
# Each process runs in its own process group, so a signal to one is to it alone.
setsid "$BIN/supervisord" -c "$CONF" "${as[@]}" &
supervisord=$!
for port in $WEB_PORTS; do echo "web     http://$HOST:$port/"; done
echo "workers $WORKERS"
hide() { sed -E 's#//[^@/]*@#//#' <<<"$1"; }  # no credentials on screen
echo "Scaled out: PostgreSQL $(hide "$DATABASE_URL"), Redis $(hide "$CHANNEL_LAYER_URL"). Ctrl+C stops all."
echo "A process that dies is started again. Their state:"
echo "  RUN_SCALED_DIR=$RUN_SCALED_DIR RUN_SCALED_SECRET=$RUN_SCALED_SECRET $BIN/supervisorctl -c $CONF status"

# supervisord ends by itself only when a process cannot be started at all
# (scripts/supervisor_watch.py) or on an error of its own.
set +e
wait "$supervisord"
status=$?
trap - EXIT
rm -rf "$RUN_SCALED_DIR"
echo "supervisord stopped (status $status): see above." >&2
exit $((status ? status : 1))
