#!/usr/bin/env bash
# Runs gridcast's whole test suite: the README's test command.
#
# The interoperability tests open gridcast's netCDF output in Python xarray, so this
# installs the pinned xarray, scipy and pandas from PyPI first; pip leaves versions that
# already match alone.
set -euo pipefail
cd "$(dirname "$0")/.."

python3 -m pip install --quiet --disable-pip-version-check --root-user-action=ignore -r scripts/requirements-test.txt

cargo test --workspace "$@"
