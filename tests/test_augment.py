"""Augmenters: shapes, dtypes, sparsity, counts, strength 0, save/load, the generative augmenter."""

from __future__ import annotations

import numpy as np
import pytest
import scvi
import torch

from cplmixvi import CplMixVI, GenerativeAugmenter
from cplmixvi.augment import (
    Augmenter,
    BinomialThinning,
    Compose,
    GeneDropout,
    Identity,
    LatentNoiseAugmenter,
    RandomAffine,
    get_augmenter,
)
from cplmixvi.module import GenerativeAugmenterModule


def _counts(n_cells: int = 40, n_genes: int = 30, seed: int = 0) -> torch.Tensor:
    """Poisson counts with many zeros."""
    gen = torch.Generator().manual_seed(seed)
    rates = torch.rand(n_cells, n_genes, generator=gen) * 6.0
    return torch.poisson(rates, generator=gen)


def _images(n: int = 8) -> torch.Tensor:
    """``n`` 28 x 28 images with a bright square in the middle, as rows of 784 pixels."""
    img = torch.zeros(n, 28, 28)
    img[:, 10:18, 11:17] = 1.0
    return img.reshape(n, 784)


def _module(n_genes: int = 30) -> GenerativeAugmenterModule:
    torch.manual_seed(0)
    return GenerativeAugmenterModule(n_genes, n_latent=4, n_hidden=16, dropout_rate=0.0)


COUNT_AUGMENTERS = {
    "thinning": lambda: BinomialThinning(0.5),
    "dropout": lambda: GeneDropout(0.3),
    "compose": lambda: Compose([BinomialThinning(0.5), GeneDropout(0.3)]),
    "generative": lambda: LatentNoiseAugmenter(_module(), strength=1.0),
}


@pytest.mark.parametrize("name", list(COUNT_AUGMENTERS))
def test_count_augmenters_keep_shape_dtype_and_integers(name):
    torch.manual_seed(0)
    x = _counts()
    copies = COUNT_AUGMENTERS[name]()(x, 3)
    assert copies.shape == (3, *x.shape)
    assert copies.dtype == x.dtype
    assert torch.all(copies >= 0) and torch.equal(copies, copies.round())
    assert not torch.equal(copies[0], copies[1])


@pytest.mark.parametrize("name", ["thinning", "dropout", "compose"])
def test_count_augmenters_keep_zeros_and_never_add(name):
    torch.manual_seed(1)
    x = _counts()
    assert (x == 0).float().mean() > 0.1
    copies = COUNT_AUGMENTERS[name]()(x, 2)
    assert torch.all(copies[:, x == 0] == 0)
    assert torch.all(copies <= x)


def test_compose_applies_every_part_in_order():
    torch.manual_seed(0)
    x = _counts(200, 50) + 5.0
    copies = Compose([BinomialThinning(0.6), GeneDropout(0.5)])(x, 2)
    zero_frac = (copies == 0).float().mean().item()
    assert zero_frac == pytest.approx(0.5, abs=0.05)  # dropout; thinning to 0 is rare at x >= 5
    kept = copies != 0
    assert (copies[kept].sum() / x.expand(2, -1, -1)[kept].sum()).item() == pytest.approx(
        0.7, abs=0.05
    )  # E[keep] of thinning
    assert Compose([BinomialThinning(0.6), GeneDropout(0.1)]).requires_counts
    assert not Compose([GeneDropout(0.1), RandomAffine()]).preserves_counts


@pytest.mark.parametrize(
    "augmenter",
    [
        BinomialThinning(0.0),
        GeneDropout(0.0),
        RandomAffine(strength=0.0),
        Compose([BinomialThinning(0.0), GeneDropout(0.0)]),
        LatentNoiseAugmenter(_module(784), strength=0.0),
        Identity(),
    ],
    ids=repr,
)
def test_strength_zero_is_identity(augmenter):
    x = _images() * 3.0
    copies = augmenter(x, 2)
    assert copies.shape == (2, *x.shape)
    assert torch.equal(copies[0], x) and torch.equal(copies[1], x)


def test_random_affine_moves_pixels_but_keeps_the_digit():
    torch.manual_seed(0)
    x = _images(16)
    copies = RandomAffine(rotation=20, scale=0.1, translation=0.1)(x, 2)
    assert copies.shape == (2, 16, 784) and copies.dtype == x.dtype
    assert copies.min() >= 0 and copies.max() <= 1  # bilinear resampling of [0, 1] pixels
    assert not torch.equal(copies[0], copies[1])
    assert (copies - x).abs().sum(-1).min() > 1.0  # every copy is moved
    # small transforms keep the ink (up to the zoom and the resampling)
    ink = copies.sum(-1) / x.sum(-1)
    assert ink.min() > 0.7 and ink.max() < 1.3
    # the far corner of the image stays empty
    corner = copies.reshape(2, 16, 28, 28)[..., :3, :3]
    assert torch.all(corner == 0)


