#!/usr/bin/env bash
# Runs gridcast's whole test suite: the README's test command.
#
# The interoperability tests open gridcast's netCDF output in Python xarray, so this
# installs xarray and scipy from PyPI first when they are missing.
set -euo pipefail
cd "$(dirname "$0")/.."

if ! python3 -c 'import xarray, scipy' 2>/dev/null; then
    echo "installing Python test dependencies (xarray, scipy) from PyPI"
    python3 -m pip install --quiet --disable-pip-version-check -r scripts/requirements-test.txt
fi

cargo test --workspace "$@"
