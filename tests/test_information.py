"""The marginal type entropy H(q(c)) and the module's marginal_entropy_weight option."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scvi import REGISTRY_KEYS

import cplmixvi
from cplmixvi.augment import GeneDropout
from cplmixvi.module import CplMixVAE
from cplmixvi.nn import information_coupling, marginal_entropy


def test_marginal_entropy_extremes_and_formula():
    k = 4
    balanced = torch.log(torch.eye(k).clamp_min(1e-30))[None]  # one cell per category
    collapsed = torch.log(torch.eye(k)[[0, 0, 0, 0]].clamp_min(1e-30))[None]
    torch.testing.assert_close(marginal_entropy(balanced), torch.tensor([math.log(k)]))
    torch.testing.assert_close(marginal_entropy(collapsed), torch.tensor([0.0]), atol=1e-6, rtol=0)
    probs = torch.softmax(torch.randn(3, 7, k, generator=torch.Generator().manual_seed(0)), -1)
    mean = probs.double().mean(1).numpy()
    expected = -(mean * np.log(mean)).sum(-1)
    np.testing.assert_allclose(marginal_entropy(probs.log()).numpy(), expected, rtol=1e-5)


def test_marginal_entropy_rejects_wrong_shape():
    with pytest.raises(ValueError, match="arms, cells, types"):
        marginal_entropy(torch.zeros(5, 3))


def _module(**kwargs) -> CplMixVAE:
    torch.manual_seed(0)
    return CplMixVAE(
        n_input=12,
        n_types=3,
        n_state=2,
        n_hidden=16,
        n_layers=1,
        gene_likelihood="bernoulli",
        augmenter=GeneDropout(0.2),
        **{"objective": "paper", **kwargs},
    )


def _loss(module, x, seed=1):
    torch.manual_seed(seed)  # same augmentation, Gumbel and state noise for every call
    _, _, out = module({REGISTRY_KEYS.X_KEY: x})
    return out


@pytest.fixture
def pixels():
    gen = torch.Generator().manual_seed(0)
    return torch.bernoulli(torch.full((40, 12), 0.3), generator=gen)


def test_weight_zero_is_the_paper_loss_and_weight_subtracts_the_entropy(pixels):
    paper, weighted = _module(), _module(marginal_entropy_weight=2.5)
    weighted.load_state_dict(paper.state_dict())
    out0, out1 = _loss(paper, pixels), _loss(weighted, pixels)
    assert "marginal_entropy" not in out0.extra_metrics  # computed only when it is used
    marginal = out1.extra_metrics["marginal_entropy"]
    assert 0 < float(marginal) <= math.log(3)
    # two arms: the term is summed over arms, the metric is their mean
    torch.testing.assert_close(out1.loss, out0.loss - 2.5 * 2 * marginal)


def test_marginal_entropy_term_has_gradient_on_the_type_head(pixels):
    module = _module(marginal_entropy_weight=1.0)
    module.train()
    torch.manual_seed(1)
    inf = module.inference(pixels)
    marginal_entropy(inf["log_probs"]).sum().backward()
    grad = module.type_head.weight.grad
    assert grad is not None and float(grad.abs().sum()) > 0
    assert module.state_head.weight.grad is None  # only q(c|x) enters the term


def test_model_passes_the_weights_and_rejects_a_negative_one(make_adata):
    adata = make_adata(n_cells=60, n_genes=20)
    cplmixvi.CplMixVI.setup_anndata(adata)
    model = cplmixvi.CplMixVI(
        adata, n_types=3, entropy_weight=-1.0, marginal_entropy_weight=4.0, objective="info"
    )
    assert model.module.entropy_weight == -1.0 and model.module.marginal_entropy_weight == 4.0
    assert model.module.objective == "info"
    assert cplmixvi.CplMixVI(adata, n_types=3).module.marginal_entropy_weight == 0.0
    with pytest.raises(ValueError, match="marginal_entropy_weight must be >= 0"):
        cplmixvi.CplMixVI(adata, n_types=3, marginal_entropy_weight=-1.0)
    with pytest.raises(ValueError, match="objective"):
        cplmixvi.CplMixVI(adata, n_types=3, objective="iic")


def _one_hot(ids, k):
    return torch.eye(k)[torch.as_tensor(ids)]


def _log_one_hot(ids, k, floor=1e-9):
    probs = torch.eye(k)[torch.as_tensor(ids)].clamp_min(floor)
    return (probs / probs.sum(-1, keepdim=True)).log()


def test_information_coupling_rewards_same_ids_confident_and_balanced():
    k = 4
    ids = torch.arange(12) % k
    agree = _log_one_hot(ids, k)
    shifted = _log_one_hot((ids + 1) % k, k)
    collapsed = _log_one_hot(torch.zeros(12, dtype=torch.long), k)
    uniform = torch.full((12, k), -math.log(k))
    info = information_coupling(torch.stack([agree, agree, shifted, collapsed, uniform]))
    assert info.shape == (10,)
    torch.testing.assert_close(info[0], torch.tensor(math.log(k)), atol=1e-4, rtol=0)
    assert float(info[1]) < 0  # agree vs shifted: same partition, other ids
    assert (info[1:] < info[0] - 0.5).all()
    assert information_coupling(agree[None]).shape == (0,)


def test_information_coupling_matches_formula():
    gen = torch.Generator().manual_seed(0)
    log_probs = torch.log_softmax(2 * torch.randn(2, 30, 3, generator=gen), -1).double()
    p, q = log_probs.exp()
    marg = (p.mean(0) + q.mean(0)) / 2
    cross = -(p * q.log()).sum(-1).mean() - (q * p.log()).sum(-1).mean()
    expected = -(marg * marg.log()).sum() - cross / 2
    torch.testing.assert_close(information_coupling(log_probs)[0], expected)


def test_info_objective_replaces_the_aitchison_term_and_has_gradient(pixels):
    paper = _module(coupling_weight=0.0)
    info = _module(objective="info", coupling_weight=3.0)
    info.load_state_dict(paper.state_dict())
    out0, out1 = _loss(paper, pixels), _loss(info, pixels)
    torch.manual_seed(1)
    paper.train()
    expected = information_coupling(paper.inference(pixels)["log_probs"]).sum()
    torch.testing.assert_close(out1.loss, out0.loss - 3.0 * expected)
    torch.testing.assert_close(out1.extra_metrics["information_coupling"], expected.detach())
    assert "information_coupling" not in out0.extra_metrics
    out1.loss.backward()
    assert float(info.type_head.weight.grad.abs().sum()) > 0
