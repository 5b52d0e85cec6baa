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
