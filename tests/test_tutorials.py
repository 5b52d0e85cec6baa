"""Every tutorial notebook executes, with tiny settings (outputs are not compared)."""

from __future__ import annotations

import base64
import importlib.util
import io
import os
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
TUTORIALS = ROOT / "tutorials"
MOP = ROOT.parent / "shared" / "data" / "mop_10x.h5ad"
pytestmark = pytest.mark.skipif(
    importlib.util.find_spec("nbclient") is None or importlib.util.find_spec("ipykernel") is None,
    reason="nbclient and ipykernel are needed to execute notebooks",
)
SMALL = {"CPLMIXVI_TUTORIAL_EPOCHS": "2", "OMP_NUM_THREADS": "1"}


def _execute(name: str, tmp_path: Path, env: dict[str, str], monkeypatch) -> Path:
    sys.path.insert(0, str(TUTORIALS))
    try:
        from execute import execute
    finally:
        sys.path.remove(str(TUTORIALS))
    monkeypatch.delenv("MPLBACKEND", raising=False)  # the kernel must draw inline
    for key, value in {**SMALL, **env}.items():
        monkeypatch.setenv(key, value)
    # the kernel imports the package from this source tree, as the tests do
    monkeypatch.setenv(
        "PYTHONPATH", os.pathsep.join([str(ROOT / "src"), os.environ.get("PYTHONPATH", "")])
    )
    source = TUTORIALS / name
    out = tmp_path / name
    # run in tutorials/ (relative paths as for a reader), write the executed copy elsewhere
    import nbformat

    executed = execute(source, out, timeout=600)
    notebook = nbformat.read(executed, as_version=4)
    errors = [
        output
        for cell in notebook.cells
        for output in cell.get("outputs", [])
        if output.get("output_type") == "error"
    ]
    assert not errors
    figures = [
        Image.open(io.BytesIO(base64.b64decode(output["data"]["image/png"])))
        for cell in notebook.cells
        for output in cell.get("outputs", [])
        if "image/png" in output.get("data", {})
    ]
    assert figures and all(figure.mode == "P" for figure in figures)  # stored as palette PNGs
    return executed


def test_quickstart_executes(tmp_path, monkeypatch):
    executed = _execute("quickstart.ipynb", tmp_path, {}, monkeypatch)
    text = executed.read_text()
    assert "cplmixvi_type" in text and "ari" in text


@pytest.mark.skipif(not MOP.exists(), reason="shared MOp data not available")
def test_yao2021_mop_executes(tmp_path, monkeypatch):
    env = {"CPLMIXVI_MOP_H5AD": str(MOP), "CPLMIXVI_TUTORIAL_CELLS": "1500"}
    executed = _execute("yao2021_mop.ipynb", tmp_path, env, monkeypatch)
    assert "yao2021(" in executed.read_text()


def test_tasic2018_executes_on_portal_fixture(tmp_path, monkeypatch):
    data = tmp_path / "tasic2018"
    subprocess.run(
        [sys.executable, str(ROOT / "tests" / "portal_fixtures.py"), "tasic2018", str(data)],
        check=True,
    )
    env = {
        "CPLMIXVI_TASIC2018": str(data),
        "CPLMIXVI_TUTORIAL_K": "10",
        "CPLMIXVI_TUTORIAL_PRUNE_ROUNDS": "2",
    }
    executed = _execute("tasic2018.ipynb", tmp_path, env, monkeypatch)
    assert "8 types" in executed.read_text()  # the fixture's neuron types after filtering
