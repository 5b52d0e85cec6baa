"""Run an experiment's fits in fresh processes, one torch thread each, and collect their rows."""

from __future__ import annotations

import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path


def run_children(script: str, runs: list[tuple], out: Path, jobs: int = 2) -> None:
    """Run ``python script --one *run`` for every run, ``jobs`` at a time.

    Each child gets ``OMP_WAIT_POLICY=PASSIVE`` and ``OMP_NUM_THREADS=1``; the lines of its
    standard output that start with ``{`` (JSON rows) are appended to ``out`` when it ends, and
    a failing child's standard error is printed.
    """
    env = dict(os.environ, OMP_WAIT_POLICY="PASSIVE", OMP_NUM_THREADS="1")

    def launch(run: tuple) -> None:
        cmd = [sys.executable, script, "--one", *map(str, run)]
        done = subprocess.run(cmd, capture_output=True, text=True, env=env)
        if done.returncode:
            print(done.stderr[-3000:], file=sys.stderr)
            return
        lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
        with out.open("a") as handle:
            handle.write("".join(line + "\n" for line in lines))

    with ThreadPoolExecutor(jobs) as pool:
        list(pool.map(launch, runs))
