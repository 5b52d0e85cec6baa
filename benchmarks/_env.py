"""What every benchmark shares: where the data are, and the check of the ``bench`` extra.

Scripts in this folder import it directly (``python benchmarks/NAME.py`` puts the folder on
``sys.path``); experiments in ``benchmarks/experiments/`` add the folder first.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

#: the shared, read-only real data sets (``../shared/data`` beside the repository)
DATA = Path(__file__).resolve().parent.parent.parent / "shared" / "data"
#: modules of the ``bench`` extra (``pip install -e ".[bench]"``)
BENCH_MODULES = ("tabulate",)


def require_bench_extra() -> None:
    """Stop before any work if the ``bench`` extra is missing (tables are written at the end)."""
    missing = [name for name in BENCH_MODULES if importlib.util.find_spec(name) is None]
    if missing:
        raise SystemExit(
            f"The benchmarks need {missing} to write their tables; install the bench extra "
            'first: pip install -e ".[bench]" (or bash scripts/test.sh, then .venv/bin/pip '
            'install -e ".[bench]").'
        )
