#!/usr/bin/env bash
# Runs the whole test suite (and the doctests in nas/).
set -euo pipefail
cd "$(dirname "$0")/.."
python -m pytest -q -n auto "$@"   # pytest-xdist: one worker per core
