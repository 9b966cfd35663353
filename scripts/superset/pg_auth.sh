#!/usr/bin/env bash
# Make the local PostgreSQL (127.0.0.1:5432, trust auth) actually check ONE role's password,
# so a wrong password is refused (e.g. Superset's test_connection → 400).
#
# Usage: pg_auth.sh [ROLE] [PASSWORD] [DATABASE]
#   defaults: mig_secure  mig_secret  mig_public
#
# Idempotent:
#   * creates ROLE (LOGIN) or resets its password (scram-sha-256);
#   * creates DATABASE when missing, grants CONNECT on it and SELECT on its public tables;
#   * inserts `host DATABASE ROLE 127.0.0.1/32 scram-sha-256` (and ::1/128) into pg_hba.conf
#     ABOVE the first rule (so it wins over the trust lines), once, then reloads;
#   * checks that the password works and that a wrong one is refused.
# Runs are serialized with flock (parallel test sessions would race on pg_hba.conf and on
# CREATE ROLE). Called by seed.py --secure for mig_secure@mig_public and mig_wh@mig_warehouse.
# A password with '@', ':' or '/' works here but needs percent-encoding in a URI: warned.
# Other roles keep trust auth. Needs: psql as superuser (PGUSER=postgres, trust) and
# write access to the hba file (root, or the postgres user).
set -euo pipefail

ROLE="${1:-mig_secure}"
PASSWORD="${2:-mig_secret}"
DATABASE="${3:-mig_public}"
PSQL=(psql -h "${PGHOST:-127.0.0.1}" -p "${PGPORT:-5432}" -U "${PGUSER:-postgres}" -v ON_ERROR_STOP=1 -qAt)

log() { echo "[pg_auth] $*" >&2; }

for v in "$ROLE" "$DATABASE"; do
    [[ "$v" =~ ^[a-z_][a-z0-9_]*$ ]] || { log "ERROR: '$v' is not a plain lower-case identifier"; exit 2; }
done
case "$PASSWORD" in
    *[@:/]*) log "WARNING: the password contains '@', ':' or '/': percent-encode it in URIs" ;;
esac
pw_sql="${PASSWORD//\'/\'\'}"

LOCK="${PG_AUTH_LOCK:-${TMPDIR:-/tmp}/pg_auth.$(id -u).lock}"
exec 8>"$LOCK"
flock -w 120 8 || { log "ERROR: another pg_auth.sh held $LOCK for 120 s"; exit 1; }

"${PSQL[@]}" -d postgres <<SQL
SET password_encryption = 'scram-sha-256';
DO \$\$ BEGIN
  IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = '$ROLE') THEN
    CREATE ROLE $ROLE LOGIN PASSWORD '$pw_sql';
  ELSE
    ALTER ROLE $ROLE LOGIN PASSWORD '$pw_sql';
  END IF;
END \$\$;
SQL
if [[ "$("${PSQL[@]}" -d postgres -c "SELECT 1 FROM pg_database WHERE datname = '$DATABASE'")" != "1" ]]; then
    "${PSQL[@]}" -d postgres -c "CREATE DATABASE $DATABASE" 2>/dev/null \
        || [[ "$("${PSQL[@]}" -d postgres -c "SELECT 1 FROM pg_database WHERE datname = '$DATABASE'")" == "1" ]]
fi
"${PSQL[@]}" -d "$DATABASE" <<SQL
GRANT CONNECT ON DATABASE $DATABASE TO $ROLE;
GRANT USAGE ON SCHEMA public TO $ROLE;
GRANT SELECT ON ALL TABLES IN SCHEMA public TO $ROLE;
SQL

HBA="$("${PSQL[@]}" -d postgres -c 'SHOW hba_file')"
line4="host    $DATABASE    $ROLE    127.0.0.1/32    scram-sha-256"
line6="host    $DATABASE    $ROLE    ::1/128    scram-sha-256"
marker="# pg_auth.sh: $ROLE@$DATABASE checks its password"
if grep -qF "$marker" "$HBA"; then
    log "pg_hba.conf already has the rule for $ROLE@$DATABASE"
else
    tmp="$(mktemp "$HBA.XXXXXX")"
    # Insert the rules before the first non-comment, non-blank line (first match wins).
    awk -v m="$marker" -v l4="$line4" -v l6="$line6" '
        !done && $0 !~ /^[[:space:]]*(#|$)/ { print m; print l4; print l6; done = 1 }
        { print }
        END { if (!done) { print m; print l4; print l6 } }' "$HBA" >"$tmp"
    chmod --reference="$HBA" "$tmp"
    chown --reference="$HBA" "$tmp"
    mv "$tmp" "$HBA"
    log "added scram-sha-256 rule for $ROLE@$DATABASE to $HBA"
fi
"${PSQL[@]}" -d postgres -c 'SELECT pg_reload_conf()' >/dev/null
errors="$("${PSQL[@]}" -d postgres -c 'SELECT line_number, error FROM pg_hba_file_rules WHERE error IS NOT NULL')"
if [[ -n "$errors" ]]; then
    log "ERROR: pg_hba.conf has errors: $errors"
    exit 1
fi
# Check: the right password works and a wrong one is refused.
if ! PGPASSWORD="$PASSWORD" psql -h 127.0.0.1 -U "$ROLE" -d "$DATABASE" -w -qAt -c 'SELECT 1' >/dev/null 2>&1; then
    log "ERROR: $ROLE cannot log in to $DATABASE with its password"
    exit 1
fi
if PGPASSWORD="wrong-$PASSWORD" psql -h 127.0.0.1 -U "$ROLE" -d "$DATABASE" -w -qAt -c 'SELECT 1' >/dev/null 2>&1; then
    log "ERROR: a wrong password is still accepted for $ROLE@$DATABASE"
    exit 1
fi
log "ok: $ROLE@$DATABASE needs password (postgresql://$ROLE:<password>@127.0.0.1:5432/$DATABASE)"
