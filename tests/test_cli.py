"""The command line (``cplmixvi demo`` / ``cplmixvi fit``) and the data loaders, end to end."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import anndata as ad
import numpy as np
import pytest

from cplmixvi.cli import main
from cplmixvi.data import pbmc68k_reduced, read

PBMC_4K = Path(__file__).resolve().parents[2] / "shared" / "data" / "pbmc_10x_4k.h5ad"


@pytest.fixture(scope="module")
def small_h5ad(tmp_path_factory) -> Path:
    """300 real PBMCs (raw counts in .X, labels in obs['cell_type']) written to an .h5ad."""
    if not PBMC_4K.exists():
        pytest.skip(f"shared data not found at {PBMC_4K}")
    adata = ad.read_h5ad(PBMC_4K)
    rng = np.random.default_rng(0)
    cells = np.sort(rng.choice(adata.n_obs, size=300, replace=False))
    path = tmp_path_factory.mktemp("data") / "pbmc300.h5ad"
    adata[cells].copy().write_h5ad(path)
    return path


def _check_outputs(h5ad: Path, png: Path, model_dir: Path, n_obs: int) -> ad.AnnData:
    assert h5ad.is_file() and png.is_file() and (model_dir / "model.pt").is_file()
    assert png.stat().st_size > 10_000
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    result = ad.read_h5ad(h5ad)
    assert result.n_obs == n_obs
    assert "cplmixvi_type" in result.obs
    assert result.obsm["X_cplmixvi_state"].shape == (n_obs, 2)
    assert "X_cplmixvi_umap" in result.obsm and "X_umap" not in result.obsm
    return result


def test_pbmc68k_reduced_is_log_normalised_with_ten_labels():
    adata = pbmc68k_reduced()
    assert adata.shape == (700, 765)
    assert adata.obs["bulk_labels"].nunique() == 10
    values = adata.X.data
    assert values.min() >= 0 and not np.allclose(values, np.round(values))


def test_read_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="nothing.h5ad"):
        read(tmp_path / "nothing.h5ad")
    other = tmp_path / "table.csv"
    other.write_text("a,b\n")
    with pytest.raises(ValueError, match=r"\.csv"):
        read(other)


def test_demo_writes_results_and_prints_scores_and_no_warnings(tmp_path):
    """As a user runs it: a fresh process, whose stderr (warnings included) stays empty."""
    out = tmp_path / "demo"
    src = str(Path(__file__).resolve().parents[1] / "src")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([src, os.environ.get("PYTHONPATH", "")])}
    argv = [sys.executable, "-m", "cplmixvi.cli", "demo", "--out", str(out), "--epochs", "3"]
    run = subprocess.run(argv, env=env, capture_output=True, text=True, cwd=tmp_path)
    assert run.returncode == 0, run.stderr
    assert run.stderr == ""
    result = _check_outputs(out / "demo.h5ad", out / "demo_umap.png", out / "model", 700)
    assert "bulk_labels" in result.obs
    for name in ("ACC", "ARI", "AMI", "NMI", "KL", "arm agreement"):
        assert name in run.stdout


def test_fit_counts_file(small_h5ad, tmp_path, capsys):
    out = tmp_path / "fit"
    argv = ["fit", str(small_h5ad), "--n-types", "8", "--likelihood", "nb", "--epochs", "2"]
    assert main([*argv, "--labels-key", "cell_type", "--out", str(out)]) == 0
    result = _check_outputs(
        out / "pbmc300_cplmixvi.h5ad", out / "pbmc300_umap.png", out / "model", 300
    )
    assert set(result.obs["cplmixvi_type"].cat.categories) <= {str(k) for k in range(8)}
    assert "ARI vs cell_type" in capsys.readouterr().out


def test_fit_without_a_number_of_types(small_h5ad, tmp_path, capsys):
    out = tmp_path / "auto"
    argv = ["fit", str(small_h5ad), "--n-types", "auto", "--epochs", "2", "--out", str(out)]
    assert main(argv) == 0
    result = ad.read_h5ad(out / "pbmc300_cplmixvi.h5ad")
    history = result.uns["cplmixvi"]["pruning_history"]
    assert history["n_types"].iloc[0] == 30  # the upper bound of 300 cells
    found = result.obs["cplmixvi_type"].nunique()
    assert found <= history["n_types"].iloc[-1] < 30
    printed = capsys.readouterr().out
    assert "30 categories (auto)" in printed and f"{found} of 30" in printed
    assert main(["fit", str(small_h5ad), "--n-types", "many"]) == 2


def test_fit_missing_layer_is_a_clean_error(small_h5ad, tmp_path, capsys):
    argv = ["fit", str(small_h5ad), "--n-types", "8", "--layer", "spliced", "--epochs", "1"]
    assert main([*argv, "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "'spliced'" in err
    assert "Traceback" not in err
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize(
    ("extra", "needle"),
    [
        (["--labels-key", "nope"], "'nope'"),
        (["--likelihood", "normal", "--n-types", "1000"], "n_types=1000"),
    ],
)
def test_fit_bad_options_exit_2(small_h5ad, tmp_path, capsys, extra, needle):
    argv = ["fit", str(small_h5ad), "--n-types", "8", "--epochs", "1", *extra]
    assert main([*argv, "--out", str(tmp_path / "out")]) == 2
    assert needle in capsys.readouterr().err


def test_fit_missing_file_and_usage_errors(tmp_path, capsys):
    assert main(["fit", str(tmp_path / "absent.h5ad"), "--n-types", "3"]) == 2
    assert "absent.h5ad" in capsys.readouterr().err
    assert main(["fit", str(tmp_path / "absent.h5ad")]) == 2  # --n-types is required
    assert "--n-types" in capsys.readouterr().err
    assert main([]) == 2


def test_fit_help_states_the_epochs_train_uses(capsys):
    from cplmixvi.model._training import default_max_epochs

    assert main(["fit", "--help"]) == 0
    help_text = " ".join(capsys.readouterr().out.split())
    rule = "min(400, max(20, 300000 // n_cells))"
    assert rule in help_text
    for n_cells in (100, 700, 4_000, 11_444, 1_000_000):
        assert eval(rule, {}, {"n_cells": n_cells}) == default_max_epochs(n_cells)


def test_importing_the_package_leaves_the_environment_alone():
    env = {k: v for k, v in os.environ.items() if k != "OMP_WAIT_POLICY"}
    src = str(Path(__file__).resolve().parents[1] / "src")
    env["PYTHONPATH"] = os.pathsep.join([src, env.get("PYTHONPATH", "")])
    code = "import os, cplmixvi, cplmixvi.cli; print(os.environ.get('OMP_WAIT_POLICY'))"
    out = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
    )
    assert out.stdout.strip() == "None"
