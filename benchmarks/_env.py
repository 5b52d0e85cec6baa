"""What every benchmark shares: where the data are, the check of the ``bench`` extra, the
runner of fits in fresh processes and the writer of their rows.

Scripts in this folder import it directly (``python benchmarks/NAME.py`` puts the folder on
``sys.path``); experiments in ``benchmarks/experiments/`` add the folder first.
"""

from __future__ import annotations

import importlib.util
import json
import os
import tempfile
import traceback
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from multiprocessing import get_context
from multiprocessing.connection import wait
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


def in_fresh_processes(
    calls: Iterable[tuple], jobs: int = 1, threads: int | None = None, env: dict | None = None
) -> Iterator:
    """Run ``function(*args)`` for each ``(function, args)`` or ``(function, args, call_env)`` of
    ``calls``, each in a spawned process of its own (its peak memory and thread pools are its
    own), ``jobs`` at a time; yield the results as the calls end (in order with ``jobs=1``).

    The environment is set before each process starts, since OpenMP reads it once, when torch is
    imported: ``OMP_WAIT_POLICY=PASSIVE`` unless the caller's environment sets it (busy
    processes side by side otherwise slow each other ~40x); ``threads`` sets ``OMP_NUM_THREADS``
    and ``MKL_NUM_THREADS``; then ``env`` and the call's own ``call_env`` (a ``None`` value
    unsets a variable). A child's ``sys.path`` is the parent's: a function that must import
    another source tree inserts it itself. A failed call raises ``RuntimeError`` with the
    child's traceback, after the other children are stopped.
    """
    common = {"OMP_WAIT_POLICY": os.environ.get("OMP_WAIT_POLICY", "PASSIVE")}
    if threads is not None:
        common |= {"OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads)}
    common |= env or {}
    context = get_context("spawn")
    waiting, running = deque(calls), {}
    try:
        while waiting or running:
            while waiting and len(running) < jobs:
                function, args, *call_env = waiting.popleft()
                receiver, sender = context.Pipe(duplex=False)
                process = context.Process(target=_send_result, args=(sender, function, args))
                with _environment({**common, **(call_env[0] if call_env else {})}):
                    process.start()
                sender.close()
                running[receiver] = (process, f"{function.__name__}{tuple(args)}")
            for receiver in wait(list(running)):
                process, label = running.pop(receiver)
                try:
                    ok, value = receiver.recv()
                except EOFError:
                    ok, value = False, "the process ended without a result (killed for memory?)"
                process.join()
                if not ok:
                    raise RuntimeError(f"{label} failed (exit code {process.exitcode}):\n{value}")
                yield value
    finally:
        for process, _ in running.values():
            process.terminate()


def in_fresh_process(
    function: Callable, *args, threads: int | None = None, env: dict | None = None
):
    """``function(*args)`` run as one call of ``in_fresh_processes``; its result."""
    return next(in_fresh_processes([(function, args)], threads=threads, env=env))


def cold_compile_env() -> dict[str, str]:
    """Environment of a process whose compilation is timed in full: an empty inductor cache of
    its own and one compile thread."""
    cache = tempfile.mkdtemp(prefix="inductor_")
    return {"TORCHINDUCTOR_CACHE_DIR": cache, "TORCHINDUCTOR_COMPILE_THREADS": "1"}


def _send_result(sender, function: Callable, args: tuple) -> None:
    """The child's side of ``in_fresh_processes``: send ``(True, result)`` or the traceback."""
    try:
        sender.send((True, function(*args)))
    except BaseException:  # noqa: BLE001 - the parent re-raises it with the traceback
        sender.send((False, traceback.format_exc()))
    finally:
        sender.close()


@contextmanager
def _environment(variables: dict[str, str | None]) -> Iterator[None]:
    """Set (``None``: unset) environment variables for the block, then restore them."""
    before = {name: os.environ.get(name) for name in variables}
    try:
        for name, value in variables.items():
            _set_variable(name, value)
        yield
    finally:
        for name, value in before.items():
            _set_variable(name, value)


def _set_variable(name: str, value: str | None) -> None:
    if value is None:
        os.environ.pop(name, None)
    else:
        os.environ[name] = value


def finished_rows(csv: Path, keys: tuple[str, ...], resume: bool = True) -> tuple[list, set]:
    """The rows an earlier run left in ``csv`` (none unless ``resume``) and the set of their
    ``keys`` values: the fits a resumed run skips."""
    import pandas as pd

    rows = pd.read_csv(csv).to_dict("records") if resume and csv.exists() else []
    return rows, {tuple(row[key] for key in keys) for row in rows}


def record(results: Iterable[dict], rows: list[dict], csv: Path, digits: int = 3) -> list[dict]:
    """Append each result row to ``rows``, print it (floats rounded to ``digits``) and rewrite
    ``csv`` with every row so far, so that an interrupted run keeps its finished fits."""
    import pandas as pd

    for row in results:
        rows.append(row)
        print({k: (round(v, digits) if isinstance(v, float) else v) for k, v in row.items()})
        pd.DataFrame(rows).to_csv(csv, index=False)
    return rows


def append_jsonl(results: Iterable[dict | list[dict]], path: Path) -> None:
    """Append each result (a row, or a list of rows) to ``path`` as JSON lines when it arrives,
    so that an interrupted experiment keeps its finished fits."""
    for result in results:
        rows = result if isinstance(result, list) else [result]
        with path.open("a") as handle:
            handle.write("".join(json.dumps(row) + "\n" for row in rows))


def write_lab_note(path: Path, head: str, table: str) -> None:
    """Write a lab note, ``head`` (what was run and what it shows) then ``table``, to ``path``
    (markdown) and print it."""
    text = f"{head}\n\n{table}\n"
    path.write_text(text)
    print(text)
