#!/usr/bin/env bash
# Installs nas and everything it needs into the active Python environment (CPU-only torch, pinned).
set -euo pipefail
cd "$(dirname "$0")/.."
python -m pip install -r requirements.txt -c constraints.txt
python -m pip install --no-deps -e . -c constraints.txt
