"""Building blocks: the coupling distance, arm-batched layers and the Gumbel-softmax type sample."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from cplmixvi.module import CplMixVAE
from cplmixvi.nn import ArmBatchNorm, ArmLinear, ArmMLP, perturbed_aitchison_sq

MIN_PROB = 1e-4
MIN_SIGMA = 5e-2


def _random_simplex(n_arms, n_cells, n_types, seed=0, dtype=torch.float64):
    gen = torch.Generator().manual_seed(seed)
    logits = 2.0 * torch.randn(n_arms, n_cells, n_types, generator=gen, dtype=dtype)
    return torch.softmax(logits, dim=-1)


# ----- perturbed Aitchison distance ----------------------------------------------------------


@pytest.mark.parametrize("n_arms", [2, 3])
def test_dsigma_matches_formula(n_arms, dsigma_reference):
    probs = _random_simplex(n_arms, 7, 4, seed=n_arms)
    probs[0, 0, 1] = 0.0  # one entry below the clamp
    out = perturbed_aitchison_sq(probs, min_prob=MIN_PROB, min_sigma=MIN_SIGMA)
    expected = dsigma_reference(probs.numpy(), MIN_PROB, MIN_SIGMA)
    assert out.shape == (n_arms * (n_arms - 1) // 2, 7)
    np.testing.assert_allclose(out.numpy(), expected, rtol=1e-10, atol=1e-10)


def test_dsigma_sigma_from_given_probabilities(dsigma_reference):
    samples = _random_simplex(2, 6, 4, seed=3)
    probs = _random_simplex(2, 6, 4, seed=4)
    out = perturbed_aitchison_sq(samples, probs, min_prob=MIN_PROB, min_sigma=MIN_SIGMA)
    expected = dsigma_reference(samples.numpy(), MIN_PROB, MIN_SIGMA, spread=probs.numpy())
    np.testing.assert_allclose(out.numpy(), expected, rtol=1e-10, atol=1e-10)
    assert not np.allclose(expected, dsigma_reference(samples.numpy(), MIN_PROB, MIN_SIGMA))


def test_dsigma_pairs_are_in_triu_order(dsigma_reference):
    probs = _random_simplex(3, 5, 3, seed=1)
    out = perturbed_aitchison_sq(probs, min_prob=MIN_PROB, min_sigma=MIN_SIGMA)
    for row, (a, b) in enumerate([(0, 1), (0, 2), (1, 2)]):
        pair = perturbed_aitchison_sq(probs[[a, b]], min_prob=MIN_PROB, min_sigma=MIN_SIGMA)
        torch.testing.assert_close(out[row], pair[0])
    # symmetric in the arms
    swapped = perturbed_aitchison_sq(probs[[1, 0]], min_prob=MIN_PROB, min_sigma=MIN_SIGMA)
    torch.testing.assert_close(swapped[0], out[0])


def test_dsigma_uses_the_bounds(dsigma_reference):
    probs = _random_simplex(2, 6, 3, seed=2)
    probs[:, :, 2] = 0.0  # an empty category in both arms
    probs = probs / probs.sum(-1, keepdim=True)
    for min_prob, min_sigma in [(1e-6, 1e-2), (1e-3, 1e-1)]:
        out = perturbed_aitchison_sq(probs, min_prob=min_prob, min_sigma=min_sigma)
        expected = dsigma_reference(probs.numpy(), min_prob, min_sigma)
        np.testing.assert_allclose(out.numpy(), expected, rtol=1e-10)


def test_dsigma_single_arm_is_empty():
    out = perturbed_aitchison_sq(_random_simplex(1, 5, 3), min_prob=MIN_PROB, min_sigma=MIN_SIGMA)
    assert out.shape == (0, 5)


def test_dsigma_zero_only_for_identical_arms():
    probs = _random_simplex(1, 9, 4, seed=3)
    same = probs.expand(3, -1, -1).clone()
    out = perturbed_aitchison_sq(same, min_prob=MIN_PROB, min_sigma=MIN_SIGMA)
    assert torch.all(out == 0)
    other = same.clone()
    other[1] = _random_simplex(1, 9, 4, seed=4)[0]
    out = perturbed_aitchison_sq(other, min_prob=MIN_PROB, min_sigma=MIN_SIGMA)
    assert torch.all(out[0] > 0) and torch.all(out[2] > 0)  # pairs involving arm 1
    assert torch.all(out[1] == 0)  # arms 0 and 2 are still identical


@pytest.mark.parametrize(
    "case", ["empty_category", "identical_rows", "one_hot_collapsed", "all_mass_on_one"]
)
def test_dsigma_finite_on_collapsed_inputs(case):
    n_arms, n_cells, n_types = 3, 16, 4
    if case == "empty_category":
        probs = _random_simplex(n_arms, n_cells, n_types, seed=5)
        probs[..., 0] = 0.0
        probs = probs / probs.sum(-1, keepdim=True)
    elif case == "identical_rows":
        row = torch.tensor([0.1, 0.2, 0.3, 0.4], dtype=torch.float64)
        probs = row.expand(n_arms, n_cells, n_types).clone()
        probs[1] = torch.tensor([0.4, 0.3, 0.2, 0.1], dtype=torch.float64)
    elif case == "one_hot_collapsed":
        probs = torch.zeros(n_arms, n_cells, n_types, dtype=torch.float64)
        probs[0, :, 0] = 1.0
        probs[1, :, 1] = 1.0
        probs[2, :, 0] = 1.0
    else:  # arms agree, everything on one category: d == 0 but grads must be finite
        probs = torch.zeros(n_arms, n_cells, n_types, dtype=torch.float64)
        probs[..., 2] = 1.0
    for dtype in (torch.float64, torch.float32):
        leaf = probs.to(dtype).clone().requires_grad_(True)
        out = perturbed_aitchison_sq(leaf, min_prob=1e-6, min_sigma=1e-2)
        assert torch.isfinite(out).all()
        out.sum().backward()
        assert torch.isfinite(leaf.grad).all()
        # the same through a softmax of saturated logits (how the module produces them)
        logits = (30.0 * probs.to(dtype)).clone().requires_grad_(True)
        out = perturbed_aitchison_sq(torch.softmax(logits, -1), min_prob=1e-6, min_sigma=1e-2)
        assert torch.isfinite(out).all()
        out.sum().backward()
        assert torch.isfinite(logits.grad).all()


def test_dsigma_penalises_low_dispersion_categories():
    """Same log-probability gap, smaller minibatch spread -> larger distance (resists collapse)."""
    gen = torch.Generator().manual_seed(0)
    base = torch.softmax(torch.randn(1, 32, 3, generator=gen, dtype=torch.float64), -1)
    spread = torch.cat([base, base.roll(1, dims=1)])
    collapsed = torch.cat(
        [base.mean(1, keepdim=True).expand(1, 32, 3), base[:, :1].expand(1, 32, 3)]
    )
    d_spread = perturbed_aitchison_sq(spread, min_prob=1e-6, min_sigma=1e-2).mean()
    d_collapsed = perturbed_aitchison_sq(collapsed, min_prob=1e-6, min_sigma=1e-2).mean()
    assert d_collapsed > d_spread


# ----- arm-batched layers ---------------------------------------------------------------------


def test_arm_linear_equals_per_arm_linear():
    torch.manual_seed(0)
    layer = ArmLinear(3, 5, 4)
    x = torch.randn(3, 11, 5)
    out = layer(x)
    assert out.shape == (3, 11, 4)
    for a in range(3):
        ref = F.linear(x[a], layer.weight[a].T, layer.bias[a, 0])
        torch.testing.assert_close(out[a], ref)


def test_arm_linear_arms_are_independent():
    torch.manual_seed(0)
    layer = ArmLinear(2, 5, 4)
    x = torch.randn(2, 6, 5)
    x2 = x.clone()
    x2[1] = torch.randn(6, 5)
    torch.testing.assert_close(layer(x)[0], layer(x2)[0])
    assert not torch.allclose(layer(x)[1], layer(x2)[1])


def test_arm_linear_covariate_equals_concatenated_one_hot():
    torch.manual_seed(0)
    n_cat = 3
    layer = ArmLinear(2, 5, 4, n_cat=n_cat)
    x = torch.randn(2, 10, 5)
    cat = torch.randint(0, n_cat, (10, 1))  # scvi-tools passes (B, 1) codes
    out = layer(x, cat)
    one_hot = F.one_hot(cat[:, 0], n_cat).to(x.dtype)
    for a in range(2):
        weight = torch.cat([layer.weight[a], layer.cat_weight[a]], dim=0)  # (n_in + n_cat, n_out)
        ref = F.linear(torch.cat([x[a], one_hot], dim=-1), weight.T, layer.bias[a, 0])
        torch.testing.assert_close(out[a], ref)
    # flat codes give the same result
    torch.testing.assert_close(layer(x, cat[:, 0]), out)


def test_arm_batchnorm_equals_per_arm_batchnorm():
    torch.manual_seed(0)
    n_arms, n_feat = 3, 4
    norm = ArmBatchNorm(n_arms, n_feat)
    with torch.no_grad():
        norm.bn.weight.uniform_(0.5, 1.5)
        norm.bn.bias.uniform_(-1, 1)
    bn = norm.bn
    x = torch.randn(n_arms, 20, n_feat) * torch.tensor([1.0, 3.0, 0.5]).view(3, 1, 1)
    norm.train()
    out = norm(x)
    for a in range(n_arms):
        sl = slice(a * n_feat, (a + 1) * n_feat)
        ref = F.batch_norm(x[a], None, None, bn.weight[sl], bn.bias[sl], training=True, eps=bn.eps)
        torch.testing.assert_close(out[a], ref)
    # running statistics are kept per arm and feature and used in eval mode
    for _ in range(3):
        norm(torch.randn(n_arms, 20, n_feat) + 2.0)
    norm.eval()
    out = norm(x)
    for a in range(n_arms):
        sl = slice(a * n_feat, (a + 1) * n_feat)
        ref = F.batch_norm(
            x[a],
            bn.running_mean[sl],
            bn.running_var[sl],
            bn.weight[sl],
            bn.bias[sl],
            training=False,
            eps=bn.eps,
        )
        torch.testing.assert_close(out[a], ref)


def _per_arm_mlp(mlp: ArmMLP, x: torch.Tensor, cat, arm: int, training: bool) -> torch.Tensor:
    """Arm ``arm`` of an ArmMLP recomputed with its own slice of every weight."""
    h = x
    for linear, norm in zip(mlp.linears, mlp.norms, strict=True):
        weight, bias = linear.weight[arm], linear.bias[arm, 0]
        if linear.cat_weight is not None:
            n_cat = linear.cat_weight.shape[1]
            h = torch.cat([h, F.one_hot(cat.reshape(-1), n_cat).to(h.dtype)], dim=-1)
            weight = torch.cat([weight, linear.cat_weight[arm]], dim=0)
        h = F.linear(h, weight.T, bias)
        if isinstance(norm, ArmBatchNorm):
            bn, n_feat = norm.bn, h.shape[-1]
            sl = slice(arm * n_feat, (arm + 1) * n_feat)
            h = F.batch_norm(
                h,
                None if training else bn.running_mean[sl],
                None if training else bn.running_var[sl],
                bn.weight[sl],
                bn.bias[sl],
                training=training,
                eps=bn.eps,
            )
        h = torch.relu(h)
    return h


@pytest.mark.parametrize("batch_norm", [True, False])
@pytest.mark.parametrize("n_cat", [0, 3])
def test_arm_mlp_equals_per_arm_computation(batch_norm, n_cat):
    torch.manual_seed(0)
    n_arms = 3
    mlp = ArmMLP(n_arms, 6, 8, n_layers=2, n_cat=n_cat, dropout_rate=0.0, batch_norm=batch_norm)
    x = torch.randn(n_arms, 25, 6)
    cat = torch.randint(0, 3, (25, 1)) if n_cat else None
    for training in (True, False):
        mlp.train(training)
        out = mlp(x, cat)
        assert out.shape == (n_arms, 25, 8)
        for a in range(n_arms):
            torch.testing.assert_close(out[a], _per_arm_mlp(mlp, x[a], cat, a, training))


def test_arm_mlp_dropout_only_in_training():
    torch.manual_seed(0)
    mlp = ArmMLP(2, 6, 8, n_layers=1, dropout_rate=0.5, batch_norm=False)
    x = torch.randn(2, 50, 6)
    mlp.eval()
    torch.testing.assert_close(mlp(x), mlp(x))
    mlp.train()
    assert not torch.equal(mlp(x), mlp(x))


# ----- Gumbel-softmax type sample -------------------------------------------------------------


def _module_with_fixed_logits(logits: torch.Tensor, n_arms: int = 2) -> CplMixVAE:
    """A module whose type head ignores its input and outputs ``logits`` for every cell."""
    module = CplMixVAE(
        n_input=5,
        n_types=logits.shape[-1],
        n_arms=n_arms,
        n_hidden=8,
        n_layers=1,
        gene_likelihood="normal",
    )
    with torch.no_grad():
        module.type_head.weight.zero_()
        module.type_head.bias.copy_(logits.expand(n_arms, 1, -1))
    return module


def test_gumbel_samples_follow_softmax_at_low_temperature():
    torch.manual_seed(0)
    logits = torch.tensor([1.0, 0.0, -0.5, 0.7])
    module = _module_with_fixed_logits(logits)
    module.train()
    module.temperature.fill_(0.05)
    n_cells = 20_000
    x = torch.randn(n_cells, 5)
    with torch.no_grad():
        out = module.inference(x)
    c = out["c"]
    assert c.shape == (2, n_cells, 4)
    torch.testing.assert_close(c.sum(-1), torch.ones(2, n_cells))
    assert (c >= 0).all()
    # nearly one-hot, and not exactly (a relaxed sample)
    assert c.max(-1).values.mean() > 0.97
    assert not torch.all((c == 0) | (c == 1))
    # argmax frequencies follow softmax(logits): sd per frequency <= 0.0035 at n = 20 000
    expected = torch.softmax(logits, -1)
    for arm in range(2):
        freq = torch.bincount(c[arm].argmax(-1), minlength=4).float() / n_cells
        torch.testing.assert_close(freq, expected, atol=0.02, rtol=0)
    # the two arms draw independent samples
    assert (c[0].argmax(-1) != c[1].argmax(-1)).float().mean() > 0.3
    # the reported posterior is the softmax of the logits
    torch.testing.assert_close(out["log_probs"].exp(), expected.expand(2, n_cells, 4))


def test_gumbel_samples_are_soft_at_high_temperature():
    torch.manual_seed(0)
    module = _module_with_fixed_logits(torch.zeros(3))
    module.train()
    module.temperature.fill_(5.0)
    with torch.no_grad():
        c = module.inference(torch.randn(2_000, 5))["c"]
    assert c.max(-1).values.mean() < 0.6


def test_inference_type_is_exact_one_hot_argmax_in_eval():
    torch.manual_seed(0)
    module = CplMixVAE(
        n_input=5, n_types=4, n_arms=3, n_hidden=8, n_layers=1, gene_likelihood="normal"
    )
    module.eval()
    module.temperature.fill_(1.0)
    with torch.no_grad():
        out = module.inference(torch.randn(200, 5))
    c = out["c"]
    expected = F.one_hot(out["log_probs"].argmax(-1), 4).to(c.dtype)
    assert torch.equal(c, expected)
    assert len(torch.unique(out["log_probs"].argmax(-1))) > 1  # not a trivial constant
