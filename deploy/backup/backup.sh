#!/usr/bin/env bash
# Backs up gridcast's distributed-mode state: the Postgres job database (pg_dump custom
# format) and the ReasoningBank SQLite file of the scheduler. Results in S3 are not
# copied, so protect them with the object store's own versioning or replication.
#
# Usage: backup.sh [--skip-postgres] [--skip-bank] [DEST_DIR]
#
# Writes DEST_DIR/gridcast-YYYYMMDDTHHMMSSZ/ with postgres.dump, bank.sqlite (or
# bank.jsonl, see below) and SHA256SUMS. DEST_DIR defaults to $GRIDCAST_BACKUP_DIR,
# then to ./backups. The directory gets its final name only when every part succeeded.
#
# Environment:
#   GRIDCAST_DATABASE_URL  postgres:// URL of the job database. When unset, pg_dump
#                          reads the libpq variables (PGHOST, PGUSER, PGDATABASE, ...).
#   GRIDCAST_BANK          ReasoningBank file [default: $GRIDCAST_DATA_DIR/bank.sqlite].
#
# The bank is copied with `sqlite3 .backup`, which is consistent while the scheduler
# keeps writing. Without the sqlite3 command it falls back to `gridcast bank export`
# (JSON lines of outcomes and skill records; learned patterns are recomputed on import).
set -euo pipefail

usage() {
    sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'
}

# Prints a database URL with its password replaced by ***.
redact_url() {
    sed -E 's#(://[^:/@]+):[^@]*@#\1:***@#' <<<"$1"
}

skip_postgres=false
skip_bank=false
dest_root="${GRIDCAST_BACKUP_DIR:-backups}"
while [[ $# -gt 0 ]]; do
    case "$1" in
        --skip-postgres) skip_postgres=true ;;
        --skip-bank) skip_bank=true ;;
        -h | --help)
            usage
            exit 0
            ;;
        -*)
            echo "backup.sh: unknown option $1 (see --help)" >&2
            exit 2
            ;;
        *) dest_root="$1" ;;
    esac
    shift
done

stamp="$(date -u +%Y%m%dT%H%M%SZ)"
final_dir="$dest_root/gridcast-$stamp"
work_dir="$dest_root/.gridcast-$stamp.partial"
if [[ -e "$final_dir" || -e "$work_dir" ]]; then
    echo "backup.sh: $final_dir already exists; wait a second and run again" >&2
    exit 1
fi
mkdir -p "$work_dir"
# An interrupted or failed run leaves no directory that looks like a finished backup.
trap 'rm -rf "$work_dir"' EXIT

if ! $skip_postgres; then
    database_url="${GRIDCAST_DATABASE_URL:-}"
    if [[ "$database_url" == sqlite://* ]]; then
        echo "backup.sh: GRIDCAST_DATABASE_URL is an embedded SQLite database; stop" \
            "gridcast serve and copy its data directory instead, or pass --skip-postgres" >&2
        exit 1
    fi
    command -v pg_dump > /dev/null || {
        echo "backup.sh: pg_dump not found; install the PostgreSQL client" \
            "(Debian: postgresql-client) matching the server's major version" >&2
        exit 1
    }
    if [[ -n "$database_url" ]]; then
        echo "dumping $(redact_url "$database_url")"
        pg_dump --format=custom --file="$work_dir/postgres.dump" --dbname="$database_url"
    else
        echo "dumping the database named by the PG* environment variables"
        pg_dump --format=custom --file="$work_dir/postgres.dump"
    fi
    # Fails on a truncated or unreadable archive.
    pg_restore --list "$work_dir/postgres.dump" > /dev/null
fi

if ! $skip_bank; then
    bank="${GRIDCAST_BANK:-${GRIDCAST_DATA_DIR:-gridcast-data}/bank.sqlite}"
    if [[ ! -f "$bank" ]]; then
        echo "backup.sh: ReasoningBank $bank not found; set GRIDCAST_BANK or pass" \
            "--skip-bank" >&2
        exit 1
    fi
    if command -v sqlite3 > /dev/null; then
        echo "copying ReasoningBank $bank"
        # sqlite3 dot-commands take the file name in single quotes.
        if [[ "$work_dir" == *"'"* ]]; then
            echo "backup.sh: DEST_DIR must not contain a single quote" >&2
            exit 1
        fi
        sqlite3 "$bank" ".backup '$work_dir/bank.sqlite'"
        check="$(sqlite3 "$work_dir/bank.sqlite" 'PRAGMA integrity_check;')"
        if [[ "$check" != "ok" ]]; then
            echo "backup.sh: the bank copy failed its integrity check: $check" >&2
            exit 1
        fi
    elif command -v gridcast > /dev/null; then
        echo "sqlite3 not found; exporting ReasoningBank $bank with gridcast bank export"
        gridcast bank --bank "$bank" export "$work_dir/bank.jsonl"
    else
        echo "backup.sh: neither sqlite3 nor gridcast found to copy the ReasoningBank" >&2
        exit 1
    fi
fi

(cd "$work_dir" && sha256sum -- * > SHA256SUMS)
mv "$work_dir" "$final_dir"
trap - EXIT
echo "backup written to $final_dir"
