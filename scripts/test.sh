#!/usr/bin/env bash
# Run the test suite, creating the virtual environment first if it is missing.
# Usage: bash scripts/test.sh [pytest arguments]     (VENV=... to use another environment)
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
source scripts/_venv.sh
ensure_venv
export OMP_WAIT_POLICY=PASSIVE
exec "$VENV/bin/python" -m pytest -q "$@"
