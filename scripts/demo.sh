#!/usr/bin/env bash
# Train CplMixVI on 700 PBMCs bundled with scanpy (under a minute on 2 CPU cores) and write the
# annotated data, a UMAP and the model to ./cplmixvi_demo.
# Usage: bash scripts/demo.sh [--out DIR] [--epochs N] [--seed S] [--n-arms A]
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
source scripts/_venv.sh
ensure_venv
export OMP_WAIT_POLICY=PASSIVE
exec "$VENV/bin/cplmixvi" demo "$@"
