#!/usr/bin/env bash
# Install Apache Superset 6.1.0 into $SUPERSET_HOME/venv (default <repo>/.superset/venv),
# or another version side by side: `SUPERSET_VERSION=4.1.4 install.sh` installs into
# $SUPERSET_HOME/venv-4.1.4 with constraints-4.1.txt (constraints-<major>.<minor>.txt).
#
# Idempotent: a marker file (venv/.superset-installed) records the version and a hash of
# the constraints file; when both match, nothing is done (fast path, < 0.1 s).
#
# Environment:
#   SUPERSET_HOME     state directory (default: <repo>/.superset)
#   SUPERSET_PYTHON   Python 3.11 interpreter to use (default: python3.11 on PATH,
#                     then pyenv's 3.11.*)
#   SUPERSET_VERSION  default 6.1.0; any version with a constraints-<major>.<minor>.txt
#                     here (6.1.x, 6.0.x, 5.0.x, 4.1.x). Prints nothing on stdout; the venv is
#                     `superset_venv VERSION` below (6.1.0: venv, others: venv-VERSION).
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="$(cd "$HERE/../.." && pwd)"
SUPERSET_HOME="${SUPERSET_HOME:-$REPO/.superset}"
SUPERSET_VERSION="${SUPERSET_VERSION:-6.1.0}"
if [[ ! "$SUPERSET_VERSION" =~ ^([0-9]+)\.([0-9]+)\.[0-9]+$ ]]; then
    echo "[superset install] ERROR: bad SUPERSET_VERSION '$SUPERSET_VERSION' (want X.Y.Z)" >&2
    exit 2
fi
CONSTRAINTS="$HERE/constraints-${BASH_REMATCH[1]}.${BASH_REMATCH[2]}.txt"
if [[ ! -f "$CONSTRAINTS" ]]; then
    echo "[superset install] ERROR: no $CONSTRAINTS for Superset $SUPERSET_VERSION" >&2
    exit 2
fi
# 6.1.0 keeps the historical path (other tools use $SUPERSET_HOME/venv).
if [[ "$SUPERSET_VERSION" == "6.1.0" ]]; then
    VENV="$SUPERSET_HOME/venv"
else
    VENV="$SUPERSET_HOME/venv-$SUPERSET_VERSION"
fi
MARKER="$VENV/.superset-installed"

log() { echo "[superset install] $*" >&2; }

hash_file() { sha256sum "$1" | cut -c1-16; }
want="apache-superset[postgres]==$SUPERSET_VERSION constraints=$(hash_file "$CONSTRAINTS")"

installed() { [[ -f "$MARKER" && "$(cat "$MARKER")" == "$want" && -x "$VENV/bin/superset" ]]; }
if installed; then
    log "already installed: $want ($VENV)"
    exit 0
fi
# Serialize concurrent installs (parallel test runners); re-check after waiting.
mkdir -p "$SUPERSET_HOME"
exec 8>"$SUPERSET_HOME/install-$SUPERSET_VERSION.lock"
flock -w 1200 8 || { log "ERROR: install-$SUPERSET_VERSION.lock busy for 20 min"; exit 1; }
if installed; then
    log "already installed (by a concurrent run): $want ($VENV)"
    exit 0
fi

is_py311() {
    # Run the candidate: a pyenv shim may exist on PATH without a 3.11 behind it.
    "$1" -c 'import sys; sys.exit(0 if sys.version_info[:2] == (3, 11) else 1)' >/dev/null 2>&1
}

find_python() {
    local c
    if [[ -n "${SUPERSET_PYTHON:-}" ]]; then
        if is_py311 "$SUPERSET_PYTHON"; then echo "$SUPERSET_PYTHON"; return 0; fi
        log "SUPERSET_PYTHON=$SUPERSET_PYTHON is not a working Python 3.11"
        return 1
    fi
    if command -v python3.11 >/dev/null 2>&1 && is_py311 python3.11; then
        # Resolve a pyenv shim to the real interpreter so the venv does not depend on it.
        python3.11 -c 'import sys; print(sys.executable)'
        return 0
    fi
    for c in "${PYENV_ROOT:-$HOME/.pyenv}"/versions/3.11.*/bin/python3.11 \
             /usr/local/bin/python3.11 /usr/bin/python3.11; do
        if [[ -x "$c" ]] && is_py311 "$c"; then echo "$c"; return 0; fi
    done
    return 1
}