def test_random_affine_pure_translation_is_a_shift():
    torch.manual_seed(0)
    x = _images(4)
    aug = RandomAffine(rotation=0.0, scale=0.0, translation=0.1)
    out = aug(x, 1)[0].reshape(4, 28, 28)
    rows = torch.arange(28.0)
    centre = (out.sum(-1) * rows).sum(-1) / out.sum((-1, -2))
    assert torch.all((centre - 13.5).abs() <= 0.1 * 28 + 0.5)  # shifted by at most 10 %
    assert (centre - 13.5).abs().max() > 0.2


def test_random_affine_checks_shapes():
    with pytest.raises(ValueError, match="image_shape"):
        RandomAffine(image_shape=(28, 28))(torch.zeros(3, 100), 2)
    with pytest.raises(ValueError, match="scale"):
        RandomAffine(scale=1.5)
    out = RandomAffine(image_shape=(3, 8, 8))(torch.rand(5, 192), 2)
    assert out.shape == (2, 5, 192)


def test_get_augmenter_lists_and_names():
    aug = get_augmenter(["thinning", GeneDropout(0.2)], "nb", 2)
    assert isinstance(aug, Compose) and isinstance(aug.augmenters[0], BinomialThinning)
    assert aug.augmenters[1].strength == 0.2
    aug = get_augmenter("thinning+dropout", "nb", 2)
    assert [type(a) for a in aug.augmenters] == [BinomialThinning, GeneDropout]
    assert isinstance(get_augmenter("affine", "bernoulli", 2), RandomAffine)
    with pytest.raises(ValueError, match="integer counts"):
        get_augmenter("affine", "nb", 2)
    with pytest.raises(ValueError, match="needs counts"):
        get_augmenter(LatentNoiseAugmenter(_module()), "normal", 2)
    with pytest.raises(TypeError, match="Augmenter"):
        Compose(["thinning"])


def test_generative_loss_terms_all_have_gradients():
    torch.manual_seed(0)
    module = _module()
    x = _counts(16, 30) + 1.0
    tensors = {scvi.REGISTRY_KEYS.X_KEY: x}
    inf, gen = module.inference(x), None
    gen = module.generative(inf["z"], inf["library"])
    terms = module.loss_terms(tensors, inf, gen)
    assert set(terms) == {"reconstruction", "kl", "adversarial", "latent"}
    groups = {
        "encoder": list(module.encoder.parameters()) + list(module.z_head.parameters()),
        "decoder": list(module.decoder.parameters()) + list(module.px_head.parameters()),
        "discriminator": list(module.discriminator.parameters()),
    }
    # which networks each term must train
    expected = {
        "reconstruction": ["encoder", "decoder"],
        "kl": ["encoder"],
        "adversarial": ["encoder", "decoder"],
        "latent": ["encoder", "decoder"],
    }
    for name, term in terms.items():
        assert term.shape == (16,) and torch.isfinite(term).all(), name
        for group in expected[name]:
            grads = torch.autograd.grad(
                term.mean(), groups[group], retain_graph=True, allow_unused=True
            )
            norm = sum(g.abs().sum() for g in grads if g is not None)
            assert norm > 0, f"{name} has no gradient on the {group}"
    # theta is trained by the reconstruction and, through the relaxed sample, the adversarial term
    assert (
        torch.autograd.grad(terms["adversarial"].mean(), module.log_theta, retain_graph=True)[0]
        .abs()
        .sum()
        > 0
    )
    d_loss = module.discriminator_loss(x, inf)
    grads = torch.autograd.grad(d_loss, groups["discriminator"])
    assert sum(g.abs().sum() for g in grads) > 0
    # the discriminator step must not train the generator
    assert not any(p.requires_grad and p.grad is not None for p in module.encoder.parameters())
    out = module.loss(tensors, inf, gen)
    assert torch.isfinite(out.loss) and set(out.extra_metrics) == set(terms)


def test_generative_samples_are_counts_at_the_cells_library():
    torch.manual_seed(0)
    module = _module()
    x = _counts(64, 30) + 2.0
    for distribution in ("poisson", "nb"):
        out = module.sample_counts(x, strength=1.0, distribution=distribution)
        assert out.shape == x.shape and torch.equal(out, out.round()) and out.min() >= 0
        ratio = out.sum() / x.sum()
        assert 0.8 < ratio.item() < 1.2
    with pytest.raises(ValueError, match="genes"):
        LatentNoiseAugmenter(module)(torch.ones(3, 7), 2)


