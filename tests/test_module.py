"""CplMixVAE: every loss term recomputed by hand, and the augmenters."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from scvi import REGISTRY_KEYS
from torch.distributions import Bernoulli, Normal
from torch.distributions import NegativeBinomial as TorchNB

from cplmixvi.augment import BinomialThinning, GeneDropout, Identity, get_augmenter
from cplmixvi.module import CplMixVAE
from cplmixvi.train import annealed_temperature

N_CELLS, N_GENES, N_TYPES = 40, 12, 3
MIN_PROB, MIN_SIGMA = 1e-4, 5e-2


def _data(likelihood: str, seed: int = 0) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    if likelihood in ("nb", "zinb"):
        x = torch.poisson(3.0 * torch.rand(N_CELLS, N_GENES, generator=gen) + 0.5, generator=gen)
        x[:, 0] += 1.0  # every cell has counts
        return x
    if likelihood == "normal":
        return torch.randn(N_CELLS, N_GENES, generator=gen)
    return torch.bernoulli(torch.full((N_CELLS, N_GENES), 0.3), generator=gen)


def _module(likelihood="nb", n_arms=2, n_batch=0, **kwargs) -> CplMixVAE:
    defaults = {
        "n_state": 2,
        "n_hidden": 16,
        "n_layers": 1,
        "coupling_min_prob": MIN_PROB,
        "coupling_min_sigma": MIN_SIGMA,
        "coupling_weight": 1.0,
        "objective": "paper",
        "state_prior": "type",
        "augmenter": BinomialThinning(0.5) if likelihood in ("nb", "zinb") else GeneDropout(0.2),
    }
    defaults.update(kwargs)
    return CplMixVAE(
        n_input=N_GENES,
        n_types=N_TYPES,
        n_arms=n_arms,
        n_batch=n_batch,
        gene_likelihood=likelihood,
        **defaults,
    )


def _tensors(x: torch.Tensor, n_batch: int = 0) -> dict[str, torch.Tensor]:
    tensors = {REGISTRY_KEYS.X_KEY: x}
    if n_batch > 1:
        tensors[REGISTRY_KEYS.BATCH_KEY] = torch.arange(x.shape[0]).remainder(n_batch)[:, None]
    return tensors


def _forward(module, x, kl_weight=1.0, n_batch=0):
    return module(_tensors(x, n_batch), loss_kwargs={"kl_weight": kl_weight})


def _reference_nll(likelihood, module, xa, gen):
    """Independent reconstruction negative log-likelihood (A, B) from torch distributions."""
    theta = module.feature_param.exp()
    if likelihood in ("nb", "zinb"):
        mu = gen["px_mean"]
        nb = TorchNB(total_count=theta.expand_as(mu), logits=torch.log(mu) - torch.log(theta))
        log_nb = nb.log_prob(xa)
        if likelihood == "nb":
            return -log_nb.sum(-1)
        pi = gen["px_dropout"]
        log_zero = torch.log(torch.sigmoid(pi) + torch.sigmoid(-pi) * log_nb.exp())
        log_pos = F.logsigmoid(-pi) + log_nb
        return -torch.where(xa == 0, log_zero, log_pos).sum(-1)
    if likelihood == "normal":
        return -Normal(gen["px_out"], theta).log_prob(xa).sum(-1)
    return -Bernoulli(logits=gen["px_out"]).log_prob(xa).sum(-1)


def _reference_kl(q_mean, q_std, p_mean, p_std):
    return (
        torch.log(p_std / q_std) + (q_std**2 + (q_mean - p_mean) ** 2) / (2 * p_std**2) - 0.5
    ).sum(-1)


def _reference_loss(module, inf, gen, kl_weight, dsigma_reference):
    """The negative of Eq. 7 per METHOD.md, with loops over arms and pairs."""
    n_arms = module.n_arms
    rec = _reference_nll(module.gene_likelihood, module, inf["x_aug"], gen)
    kl = []
    for a in range(n_arms):
        c = inf["c"][a]
        p_mean = c @ module.prior_mean[a]
        p_std = torch.exp(0.5 * (c @ module.prior_logvar[a]))
        kl.append(_reference_kl(inf["qs_mean"][a], inf["qs_std"][a], p_mean, p_std))
    kl = torch.stack(kl)
    probs = inf["log_probs"].exp()
    entropy = -(probs * torch.log(probs)).sum(-1)
    weight = max(n_arms - 1, 1)
    per_cell = weight * (rec + kl_weight * kl - entropy).sum(0)
    coupled = inf["c"]
    coupling = torch.as_tensor(
        dsigma_reference(
            coupled.detach().numpy(),
            module.coupling_min_prob,
            module.coupling_min_sigma,
            spread=inf["log_probs"].exp().detach().numpy(),
        ),
        dtype=per_cell.dtype,
    )
    if n_arms > 1:
        per_cell = per_cell + module.coupling_weight * coupling.sum(0)
    return per_cell.mean(), rec, kl, entropy, coupling


# ----- the loss, term by term -----------------------------------------------------------------


@pytest.mark.parametrize("likelihood", ["nb", "zinb", "normal", "bernoulli"])
def test_reconstruction_matches_distributions(likelihood):
    torch.manual_seed(0)
    module = _module(likelihood)
    module.train()
    inf, gen, loss = _forward(module, _data(likelihood))
    rec = module.reconstruction_nll(inf["x_aug"], gen)
    assert rec.shape == (2, N_CELLS)
    torch.testing.assert_close(rec, _reference_nll(likelihood, module, inf["x_aug"], gen))
    (rec_loss,) = loss.reconstruction_loss.values()  # LossOutput stores it as a dict
    torch.testing.assert_close(rec_loss, rec.mean(0))
    if likelihood in ("nb", "zinb"):
        # the mean is the arm's own library size times a composition over genes
        library = inf["x_aug"].sum(-1, keepdim=True)
        torch.testing.assert_close(inf["library"], library)
        torch.testing.assert_close(gen["px_mean"].sum(-1, keepdim=True), library)


@pytest.mark.parametrize("likelihood", ["nb", "zinb"])
def test_count_reconstruction_matches_scvi_distributions(likelihood):
    from scvi.distributions import NegativeBinomial, ZeroInflatedNegativeBinomial

    torch.manual_seed(1)
    module = _module(likelihood)
    inf, gen, _ = _forward(module, _data(likelihood))
    theta = module.feature_param.exp()
    if likelihood == "nb":
        dist = NegativeBinomial(mu=gen["px_mean"], theta=theta)
    else:
        dist = ZeroInflatedNegativeBinomial(
            mu=gen["px_mean"], theta=theta, zi_logits=gen["px_dropout"]
        )
    expected = -dist.log_prob(inf["x_aug"]).sum(-1)
    torch.testing.assert_close(module.reconstruction_nll(inf["x_aug"], gen), expected)


def test_bernoulli_reconstruction_on_fractional_values():
    torch.manual_seed(0)
    module = _module("bernoulli", augmenter=Identity())
    x = torch.rand(N_CELLS, N_GENES)
    inf, gen, _ = _forward(module, x)
    p = torch.sigmoid(gen["px_out"])
    expected = -(x * torch.log(p) + (1 - x) * torch.log1p(-p)).sum(-1)
    torch.testing.assert_close(module.reconstruction_nll(inf["x_aug"], gen), expected)


@pytest.mark.parametrize("n_arms", [1, 2, 3])
@pytest.mark.parametrize("likelihood", ["nb", "zinb", "normal", "bernoulli"])
def test_total_loss_matches_hand_computation(n_arms, likelihood, dsigma_reference):
    torch.manual_seed(n_arms)
    module = _module(likelihood, n_arms=n_arms, coupling_weight=0.7)
    module.train()
    module.temperature.fill_(0.8)
    kl_weight = 0.5
    inf, gen, out = _forward(module, _data(likelihood), kl_weight=kl_weight)
    expected, rec, kl, entropy, coupling = _reference_loss(
        module, inf, gen, kl_weight, dsigma_reference
    )
    torch.testing.assert_close(out.loss, expected, rtol=1e-5, atol=1e-4)
    torch.testing.assert_close(out.kl_local["kl_state"], kl.mean(0), rtol=1e-5, atol=1e-5)
    metrics = out.extra_metrics
    torch.testing.assert_close(metrics["reconstruction"], rec.mean(), rtol=1e-5, atol=1e-4)
    torch.testing.assert_close(metrics["kl_state"], kl.mean(), rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(metrics["type_entropy"], entropy.mean(), rtol=1e-5, atol=1e-6)
    assert float(metrics["temperature"]) == pytest.approx(0.8)
    if n_arms == 1:
        assert "coupling" not in metrics
        assert float(metrics["arm_agreement"]) == 1.0
    else:
        torch.testing.assert_close(metrics["coupling"], coupling.mean(), rtol=1e-4, atol=1e-4)
        types = inf["log_probs"].argmax(-1)
        pairs = [(a, b) for a in range(n_arms) for b in range(a + 1, n_arms)]
        agreement = np.mean([(types[a] == types[b]).float().mean().item() for a, b in pairs])
        assert float(metrics["arm_agreement"]) == pytest.approx(agreement)


def test_coupling_term_uses_samples_with_sigma_of_the_posterior(dsigma_reference):
    torch.manual_seed(0)
    module = _module("nb", n_arms=3)
    module.train()
    inf, _, out = _forward(module, _data("nb"))
    probs = inf["log_probs"].exp().detach().numpy()
    coupled = inf["c"].detach().numpy()
    expected = dsigma_reference(coupled, MIN_PROB, MIN_SIGMA, spread=probs).mean()
    assert float(out.extra_metrics["coupling"]) == pytest.approx(expected, rel=1e-4)


def _loss_parts(module, x, kl_weight=1.0):
    """The loss recomputed on fixed outputs, for several coupling weights."""
    inf, gen, _ = _forward(module, x, kl_weight)
    losses = {}
    for lam in (0.0, 1.0, 2.5):
        module.coupling_weight = lam
        losses[lam] = module.loss(_tensors(x), inf, gen, kl_weight=kl_weight)
    return losses


@pytest.mark.parametrize("n_arms", [2, 3])
def test_coupling_is_weighted_by_lambda(n_arms):
    torch.manual_seed(0)
    module = _module("nb", n_arms=n_arms)
    losses = _loss_parts(module, _data("nb"))
    n_pairs = n_arms * (n_arms - 1) // 2
    coupling_per_cell = float(losses[1.0].extra_metrics["coupling"]) * n_pairs
    assert coupling_per_cell > 0
    for lam in (1.0, 2.5):
        diff = (losses[lam].loss - losses[0.0].loss).item()
        assert diff == pytest.approx(lam * coupling_per_cell, rel=1e-4)


def test_single_arm_has_no_coupling():
    torch.manual_seed(0)
    module = _module("nb", n_arms=1, augmenter=Identity())
    losses = _loss_parts(module, _data("nb"))
    assert float(losses[0.0].loss) == float(losses[2.5].loss)
    assert "coupling" not in losses[1.0].extra_metrics


@pytest.mark.parametrize("n_arms", [1, 2, 3, 4])
def test_elbo_terms_weighted_by_arms_minus_one(n_arms, dsigma_reference):
    """Loss = max(A-1, 1) * sum_a (rec + KL - H) + lambda * coupling."""
    torch.manual_seed(0)
    module = _module("normal", n_arms=n_arms, coupling_weight=0.0)
    inf, gen, out = _forward(module, _data("normal"))
    _, rec, kl, entropy, _ = _reference_loss(module, inf, gen, 1.0, dsigma_reference)
    unweighted = (rec + kl - entropy).sum(0).mean()
    assert float(out.loss) == pytest.approx(max(n_arms - 1, 1) * float(unweighted), rel=1e-5)


def test_kl_with_standard_normal_prior():
    torch.manual_seed(0)
    module = _module("nb", state_prior="normal")
    assert not module.prior_mean.requires_grad and not module.prior_logvar.requires_grad
    assert torch.all(module.prior_mean == 0) and torch.all(module.prior_logvar == 0)
    inf, _, out = _forward(module, _data("nb"))
    mu, sd = inf["qs_mean"], inf["qs_std"]
    expected = 0.5 * (mu**2 + sd**2 - 1 - 2 * torch.log(sd)).sum(-1)
    torch.testing.assert_close(out.kl_local["kl_state"], expected.mean(0))
    out.loss.backward()
    assert module.prior_mean.grad is None


def test_kl_with_learned_type_prior_depends_on_type():
    torch.manual_seed(0)
    module = _module("nb", state_prior="type")
    assert module.prior_mean.requires_grad and module.prior_logvar.requires_grad
    with torch.no_grad():
        module.prior_mean.copy_(torch.randn_like(module.prior_mean))
        module.prior_logvar.copy_(0.5 * torch.randn_like(module.prior_logvar))
    one_hot = F.one_hot(torch.arange(N_TYPES), N_TYPES).float().expand(2, -1, -1)
    mean, std = module.state_prior_params(one_hot)
    torch.testing.assert_close(mean, module.prior_mean)
    torch.testing.assert_close(std, torch.exp(0.5 * module.prior_logvar))
    module.eval()
    inf, _, out = _forward(module, _data("nb"))
    c = inf["c"]
    types = c.argmax(-1)
    p_mean = torch.stack([module.prior_mean[a][types[a]] for a in range(2)])
    p_std = torch.stack([torch.exp(0.5 * module.prior_logvar[a][types[a]]) for a in range(2)])
    expected = _reference_kl(inf["qs_mean"], inf["qs_std"], p_mean, p_std)
    torch.testing.assert_close(out.kl_local["kl_state"], expected.mean(0))
    out.loss.backward()
    assert torch.isfinite(module.prior_mean.grad).all() and module.prior_mean.grad.abs().sum() > 0


@pytest.mark.parametrize("likelihood", ["nb", "zinb", "normal", "bernoulli"])
@pytest.mark.parametrize("n_arms", [1, 3])
def test_loss_and_gradients_finite(likelihood, n_arms):
    torch.manual_seed(0)
    module = _module(likelihood, n_arms=n_arms, n_batch=3)
    module.train()
    module.temperature.fill_(0.3)
    _, _, out = _forward(module, _data(likelihood), n_batch=3)
    assert torch.isfinite(out.loss)
    out.loss.backward()
    unused = {"feature_param"} if likelihood == "bernoulli" else set()  # no dispersion/scale
    for name, param in module.named_parameters():
        if param.requires_grad and name not in unused:
            assert param.grad is not None, name
            assert torch.isfinite(param.grad).all(), name


def test_loss_finite_when_arms_collapse():
    """Every arm puts every cell in one category: the bounded coupling keeps the loss finite."""
    torch.manual_seed(0)
    module = _module("nb", n_arms=3)
    with torch.no_grad():
        module.type_head.weight.zero_()
        module.type_head.bias.zero_()
        module.type_head.bias[:, 0, 0] = 50.0
        module.type_head.bias[1, 0, 0] = 0.0
        module.type_head.bias[1, 0, 2] = 50.0
    module.train()
    module.temperature.fill_(0.05)
    _, _, out = _forward(module, _data("nb"))
    assert torch.isfinite(out.loss)
    assert float(out.extra_metrics["coupling"]) > 0
    out.loss.backward()
    assert all(torch.isfinite(p.grad).all() for p in module.parameters() if p.grad is not None)


def test_extra_metrics_are_detached_scalars():
    torch.manual_seed(0)
    module = _module("nb", n_arms=2)
    _, _, out = _forward(module, _data("nb"))
    expected = {
        "reconstruction",
        "kl_state",
        "type_entropy",
        "coupling",
        "arm_agreement",
        "temperature",
    }
    assert expected <= set(out.extra_metrics)
    for name, value in out.extra_metrics.items():
        value = torch.as_tensor(value)
        assert value.numel() == 1, name
        assert not value.requires_grad, name


# ----- augmenters -----------------------------------------------------------------------------


def _counts(seed=0):
    gen = torch.Generator().manual_seed(seed)
    return torch.poisson(torch.full((30, 20), 6.0), generator=gen)


def test_thinning_properties():
    torch.manual_seed(0)
    x = _counts()
    copies = BinomialThinning(strength=0.6)(x, 3)
    assert copies.shape == (3, 30, 20)
    assert torch.all(copies <= x) and torch.all(copies >= 0)
    assert torch.equal(copies, copies.round())
    assert not torch.equal(copies[0], copies[1]) and not torch.equal(copies[1], copies[2])
    # per-cell keep rates lie in [1 - strength, 1] (up to binomial noise)
    ratio = copies.sum(-1) / x.sum(-1)
    assert ratio.min() > 0.3 and ratio.max() <= 1.0
    assert 0.6 < ratio.mean() < 0.8  # E[p] = 0.7


def test_thinning_strength_zero_is_identity():
    x = _counts()
    copies = BinomialThinning(strength=0.0)(x, 2)
    assert copies.shape == (2, 30, 20)
    assert torch.equal(copies[0], x) and torch.equal(copies[1], x)


@pytest.mark.parametrize("strength", [-0.1, 1.0, 1.5])
def test_thinning_rejects_bad_strength(strength):
    with pytest.raises(ValueError, match="strength"):
        BinomialThinning(strength=strength)


def test_gene_dropout_properties():
    torch.manual_seed(0)
    x = _counts() + 1.0
    copies = GeneDropout(rate=0.25)(x, 2)
    assert copies.shape == (2, 30, 20)
    kept = copies != 0
    assert torch.equal(copies[kept], x.expand(2, -1, -1)[kept])
    assert (~kept).float().mean().item() == pytest.approx(0.25, abs=0.05)
    assert not torch.equal(copies[0], copies[1])
    assert torch.equal(GeneDropout(rate=0.0)(x, 2)[1], x)
    with pytest.raises(ValueError, match="rate"):
        GeneDropout(rate=1.0)


def test_identity_augmenter():
    x = _counts()
    copies = Identity()(x, 3)
    assert copies.shape == (3, 30, 20)
    assert all(torch.equal(copies[a], x) for a in range(3))


def test_get_augmenter_resolution():
    for likelihood in ("nb", "zinb"):  # thinning + dropout: the best on MOp (issue 3)
        auto = get_augmenter("auto", likelihood, 2).augmenters
        assert [type(a) for a in auto] == [BinomialThinning, GeneDropout]
    assert isinstance(get_augmenter("auto", "normal", 2), GeneDropout)
    assert isinstance(get_augmenter("auto", "nb", 1), Identity)
    assert isinstance(get_augmenter(None, "nb", 2), Identity)
    assert isinstance(get_augmenter("none", "nb", 2), Identity)
    assert isinstance(get_augmenter("dropout", "nb", 2), GeneDropout)
    custom = GeneDropout(0.3)
    assert get_augmenter(custom, "normal", 2) is custom
    with pytest.raises(ValueError, match="thinning"):
        get_augmenter("thinning", "normal", 2)
    with pytest.raises(ValueError, match="Unknown augmentation"):
        get_augmenter("rotate", "nb", 2)


def test_augmentation_only_in_training_mode():
    torch.manual_seed(0)
    module = _module("nb", n_arms=3, augmenter=BinomialThinning(0.5))
    x = _data("nb")
    module.train()
    xa = module.inference(x)["x_aug"]
    assert xa.shape == (3, N_CELLS, N_GENES)
    assert not torch.equal(xa[0], x) and not torch.equal(xa[0], xa[1])
    assert torch.all(xa <= x)
    module.eval()
    with torch.no_grad():
        out = module.inference(x)
    assert all(torch.equal(out["x_aug"][a], x) for a in range(3))
    torch.testing.assert_close(out["library"], x.sum(-1, keepdim=True).expand(3, -1, -1))


# ----- temperature schedule -------------------------------------------------------------------


def test_annealed_temperature_schedule():
    temps = [annealed_temperature(e, 5, 2.0, 0.5) for e in range(5)]
    assert temps[0] == pytest.approx(2.0) and temps[-1] == pytest.approx(0.5)
    assert all(a > b for a, b in zip(temps[:-1], temps[1:], strict=True))
    # exponential: constant ratio between epochs
    ratios = np.array(temps[1:]) / np.array(temps[:-1])
    np.testing.assert_allclose(ratios, ratios[0])
    assert annealed_temperature(3, 1, 2.0, 0.5) == 0.5
    assert annealed_temperature(9, 5, 2.0, 0.5) == pytest.approx(0.5)


def test_log_normalise_matches_scanpy():
    import anndata as ad
    import scanpy as sc

    from cplmixvi.nn import log_normalise

    x = _data("nb")
    x[3] = 0.0  # a cell without counts stays at zero instead of dividing by zero
    adata = ad.AnnData(x.numpy().copy())
    sc.pp.normalize_total(adata, target_sum=1e4)
    sc.pp.log1p(adata)
    np.testing.assert_allclose(log_normalise(x).numpy(), adata.X, rtol=1e-5, atol=1e-6)
    assert torch.equal(log_normalise(x)[3], torch.zeros(N_GENES))


def test_count_encoder_input_is_depth_invariant():
    torch.manual_seed(0)
    module = _module("nb").eval()
    x = _data("nb")
    log_q = module.inference(x)["log_probs"]
    # three times the sequencing depth: the same profile, the same type posterior
    torch.testing.assert_close(module.inference(3 * x)["log_probs"], log_q)


def test_models_saved_before_the_normalised_input_keep_log1p_of_raw_counts():
    torch.manual_seed(0)
    module = _module("nb").eval()
    x = _data("nb")
    state = module.state_dict()
    del state["library_normalised"]  # as in a state dict saved by 0.1.0
    old = _module("nb").eval()
    old.load_state_dict(state)
    assert not bool(old.library_normalised)
    hidden = old.encoder(torch.log1p(x).expand(2, *x.shape), None)
    torch.testing.assert_close(old.inference(x)["log_probs"], old.type_head(hidden).log_softmax(-1))
    assert not torch.allclose(old.inference(x)["log_probs"], module.inference(x)["log_probs"])
    # and a state dict of this version round-trips with the flag on
    module.load_state_dict(module.state_dict())
    assert bool(module.library_normalised)


def test_separate_state_encoder_reads_log1p_of_raw_counts():
    torch.manual_seed(0)
    module = _module("nb", state_encoder="separate").eval()
    x = _data("nb")
    out = module.inference(x, deterministic=True)
    hidden = module.state_features(torch.log1p(x).expand(2, *x.shape), None)
    state = module.state_head(torch.cat([hidden, out["c"]], dim=-1))
    torch.testing.assert_close(out["qs_mean"], state.chunk(2, dim=-1)[0])
    # the types stay depth-invariant
    torch.testing.assert_close(module.inference(3 * x)["log_probs"], out["log_probs"])