if ! PY="$(find_python)"; then
    cat >&2 <<EOF
[superset install] ERROR: Python 3.11 not found.
  Superset $SUPERSET_VERSION is installed with Python 3.11. Looked for: \$SUPERSET_PYTHON,
  'python3.11' on PATH, \${PYENV_ROOT:-~/.pyenv}/versions/3.11.*/bin/python3.11,
  /usr/local/bin/python3.11, /usr/bin/python3.11.
  Install one (e.g. 'pyenv install 3.11') or set SUPERSET_PYTHON=/path/to/python3.11.
EOF
    exit 2
fi

start=$(date +%s)
mkdir -p "$SUPERSET_HOME"
# One log per venv: installs of two versions may run at the same time.
INSTALL_LOG="$SUPERSET_HOME/install.log"
[[ "$SUPERSET_VERSION" == "6.1.0" ]] || INSTALL_LOG="$SUPERSET_HOME/install-$SUPERSET_VERSION.log"
: >"$INSTALL_LOG"
if [[ -x "$VENV/bin/python" ]] && ! is_py311 "$VENV/bin/python"; then
    log "existing venv is not Python 3.11: recreating"
    rm -rf "$VENV"
fi
if [[ ! -x "$VENV/bin/python" ]]; then
    log "creating venv with $PY"
    if ! "$PY" -m venv "$VENV" >>"$INSTALL_LOG" 2>&1; then
        grep -v '^WARNING: Location' "$INSTALL_LOG" | tail -20 >&2
        log "ERROR: could not create the venv"; exit 1
    fi
fi
rm -f "$MARKER"
log "installing apache-superset[postgres]==$SUPERSET_VERSION (constraints: $CONSTRAINTS)"
# --no-input: never prompt (CI has no TTY). Warnings about the machine's extra local
# indexes are noise; keep the log of the install for failures.
# rich and cachetools are imported by Superset but not declared by the wheel: a
# constraints file only pins what something requires, so they are named here (their
# versions come from the constraints file). 4.x imports pkg_resources without declaring
# setuptools, and setuptools 81+ dropped pkg_resources: named too (pinned to 80.9.0).
extra=(rich cachetools)
[[ "$SUPERSET_VERSION" == 6.* ]] || extra+=(setuptools)
if ! "$VENV/bin/python" -m pip install --no-input --disable-pip-version-check -q \
        "apache-superset[postgres]==$SUPERSET_VERSION" "${extra[@]}" -c "$CONSTRAINTS" \
        >>"$INSTALL_LOG" 2>&1; then
    grep -v '^WARNING: Location' "$INSTALL_LOG" | tail -40 >&2
    log "ERROR: pip install failed (full log: $INSTALL_LOG)"
    exit 1
fi
# Smoke test: the CLI imports (catches a missing undeclared dependency early).
if ! "$VENV/bin/python" -c 'import superset, superset.cli.main, cachetools, rich, psycopg2' \
        >>"$INSTALL_LOG" 2>&1; then
    tail -20 "$INSTALL_LOG" >&2
    log "ERROR: installed Superset does not import"
    exit 1
fi
got="$("$VENV/bin/python" -c 'from importlib.metadata import version; print(version("apache-superset"))')"
if [[ "$got" != "$SUPERSET_VERSION" ]]; then
    log "ERROR: installed apache-superset $got, wanted $SUPERSET_VERSION"
    exit 1
fi
echo "$want" >"$MARKER"
log "installed apache-superset $got in $(( $(date +%s) - start )) s ($VENV)"