def test_augmenter_save_load(tmp_path):
    module = _module()
    for augmenter in [RandomAffine(0.5, rotation=10), LatentNoiseAugmenter(module, 0.7)]:
        augmenter.save(tmp_path / "aug.pt")
        loaded = Augmenter.load(tmp_path / "aug.pt")
        assert type(loaded) is type(augmenter) and loaded.strength == augmenter.strength
        x = _counts(10, 784) if isinstance(augmenter, RandomAffine) else _counts()
        torch.manual_seed(3)
        first = augmenter(x, 2)
        torch.manual_seed(3)
        assert torch.equal(loaded(x, 2), first)
    torch.save({"not": "an augmenter"}, tmp_path / "other.pt")
    with pytest.raises(TypeError, match="not an Augmenter"):
        Augmenter.load(tmp_path / "other.pt")


def test_generative_augmenter_fit_save_load_and_use(make_adata, tmp_path):
    adata = make_adata(n_cells=200, n_genes=30)
    scvi.settings.seed = 0
    GenerativeAugmenter.setup_anndata(adata, layer="counts")
    gen = GenerativeAugmenter(adata, n_latent=4, n_hidden=32)
    gen.train(max_epochs=4, accelerator="cpu", enable_progress_bar=False)
    history = gen.history
    for key in ("reconstruction_train", "kl_train", "adversarial_train", "latent_train"):
        assert np.isfinite(history[key].to_numpy(dtype=float)).all(), key
    assert history["discriminator_train"].iloc[-1, 0] > 0
    # reconstruction improves over training
    assert history["reconstruction_train"].iloc[-1, 0] < history["reconstruction_train"].iloc[0, 0]
    samples = gen.sample()
    assert samples.shape == (200, 30) and np.array_equal(samples, np.round(samples))

    gen.save(tmp_path / "gen", overwrite=True)
    loaded = GenerativeAugmenter.load(tmp_path / "gen", adata)
    torch.manual_seed(5)
    first = gen.sample(indices=np.arange(20))
    torch.manual_seed(5)
    np.testing.assert_array_equal(loaded.sample(indices=np.arange(20)), first)

    # used, frozen, as the augmentation of a CplMixVI
    CplMixVI.setup_anndata(adata, layer="counts")
    model = CplMixVI(adata, n_types=3, n_hidden=16, augmentation=loaded)
    assert isinstance(model.module.augmenter, LatentNoiseAugmenter)
    before = [p.clone() for p in model.module.augmenter.module.parameters()]
    model.train(max_epochs=2, accelerator="cpu", enable_progress_bar=False)
    after = list(model.module.augmenter.module.parameters())
    assert all(torch.equal(a, b) for a, b in zip(before, after, strict=True))
    assert not any(p.requires_grad for p in after)
    assert not any(p is q for p in after for q in model.module.parameters())
    model.save(tmp_path / "model", overwrite=True)
    reloaded = CplMixVI.load(tmp_path / "model", adata)
    assert isinstance(reloaded.module.augmenter, LatentNoiseAugmenter)


def test_generative_augmenter_moved_with_clear_error_and_old_pickles_resolve():
    import pickle

    import cplmixvi.augment

    with pytest.raises(AttributeError, match="moved to cplmixvi.GenerativeAugmenter"):
        cplmixvi.augment.GenerativeAugmenter  # noqa: B018
    # models saved before the move pickled the networks under their old path
    old = b"ccplmixvi.augment._generative_module\nGenerativeAugmenterModule\n."
    assert pickle.loads(old) is GenerativeAugmenterModule


def test_generative_augmenter_rejects_non_counts(make_adata):
    adata = make_adata(n_cells=50, n_genes=10)
    adata.X = adata.X * 0.5 + 0.25
    GenerativeAugmenter.setup_anndata(adata)
    with pytest.raises(ValueError, match="raw counts"):
        GenerativeAugmenter(adata)
    with pytest.raises(KeyError, match="layer"):
        GenerativeAugmenter.setup_anndata(adata, layer="missing")


class _CountingThinning(BinomialThinning):
    calls = 0

    def augment(self, x):
        self.calls += 1
        return super().augment(x)


def test_train_takes_the_augmentation(make_adata):
    adata = make_adata(n_cells=120, n_genes=20)
    CplMixVI.setup_anndata(adata, layer="counts")
    model = CplMixVI(adata, n_types=3, n_hidden=16, augmentation="dropout")
    assert isinstance(model.module.augmenter, GeneDropout)
    model.train(max_epochs=1, accelerator="cpu", enable_progress_bar=False)
    assert isinstance(model.module.augmenter, GeneDropout)  # None keeps the current one
    counter = _CountingThinning(0.3)
    model.train(
        max_epochs=1,
        accelerator="cpu",
        enable_progress_bar=False,
        augmentation=[counter, "dropout"],
    )
    assert isinstance(model.module.augmenter, Compose)
    assert counter.calls >= 1  # a second fit trains in training mode, with the new augmenter
    with pytest.raises(ValueError, match="integer counts"):
        model.train(max_epochs=1, augmentation="affine")
