#!/usr/bin/env bash
# The whole suite, as `make test` runs it: lint, unit + consumer + end-to-end
# tests (two real Superset servers, started by the fixtures), the PostgreSQL
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
