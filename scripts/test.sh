#!/usr/bin/env bash
# Runs gridcast's whole test suite: the README's test command.
#
# The interoperability tests open gridcast's netCDF output in Python xarray, and the
# S3 tests run against moto's S3-compatible server. So this installs the pinned Python
# packages from PyPI first. pip leaves versions that already match alone. The Postgres
# tests use the server at 127.0.0.1:5432 (GRIDCAST_TEST_POSTGRES_URL overrides it).
set -euo pipefail
cd "$(dirname "$0")/.."

python3 -m pip install --quiet --disable-pip-version-check --root-user-action=ignore -r scripts/requirements-test.txt

cargo test --workspace "$@"

# The API suite once more on the distributed backends: PostgreSQL and S3 (moto).
if [ $# -eq 0 ]; then
    echo "API tests on PostgreSQL and S3"
    GRIDCAST_TEST_BACKEND=distributed cargo test -p gridcast-api
fi
