"""The README's ten-line example runs as written (on 1 200 MOp cells, 2 epochs): the front page
cannot rot. Only the data path, the subset, the epochs and the output folder are substituted; a
substitution that no longer matches the README fails the test."""

from __future__ import annotations

import re
from pathlib import Path

import anndata
import matplotlib.pyplot as plt
import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
MOP = ROOT.parent / "shared" / "data" / "mop_10x.h5ad"
N_CELLS = 1200

# (what the README says, what the test runs instead)
SUBSTITUTIONS = [
    ('sc.read_h5ad("mop_10x.h5ad")', "sc.read_h5ad(MOP)[CELLS].copy()"),
    ("model.train()", 'model.train(max_epochs=2, accelerator="cpu", enable_progress_bar=False)'),
]


def readme_example() -> str:
    """The python block under the README's "## Ten lines" heading."""
    text = (ROOT / "README.md").read_text()
    section = text.split("## Ten lines", 1)[1]
    match = re.search(r"```python\n(.*?)```", section, flags=re.DOTALL)
    assert match, "README.md: no python block under '## Ten lines'"
    return match.group(1)


def test_readme_example_is_ten_lines_and_substitutable():
    code = readme_example()
    assert len(code.strip().splitlines()) <= 11  # ten lines and the import
    for old, _ in SUBSTITUTIONS:
        assert code.count(old) == 1, f"the README's example no longer contains {old!r}"


@pytest.mark.skipif(not MOP.exists(), reason="shared MOp data not available")
def test_readme_example_runs(tmp_path, monkeypatch, capsys):
    code = readme_example()
    for old, new in SUBSTITUTIONS:
        code = code.replace(old, new)
    monkeypatch.chdir(tmp_path)  # model.save("run1") writes here
    rng = np.random.default_rng(0)
    n_obs = anndata.read_h5ad(MOP, backed="r").n_obs
    cells = np.sort(rng.choice(n_obs, size=N_CELLS, replace=False))
    namespace = {"MOP": MOP, "CELLS": cells}
    try:
        exec(compile(code, "README.md", "exec"), namespace)
    finally:
        plt.close("all")

    adata, model = namespace["adata"], namespace["model"]
    assert adata.n_obs == N_CELLS and model.adata is adata  # the reloaded model
    assert adata.obs["cplmixvi_type"].nunique() >= 2
    assert adata.obsm["X_cplmixvi_umap"].shape == (N_CELLS, 2)
    assert (tmp_path / "run1" / "model.pt").is_file()
    assert "'ari'" in capsys.readouterr().out  # the printed scores


def test_readme_headline_table_is_the_benchmarks_own():
    """The README's table is ``benchmarks/results/clustering_headline.md`` as
    ``benchmarks/clustering.py`` wrote it (a hand copy that drifted would fail)."""
    headline = (ROOT / "benchmarks" / "results" / "clustering_headline.md").read_text()
    table = [line for line in headline.splitlines() if line.startswith("|")]
    readme = (ROOT / "README.md").read_text().split("## Cell types against scanpy and scVI")[1]
    assert [line for line in readme.splitlines() if line.startswith("|")][: len(table)] == table
