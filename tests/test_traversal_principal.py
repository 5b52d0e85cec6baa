"""Traversal along a type's principal state axis (``traverse(state_dim="pc1")``, issue 5)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import scvi
import torch

import cplmixvi
from cplmixvi.model._traversal import _principal_axis

N_STEPS = 5
#: planted direction of type 0's state in arm 0, rotated across all three state dimensions
PLANTED = np.array([0.6, -0.48, 0.64])


def test_principal_axis_recovers_a_rotated_direction():
    rng = np.random.default_rng(0)
    t = rng.normal(size=400)
    states = 2.0 + t[:, None] * PLANTED + 0.05 * rng.normal(size=(400, 3))
    axis = _principal_axis(states)
    assert np.linalg.norm(axis) == pytest.approx(1.0)
    assert np.allclose(axis, PLANTED, atol=0.02)  # largest component (0.64) positive
    # the orientation does not depend on the cells' order or on the sign of the state
    assert np.allclose(_principal_axis(states[::-1]), axis, atol=1e-12)
    assert np.allclose(_principal_axis(4.0 - states), axis, atol=1e-12)


@pytest.fixture(scope="module")
def planted():
    """A tiny model whose encoder is replaced by planted states: type 0 lies along PLANTED."""
    adata = cplmixvi.data.simulate(n_cells=90, n_genes=40, n_types=3, n_markers=5, seed=0)
    scvi.settings.seed = 0
    cplmixvi.CplMixVI.setup_anndata(adata, layer="counts")
    model = cplmixvi.CplMixVI(adata, n_types=3, n_state=3, n_hidden=8, n_layers=1)
    model.train(max_epochs=1, accelerator="cpu", enable_progress_bar=False)
    rng = np.random.default_rng(1)
    n = adata.n_obs
    types = np.arange(n) % 3
    log_probs = np.log(np.full((2, n, 3), 0.05))
    log_probs[:, np.arange(n), types] = np.log(0.9)
    states = rng.normal(scale=0.3, size=(2, n, 3))
    t = rng.normal(size=n)
    states[0] += np.where(types[:, None] == 0, 1.0 + 3.0 * t[:, None] * PLANTED, 0.0)
    model._encode = lambda *args: (log_probs, states.astype(np.float32))
    return model, states


def test_pc1_traversal_follows_the_planted_direction(planted):
    model, states = planted
    genes = ["gene0", "gene5", "gene7"]
    trav = model.traverse(cell_type=[0, 2], state_dim="pc1", n_steps=N_STEPS, genes=genes,
                          arm=None, grid="cells")  # fmt: skip
    assert len(trav) == 2 * 2 * 1 * N_STEPS * 3  # types x arms x one axis x steps x genes
    assert set(trav["state_dim"]) == {"pc1"}
    axis = np.asarray(trav.attrs["directions"]["0"][0])
    assert np.abs(axis @ PLANTED) > 0.99 and np.allclose(axis, PLANTED, atol=0.05)
    # the state column is the quantiles of the cells' projections on the axis
    cells = states[0, np.arange(states.shape[1]) % 3 == 0].astype(np.float32)
    expected = np.quantile(cells @ axis, np.linspace(0.05, 0.95, N_STEPS))
    rows = trav[(trav["type"] == "0") & (trav["arm"] == 0) & (trav["gene"] == "gene0")]
    assert np.allclose(rows["state"], expected, atol=1e-5)
    # the decoded points are the cells' mean moved along the axis
    mean = cells.mean(axis=0)
    points = mean + (expected - mean @ axis)[:, None] * axis
    module = model.module
    s = torch.zeros(2, N_STEPS, 3)
    s[0] = torch.as_tensor(points, dtype=torch.float32)
    c = torch.zeros(2, N_STEPS, 3)
    c[..., 0] = 1.0
    with torch.inference_mode():
        gen = module.generative(s=s, c=c, library=torch.full((2, N_STEPS, 1), 1e4))
    gene0 = model.adata.var_names.get_loc("gene0")
    assert np.allclose(rows["expression"], gen["px_mean"][0, :, gene0].numpy(), rtol=1e-4)
    # deterministic
    again = model.traverse(cell_type=[0, 2], state_dim="pc1", n_steps=N_STEPS, genes=genes,
                           arm=None, grid="cells")  # fmt: skip
    pd.testing.assert_frame_equal(trav, again)
    assert trav.attrs["directions"] == again.attrs["directions"]


def test_pc1_on_the_prior_grid_and_in_the_ranking(planted):
    model, _ = planted
    trav = model.traverse(cell_type=0, state_dim="pc1", n_steps=N_STEPS, arm=0)
    axis = np.asarray(trav.attrs["directions"]["0"][0])
    module = model.module
    mean = module.prior_mean[0, 0].detach().double().numpy()
    var = np.exp(module.prior_logvar[0, 0].detach().double().numpy())
    rows = trav[trav["gene"] == "gene0"]
    assert rows["state"].iloc[N_STEPS // 2] == pytest.approx(mean @ axis, abs=1e-5)
    spread = rows["state"].iloc[-1] - rows["state"].iloc[N_STEPS // 2]
    assert spread == pytest.approx(1.6448536 * np.sqrt(var @ axis**2), rel=1e-4)
    scores = cplmixvi.tl.rank_state_genes(trav)
    assert set(scores["state_dim"]) == {"pc1"} and scores["rank"].max() == 40
    top = cplmixvi.tl.top_state_genes(scores, n_genes=4)
    assert list(top) == ["0"] and len(top["0"]) == 4
    flat = cplmixvi.tl.check_flat(trav, ["gene0"])
    assert flat["state_dim"].tolist() == ["pc1"]
    ax = cplmixvi.pl.traversal_heatmap(trav, top["0"], state_dim="pc1", show=False)[0]
    assert "principal axis" in ax.get_title()


def test_pc1_bad_input(planted):
    model, _ = planted
    with pytest.raises(ValueError, match="'pc1'"):
        model.traverse(state_dim="pc2")
    with pytest.raises(ValueError, match="an integer state_dim"):
        model.traverse(cell_type=0, state_dim="pc1", min_cells=1000)
