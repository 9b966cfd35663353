#!/usr/bin/env bash
# The whole suite, as `make test` runs it: lint, unit + consumer + end-to-end
# tests (real Superset servers of each tested release, started early below), the PostgreSQL
# and scale-out stages, then browser tests in their own pytest run
# (pytest-playwright and pytest-asyncio clash).
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=.venv/bin

if ! command -v chromium >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "Installing Debian's chromium for the browser tests…"
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
  else
    echo "The browser tests need Chromium at /usr/bin/chromium: sudo apt-get install chromium" >&2
    exit 1
  fi
fi

export DATA_DIR="${TEST_DATA_DIR:-$(mktemp -d /tmp/migrator-test.XXXXXX)}"
export TASKS_EMBEDDED_WORKERS=0

# Every Superset test server (the 6.1 pair and one per other release: VERSION_SERVERS in
# tests/e2e/superset_servers.py) is installed and started once per run, early, in the
# background, while lint and the first tests run; installs of the versions run in
# parallel. The fixtures' own up.sh calls then find them healthy (or wait for them: up.sh
# locks per instance) and, when this start failed, fail with its log tail too.
export SUPERSET_UP_LOG="${SUPERSET_UP_LOG:-$(mktemp /tmp/superset-up.XXXXXX.log)}"
superset_specs="$($BIN/python -m tests.e2e.superset_servers specs)"
echo "Starting the Superset test servers in the background ($superset_specs); log: $SUPERSET_UP_LOG"
(
  start=$(date +%s)
  # shellcheck disable=SC2086
  if bash scripts/superset/up.sh $superset_specs >>"$SUPERSET_UP_LOG" 2>&1; then
    echo "[test.sh] all Superset test servers up in $(( $(date +%s) - start )) s" >>"$SUPERSET_UP_LOG"
  else
    echo "[test.sh] FAILED: the early start of the Superset test servers (exit $?)" >>"$SUPERSET_UP_LOG"
  fi
) </dev/null &
superset_up_pid=$!
report_superset_start() {
  # Say how the early start went, whatever happened to the tests (set -e may end early).
  if kill -0 "$superset_up_pid" 2>/dev/null; then
    echo "The early start of the Superset test servers is still running (log: $SUPERSET_UP_LOG)"
  elif grep -q '^\[test.sh\] FAILED' "$SUPERSET_UP_LOG"; then
    echo "The early start of the Superset test servers FAILED; the end of $SUPERSET_UP_LOG:" >&2
    tail -n 40 "$SUPERSET_UP_LOG" >&2
  else
    tail -n 1 "$SUPERSET_UP_LOG"
  fi
}
trap report_superset_start EXIT

$BIN/ruff check .
$BIN/ruff format --check .
$BIN/lint-imports

$BIN/python -m pytest -m "not browser and not scale" "$@"
# Real concurrency (row locks, racing submissions) on the machine's PostgreSQL, and
# what must hold on both databases (the OpenAPI fuzzing: 0 × 500; unstorable text).
DATABASE_URL="${TEST_POSTGRES_URL:-postgres://postgres@127.0.0.1:5432/migrator}" \
  $BIN/python -m pytest -m "postgres or postgres_too" -p no:cacheprovider "$@"
# Scale-out and fault tolerance: real web and worker processes on PostgreSQL
# and Redis, killed and restarted (tests/scale; about 2 minutes). pytest-django
# (re)creates the database test_migrator_scale; the processes share it.
DATABASE_URL="${TEST_SCALE_POSTGRES_URL:-postgres://postgres@127.0.0.1:5432/migrator_scale}" \
  SCALE_REDIS_URL="${TEST_SCALE_REDIS_URL:-redis://127.0.0.1:6379/5}" \
  $BIN/python -m pytest -m scale -p no:cacheprovider tests/scale "$@"
DJANGO_ALLOW_ASYNC_UNSAFE=true $BIN/python -m pytest -m browser -p no:asyncio tests/browser "$@"
