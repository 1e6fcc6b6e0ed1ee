#!/usr/bin/env bash
# Restores a backup written by backup.sh into the Postgres job database and the
# ReasoningBank. Stop the api, worker and scheduler processes first, because the
# database restore drops and recreates gridcast's tables and the bank file is replaced.
#
# Usage: restore.sh --yes [--skip-postgres] [--skip-bank] BACKUP_DIR
#
# Without --yes it only prints what it would restore. Checksums in SHA256SUMS are
# verified before anything changes.
#
# Environment:
#   GRIDCAST_DATABASE_URL  postgres:// URL of the target database; it must exist.
#                          When unset, pg_restore reads the libpq variables (PG*).
#   GRIDCAST_BANK          ReasoningBank file to replace
#                          [default: $GRIDCAST_DATA_DIR/bank.sqlite].
#
# Postgres: pg_restore --clean --if-exists --no-owner in one transaction, so a failed
# restore leaves the database as it was. Objects are owned by the connecting user.
# Tables that are not in the dump are left alone; restore into a new, empty database
# for an exact copy.
# Bank: bank.sqlite replaces the file, and the old one is kept beside it as
# bank.sqlite.before-restore-TIMESTAMP. bank.jsonl is merged with `gridcast bank import`.
set -euo pipefail

usage() {
    sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'
}

redact_url() {
    sed -E 's#(://[^:/@]+):[^@]*@#\1:***@#' <<<"$1"
}

confirmed=false
skip_postgres=false
skip_bank=false
backup_dir=""
while [[ $# -gt 0 ]]; do
    case "$1" in
        --yes) confirmed=true ;;
        --skip-postgres) skip_postgres=true ;;
        --skip-bank) skip_bank=true ;;
        -h | --help)
            usage
            exit 0
            ;;
        -*)
            echo "restore.sh: unknown option $1 (see --help)" >&2
            exit 2
            ;;
        *) backup_dir="$1" ;;
    esac
    shift
done

if [[ -z "$backup_dir" ]]; then
    echo "restore.sh: missing BACKUP_DIR (see --help)" >&2
    exit 2
fi
if [[ ! -f "$backup_dir/SHA256SUMS" ]]; then
    echo "restore.sh: $backup_dir/SHA256SUMS not found; pass a directory written by" \
        "backup.sh" >&2
    exit 1
fi
(cd "$backup_dir" && sha256sum --check --quiet SHA256SUMS) || {
    echo "restore.sh: checksum mismatch in $backup_dir; the backup is damaged" >&2
    exit 1
}

database_url="${GRIDCAST_DATABASE_URL:-}"
bank="${GRIDCAST_BANK:-${GRIDCAST_DATA_DIR:-gridcast-data}/bank.sqlite}"
restore_postgres=false
bank_source=""
if ! $skip_postgres && [[ -f "$backup_dir/postgres.dump" ]]; then
    restore_postgres=true
fi
if ! $skip_bank; then
    if [[ -f "$backup_dir/bank.sqlite" ]]; then
        bank_source="$backup_dir/bank.sqlite"
    elif [[ -f "$backup_dir/bank.jsonl" ]]; then
        bank_source="$backup_dir/bank.jsonl"
    fi
fi
if ! $restore_postgres && [[ -z "$bank_source" ]]; then
    echo "restore.sh: nothing to restore from $backup_dir" >&2
    exit 1
fi

if $restore_postgres; then
    target="${database_url:+$(redact_url "$database_url")}"
    echo "database: $backup_dir/postgres.dump -> ${target:-the database named by PG*}"
fi
if [[ -n "$bank_source" ]]; then
    echo "bank:     $bank_source -> $bank"
fi
if ! $confirmed; then
    echo "dry run: pass --yes to restore"
    exit 0
fi

if $restore_postgres; then
    if [[ "$database_url" == sqlite://* ]]; then
        echo "restore.sh: GRIDCAST_DATABASE_URL is an embedded SQLite database, not" \
            "Postgres" >&2
        exit 1
    fi
    command -v pg_restore > /dev/null || {
        echo "restore.sh: pg_restore not found; install the PostgreSQL client" >&2
        exit 1
    }
    connection=()
    if [[ -n "$database_url" ]]; then
        connection=(--dbname="$database_url")
    fi
    pg_restore --clean --if-exists --no-owner --single-transaction --exit-on-error \
        "${connection[@]}" "$backup_dir/postgres.dump"
    echo "database restored"
fi

if [[ -n "$bank_source" ]]; then
    mkdir -p "$(dirname "$bank")"
fi
if [[ "$bank_source" == *.sqlite ]]; then
    command -v sqlite3 > /dev/null || {
        echo "restore.sh: sqlite3 not found (Debian: sqlite3)" >&2
        exit 1
    }
    staged="$bank.restoring"
    cp "$bank_source" "$staged"
    check="$(sqlite3 "$staged" 'PRAGMA integrity_check;')"
    if [[ "$check" != "ok" ]]; then
        rm -f "$staged"
        echo "restore.sh: $bank_source failed its integrity check: $check" >&2
        exit 1
    fi
    if [[ -f "$bank" ]]; then
        previous="$bank.before-restore-$(date -u +%Y%m%dT%H%M%SZ)"
        # Checkpoints the old bank's WAL into the file, so the kept copy is complete.
        sqlite3 "$bank" 'PRAGMA wal_checkpoint(TRUNCATE);' > /dev/null
        mv "$bank" "$previous"
        echo "previous bank kept as $previous"
    fi
    # A stale -wal or -shm beside the new file would be read as part of it.
    rm -f "$bank-wal" "$bank-shm"
    mv "$staged" "$bank"
    echo "bank restored"
elif [[ "$bank_source" == *.jsonl ]]; then
    command -v gridcast > /dev/null || {
        echo "restore.sh: gridcast not found on PATH for the bank import" >&2
        exit 1
    }
    gridcast bank --bank "$bank" import "$bank_source"
fi
