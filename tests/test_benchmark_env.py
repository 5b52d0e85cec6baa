"""The benchmarks' shared settings (``benchmarks/_env.py``): data folder and the bench extra."""

import importlib.util
from pathlib import Path

import pytest

ENV = Path(__file__).resolve().parent.parent / "benchmarks" / "_env.py"


@pytest.fixture
def env():
    spec = importlib.util.spec_from_file_location("bench_env", ENV)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_data_folder_is_the_shared_one_beside_the_repository(env):
    assert env.DATA == ENV.parent.parent.parent / "shared" / "data"


def test_a_missing_bench_extra_stops_before_any_work(env, monkeypatch):
    monkeypatch.setattr(env, "BENCH_MODULES", ("no_such_module_here",))
    with pytest.raises(SystemExit, match=r"\['no_such_module_here'\].*pip install -e"):
        env.require_bench_extra()


def _child_facts(value):
    import os

    return value * 2, os.getpid(), os.environ.get("OMP_WAIT_POLICY")


def test_fresh_processes_run_every_call_apart_with_passive_waiting(env):
    import os

    results = sorted(env.in_fresh_processes([(_child_facts, (i,)) for i in range(3)], jobs=2))
    assert [doubled for doubled, _, _ in results] == [0, 2, 4]
    pids = {pid for _, pid, _ in results}
    assert len(pids) == 3 and os.getpid() not in pids  # one fresh process per call
    assert {policy for _, _, policy in results} == {os.environ.get("OMP_WAIT_POLICY", "PASSIVE")}


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
