"""The benchmarks' shared parts (``benchmarks/_env.py``): data, bench extra, runner, writers."""

import importlib.util
import os
from pathlib import Path

import pytest

ENV = Path(__file__).resolve().parent.parent / "benchmarks" / "_env.py"


@pytest.fixture
def env(monkeypatch):
    """``_env`` imported as the scripts import it (its children unpickle it by that name)."""
    monkeypatch.syspath_prepend(str(ENV.parent))
    return importlib.import_module("_env")


def test_data_folder_is_the_shared_one_beside_the_repository(env):
    assert env.DATA == ENV.parent.parent.parent / "shared" / "data"


def test_a_missing_bench_extra_stops_before_any_work(env, monkeypatch):
    monkeypatch.setattr(env, "BENCH_MODULES", ("no_such_module_here",))
    with pytest.raises(SystemExit, match=r"\['no_such_module_here'\].*pip install -e"):
        env.require_bench_extra()


def _child_facts(value):
    import os

    return value * 2, os.getpid(), os.environ.get("OMP_WAIT_POLICY")


def _child_environment(*names):
    import os

    return {name: os.environ.get(name) for name in names}


def _child_fails(value):
    raise ValueError(f"bad value {value}")


def test_fresh_processes_run_every_call_apart_with_passive_waiting(env):
    results = sorted(env.in_fresh_processes([(_child_facts, (i,)) for i in range(3)], jobs=2))
    assert [doubled for doubled, _, _ in results] == [0, 2, 4]
    pids = {pid for _, pid, _ in results}
    assert len(pids) == 3 and os.getpid() not in pids  # one fresh process per call
    assert {policy for _, _, policy in results} == {os.environ.get("OMP_WAIT_POLICY", "PASSIVE")}


def test_fresh_processes_start_with_the_threads_and_each_calls_environment(env, monkeypatch):
    monkeypatch.setenv("CPLMIXVI_BENCH_GONE", "parent")
    names = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OMP_WAIT_POLICY", "CPLMIXVI_BENCH_GONE")
    calls = [
        (_child_environment, names),
        (_child_environment, names, {"OMP_WAIT_POLICY": "ACTIVE", "CPLMIXVI_BENCH_GONE": None}),
    ]
    first, second = env.in_fresh_processes(calls, threads=1)
    assert first["OMP_NUM_THREADS"] == first["MKL_NUM_THREADS"] == "1"
    assert first["CPLMIXVI_BENCH_GONE"] == "parent" and second["CPLMIXVI_BENCH_GONE"] is None
    assert second["OMP_WAIT_POLICY"] == "ACTIVE"
    assert os.environ["CPLMIXVI_BENCH_GONE"] == "parent"  # the parent's own is restored


def test_a_failing_call_raises_with_its_traceback(env):
    with pytest.raises(RuntimeError, match=r"_child_fails\(7,\) failed(.|\n)*bad value 7"):
        list(env.in_fresh_processes([(_child_fails, (7,))]))


def test_append_jsonl_adds_rows_and_lists_of_rows(env, tmp_path):
    import json

    path = tmp_path / "rows.jsonl"
    env.append_jsonl(iter([{"a": 1}, [{"a": 2}, {"a": 3}]]), path)
    env.append_jsonl(iter([{"a": 4}]), path)
    assert [json.loads(line)["a"] for line in path.read_text().splitlines()] == [1, 2, 3, 4]


def test_a_lab_note_is_its_head_then_its_table(env, tmp_path, capsys):
    path = tmp_path / "note.md"
    env.write_lab_note(path, "Lab note: what ran.", "| a |\n|---|\n| 1 |")
    assert path.read_text() == "Lab note: what ran.\n\n| a |\n|---|\n| 1 |\n"
    assert capsys.readouterr().out.startswith("Lab note: what ran.")
    env.write_lab_note(path, "Second.", "| b |")
    assert path.read_text().startswith("Second.")  # a rewrite, not an append


def test_record_keeps_every_finished_row_on_disk(env, tmp_path, capsys):
    import pandas as pd

    csv = tmp_path / "rows.csv"
    rows = [{"fit": 0, "ari": 0.5}]  # from an earlier, resumed run

    def results():
        yield {"fit": 1, "ari": 0.123456}
        assert len(pd.read_csv(csv)) == 2  # written before the next fit ends
        yield {"fit": 2, "ari": 0.9}

    assert env.record(results(), rows, csv) is rows
    assert pd.read_csv(csv)["fit"].tolist() == [0, 1, 2]
    assert "0.123}" in capsys.readouterr().out


def test_finished_rows_are_kept_only_when_resuming(env, tmp_path):
    import pandas as pd

    csv = tmp_path / "rows.csv"
    assert env.finished_rows(csv, ("fit", "seed")) == ([], set())  # no earlier run
    pd.DataFrame({"fit": ["a", "b"], "seed": [0, 1], "ari": [0.5, 0.6]}).to_csv(csv, index=False)
    rows, done = env.finished_rows(csv, ("fit", "seed"))
    assert [row["ari"] for row in rows] == [0.5, 0.6] and done == {("a", 0), ("b", 1)}
    assert env.finished_rows(csv, ("fit", "seed"), resume=False) == ([], set())
