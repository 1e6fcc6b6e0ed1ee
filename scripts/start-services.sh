#!/usr/bin/env bash
# Makes sure the services the test suite talks to are up on 127.0.0.1: PostgreSQL on
# 5432. Starts it with the machine's own service scripts when it is down, and fails when
# it cannot, so the Postgres tests never run against nothing. (S3 tests start their own
# moto server; Redis is not used by the test suite.)
set -euo pipefail

if pg_isready -q -h 127.0.0.1 -p 5432; then
    exit 0
fi
echo "PostgreSQL is not answering on 127.0.0.1:5432; starting it"
if command -v pg_ctlcluster >/dev/null; then
    for cluster in $(pg_lsclusters --no-header | awk '{print $1 "/" $2}'); do
        pg_ctlcluster "${cluster%/*}" "${cluster#*/}" start || true
    done
else
    service postgresql start || true
fi
for _ in $(seq 30); do
    if pg_isready -q -h 127.0.0.1 -p 5432; then
        exit 0
    fi
    sleep 1
done
echo "error: PostgreSQL did not come up on 127.0.0.1:5432; the Postgres tests need it" >&2
exit 1
