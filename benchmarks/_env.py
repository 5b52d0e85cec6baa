"""What every benchmark shares: where the data are, the check of the ``bench`` extra, the
runner of fits in fresh processes and the writer of their rows.

Scripts in this folder import it directly (``python benchmarks/NAME.py`` puts the folder on
``sys.path``); experiments in ``benchmarks/experiments/`` add the folder first.
"""

from __future__ import annotations

import importlib.util
import os
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ProcessPoolExecutor, as_completed
from multiprocessing import get_context
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


def in_fresh_processes(calls: list[tuple[Callable, tuple]], jobs: int = 1) -> Iterator:
    """Run ``function(*args)`` for each ``(function, args)`` of ``calls``, each in a process of
    its own (spawned; its peak memory and thread pools are its own), ``jobs`` at a time, with
    ``OMP_WAIT_POLICY=PASSIVE`` (busy processes side by side otherwise slow each other ~40x).
    Yields the results as the calls end (in order with ``jobs=1``). The functions set their own
    torch threads."""
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    context = get_context("spawn")
    with ProcessPoolExecutor(jobs, mp_context=context, max_tasks_per_child=1) as pool:
        futures = [pool.submit(function, *args) for function, args in calls]
        for future in as_completed(futures):
            yield future.result()


def record(results: Iterable[dict], rows: list[dict], csv: Path, digits: int = 3) -> list[dict]:
    """Append each result row to ``rows``, print it (floats rounded to ``digits``) and rewrite
    ``csv`` with every row so far, so that an interrupted run keeps its finished fits."""
    import pandas as pd

    for row in results:
        rows.append(row)
        print({k: (round(v, digits) if isinstance(v, float) else v) for k, v in row.items()})
        pd.DataFrame(rows).to_csv(csv, index=False)
    return rows
