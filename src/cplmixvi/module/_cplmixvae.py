"""CplMixVAE: A coupled mixture VAE arms computed as one batched pass (paper Eq. 3 and 7)."""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F
from scvi import REGISTRY_KEYS
from scvi.distributions import NegativeBinomial, ZeroInflatedNegativeBinomial
from scvi.module.base import BaseModuleClass, LossOutput, auto_move_data
from torch import nn
from torch.distributions import Normal

from cplmixvi.augment import Augmenter, Identity
from cplmixvi.module._categories import TypeCategoriesMixin
from cplmixvi.module._objectives import OBJECTIVES
from cplmixvi.nn import (
    ArmLinear,
    ArmMLP,
    gaussian_nll,
    gumbel_softmax,
    log_normalise,
    marginal_entropy,
    normal_kl,
)

Likelihood = Literal["nb", "zinb", "normal", "bernoulli"]
COUNT_LIKELIHOODS = ("nb", "zinb")


class CplMixVAE(TypeCategoriesMixin, BaseModuleClass):
    """Coupled mixture variational autoencoder with ``n_arms`` arms.

    Each arm has an encoder ``h = f(x)``, a categorical head ``q(c|x) = softmax(W h)``, a
    Gumbel-softmax relaxed type sample (argmax at inference), a state posterior
    ``q(s|x, c)`` conditioned on that sample, a type-dependent prior ``p(s|c)`` and a decoder
    ``p(x|s, c)``. All arms are computed as one batched pass over a leading arm dimension.

    Parameters
    ----------
    n_input
        Number of features (genes or pixels).
    n_types
        Number of categories ``K``.
    n_state
        Dimensions of the continuous state ``s``.
    n_arms
        Number of arms ``A`` (1 is the single-VAE baseline without coupling).
    n_batch
        Number of batches (0 or 1 for none); injected into encoder and decoder.
    n_hidden
        Width of hidden layers.
    n_layers
        Hidden layers of the encoder and of the decoder.
    dropout_rate
        Dropout in the encoders (with ``objective="consensus"`` while pretraining only).
    gene_likelihood
        ``"nb"``, ``"zinb"`` (raw counts with library size), ``"normal"`` (e.g. log-normalised
        expression, the paper's choice) or ``"bernoulli"`` (pixels in ``[0, 1]``).
    state_prior
        ``"type"`` learns ``p(s|c) = N(m_c, v_c)``; ``"normal"`` uses ``N(0, I)`` for every type.
    coupling_weight
        ``lambda`` of Eq. 7.
    entropy_weight
        Weight of the entropy ``H(c|x)`` (1 in Eq. 7; 0 drops the confidence penalty).
    augmenter
        Produces each arm's copy of a training minibatch; not applied at inference.
    coupling_min_prob, coupling_min_sigma
        Bounds of the coupling distance (see :func:`cplmixvi.nn.perturbed_aitchison_sq`).
    state_encoder
        ``"shared"``: ``q(s|x, c)`` reads the hidden layer of the type encoder; ``"separate"``:
        the state has its own encoder network (same shape), which the coupling's gradients do
        not reach.
    marginal_entropy_weight
        Weight ``gamma`` of the entropy of each arm's minibatch aggregate posterior ``H(q(c))``
        (:func:`cplmixvi.nn.marginal_entropy`), subtracted from the loss: it rewards using every
        category (0, the default, is Eq. 7).
    objective
        ``"consensus"`` (default): after pretraining, every arm is trained towards the arms' common
        sharpened type target, ``KL(p || q_a)``, and the ELBO no longer reaches the type heads (the
        type sample enters the state posterior and decoder detached); ``"paper"``: Eq. 7, the
        entropy bonus and the perturbed Aitchison distance between the arms' relaxed samples
        (``sigma`` from the dispersion of ``q(c|x)``, as in the reference code); ``"info"``: the
        information coupling (:func:`cplmixvi.nn.information_coupling`) of the MNIST recipe. See
        :meth:`loss`.
    """

    def __init__(
        self,
        n_input: int,
        n_types: int,
        n_state: int = 2,
        n_arms: int = 2,
        n_batch: int = 0,
        n_hidden: int = 128,
        n_layers: int = 2,
        dropout_rate: float = 0.1,
        gene_likelihood: Likelihood = "nb",
        state_prior: Literal["type", "normal"] = "type",
        coupling_weight: float = 1.0,
        entropy_weight: float = 1.0,
        augmenter: Augmenter | None = None,
        coupling_min_prob: float = 1e-2,
        coupling_min_sigma: float = 1e-2,
        state_encoder: Literal["shared", "separate"] = "shared",
        marginal_entropy_weight: float = 0.0,
        objective: Literal["consensus", "paper", "info"] = "consensus",
    ):
        super().__init__()
        self.n_types, self.n_state, self.n_arms = n_types, n_state, n_arms
        self.gene_likelihood = gene_likelihood
        self.state_prior = state_prior
        self.coupling_weight = coupling_weight
        self.entropy_weight = entropy_weight
        self.marginal_entropy_weight = marginal_entropy_weight
        self.augmenter = augmenter if augmenter is not None else Identity()
        self.coupling_min_prob, self.coupling_min_sigma = coupling_min_prob, coupling_min_sigma
        self.state_encoder = state_encoder
        self.objective = objective
        # True while the arms are pretrained as autoencoders (deterministic soft type code,
        # no type terms); set by the training plan
        self.pretraining = False
        self.register_buffer("temperature", torch.tensor(1.0))
        # categories still in use (False once pruned); saved in the state dict
        self.register_buffer("type_mask", torch.ones(n_types, dtype=torch.bool))
        # type encoder input: counts per 10^4 (False: raw counts, as in models of 0.1.0)
        self.register_buffer("library_normalised", torch.tensor(True))
        # Python-bool mirrors of ``not type_mask.all()`` and ``library_normalised``: no host read
        # per step, and torch.compile guards on them instead of breaking its graph
        self._pruned, self._library_normalised = False, True
        n_cat = n_batch if n_batch > 1 else 0

        self.encoder = ArmMLP(n_arms, n_input, n_hidden, n_layers, n_cat, dropout_rate)
        self.type_head = ArmLinear(n_arms, n_hidden, n_types)
        self.state_head = ArmLinear(n_arms, n_hidden + n_types, 2 * n_state)
        if state_encoder == "separate":
            self.state_features = ArmMLP(n_arms, n_input, n_hidden, n_layers, n_cat, dropout_rate)
        self.decoder = ArmMLP(n_arms, n_state + n_types, n_hidden, n_layers, n_cat, 0.0)
        self.output_head = ArmLinear(n_arms, n_hidden, n_input)
        if gene_likelihood == "zinb":
            self.dropout_head = ArmLinear(n_arms, n_hidden, n_input)
        # per-arm, per-feature log dispersion (NB/ZINB) or log standard deviation (normal)
        self.feature_param = nn.Parameter(
            torch.zeros(n_arms, 1, n_input), requires_grad=gene_likelihood != "bernoulli"
        )
        self.prior_mean = nn.Parameter(torch.randn(n_arms, n_types, n_state) * 0.1)
        self.prior_logvar = nn.Parameter(torch.zeros(n_arms, n_types, n_state))
        if state_prior == "normal":
            self.prior_mean.requires_grad_(False).zero_()
            self.prior_logvar.requires_grad_(False)

    # ----- scvi-tools plumbing -------------------------------------------------------------
    def _get_inference_input(self, tensors: dict[str, torch.Tensor], **kwargs) -> dict:
        return {"x": tensors[REGISTRY_KEYS.X_KEY], "batch_index": self._batch(tensors)}

    def _get_generative_input(self, tensors, inference_outputs, **kwargs) -> dict:
        return {
            "s": inference_outputs["s"],
            "c": inference_outputs["c"],
            "library": inference_outputs["library"],
            "batch_index": self._batch(tensors),
        }

    @staticmethod
    def _batch(tensors: dict[str, torch.Tensor]) -> torch.Tensor | None:
        return tensors.get(REGISTRY_KEYS.BATCH_KEY)

    def _encoder_input(self, counts: torch.Tensor) -> torch.Tensor:
        """What the type encoder sees of counts: ``log1p`` of counts per 10^4 (depth-invariant)."""
        return log_normalise(counts) if self._library_normalised else torch.log1p(counts)

    # ----- the model ----------------------------------------------------------------------
    @auto_move_data
    def inference(
        self,
        x: torch.Tensor,
        batch_index: torch.Tensor | None = None,
        deterministic: bool = False,
    ) -> dict[str, torch.Tensor]:
        """Encode each arm's copy of ``x`` into ``q(c|x)``, a type sample and ``q(s|x, c)``.

        During training every arm sees its own augmented copy and the type is a Gumbel-softmax
        sample at the current temperature; otherwise all arms see ``x`` and the type is the
        one-hot argmax. While ``pretraining`` the type code is the posterior ``q(c|x)`` itself.
        Counts enter the type encoder as :func:`cplmixvi.nn.log_normalise` of the counts, a
        ``"separate"`` state encoder as their ``log1p``; the decoder keeps each library size.
        With ``objective="consensus"`` the type enters the state posterior and the decoder
        detached after pretraining. ``deterministic`` returns the state mean instead of a sample.
        """
        xa = self.augmenter(x, self.n_arms) if self.training else x.expand(self.n_arms, *x.shape)
        counts = self.gene_likelihood in COUNT_LIKELIHOODS
        x_in = self._encoder_input(xa) if counts else xa
        # consensus: the encoders' dropout acts while pretraining only; in the phase its noise
        # walked fits away from the graph-merged start (12 fits: ARI +0.015 without, model.md)
        dropout = self.objective != "consensus" or self.pretraining
        h = self.encoder(x_in, batch_index, dropout)
        logits = self.type_head(h)
        if self.is_pruned:  # pruned types get log q = -inf: softmax and Gumbel over survivors
            logits = logits.masked_fill(~self.type_mask, float("-inf"))
        log_probs = torch.log_softmax(logits, dim=-1)
        if self.training and self.pretraining:
            c = log_probs.exp()
        elif self.training:
            # a tensor temperature: no host synchronisation (same numbers as float(tau))
            c = gumbel_softmax(logits, tau=self.temperature)
        else:
            c = F.one_hot(logits.argmax(-1), self.n_types).to(logits.dtype)
        if self.objective == "consensus" and not self.pretraining:
            c = c.detach()  # the types learn from the consensus target, not from the ELBO
        if self.state_encoder == "separate":
            # raw log1p: more planted state genes found than per 10^4 (docs/model.md)
            h = self.state_features(torch.log1p(xa) if counts else xa, batch_index, dropout)
        state = self.state_head(torch.cat([h, c], dim=-1))
        qs_mean, qs_logvar = state.chunk(2, dim=-1)
        qs_std = torch.exp(0.5 * qs_logvar.clamp(-15.0, 15.0)) + 1e-4
        qs = Normal(qs_mean, qs_std, validate_args=False)
        s = qs.loc if deterministic else qs.rsample()
        return {
            "x_aug": xa,
            "log_probs": log_probs,
            "c": c,
            "qs_mean": qs.loc,
            "qs_std": qs.scale,
            "s": s,
            "library": xa.sum(-1, keepdim=True) if counts else None,
        }

    @auto_move_data
    def generative(
        self,
        s: torch.Tensor,
        c: torch.Tensor,
        library: torch.Tensor | None = None,
        batch_index: torch.Tensor | None = None,
    ) -> dict[str, torch.Tensor]:
        """Decode ``(s, c)`` of every arm into the parameters of ``p(x|s, c)``."""
        hidden = self.decoder(torch.cat([s, c], dim=-1), batch_index)
        out = self.output_head(hidden)
        gen = {"px_out": out}
        if self.gene_likelihood in COUNT_LIKELIHOODS:
            gen["px_mean"] = library * torch.softmax(out, dim=-1)
            if self.gene_likelihood == "zinb":
                gen["px_dropout"] = self.dropout_head(hidden)
        return gen

    def state_prior_params(self, c: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Mean and standard deviation of ``p(s|c)`` for type vectors ``c`` of shape (A, B, K)."""
        mean = torch.bmm(c, self.prior_mean)
        std = torch.exp(0.5 * torch.bmm(c, self.prior_logvar))
        return mean, std

    def reconstruction_nll(self, x: torch.Tensor, gen: dict[str, torch.Tensor]) -> torch.Tensor:
        """Negative log-likelihood of each arm's copy, summed over features: shape (A, B)."""
        lik = self.gene_likelihood
        if lik == "nb":
            dist = NegativeBinomial(mu=gen["px_mean"], theta=self.feature_param.exp())
            return -dist.log_prob(x).sum(-1)
        if lik == "zinb":
            dist = ZeroInflatedNegativeBinomial(
                mu=gen["px_mean"], theta=self.feature_param.exp(), zi_logits=gen["px_dropout"]
            )
            return -dist.log_prob(x).sum(-1)
        if lik == "normal":
            return gaussian_nll(x, gen["px_out"], self.feature_param)
        return F.binary_cross_entropy_with_logits(
            gen["px_out"], x.expand_as(gen["px_out"]), reduction="none"
        ).sum(-1)

    def loss(
        self,
        tensors: dict[str, torch.Tensor],
        inference_outputs: dict[str, torch.Tensor],
        generative_outputs: dict[str, torch.Tensor],
        kl_weight: float = 1.0,
    ) -> LossOutput:
        """The training objective, averaged over the cells of the minibatch.

        Every objective has each arm's negative ELBO of the state, ``rec_a + kl_weight *
        KL_s,a``; while ``pretraining`` that is all. Then, by ``objective``:

        - ``"consensus"``: ``sum_a (rec_a + kl_weight * KL_s,a) + sum_a KL(p || q_a)`` with the
          arms' common sharpened target ``p`` (:func:`cplmixvi.nn.sharpened_target`); the ELBO
          reaches the shared encoder but not the type heads (see :meth:`inference`);
        - ``"paper"`` (Eq. 7): ``sum_a w (rec_a + kl_weight * KL_s,a - H_a) + lambda *
          sum_{a<b} d_sigma^2(c_a, c_b)`` with ``w = A - 1`` (1 for a single arm);
        - ``"info"``: the paper's weighted ELBO and entropy terms minus
          ``lambda * sum_{a<b} (H(q_ab(c)) - CE_ab)``
          (:func:`cplmixvi.nn.information_coupling`).

        ``marginal_entropy_weight`` ``> 0`` subtracts ``gamma_m * sum_a H(q_a(c))``. The
        objectives are the functions of :mod:`cplmixvi.module._objectives`.
        """
        inf = inference_outputs
        rec = self.reconstruction_nll(inf["x_aug"], generative_outputs)
        prior_mean, prior_std = self.state_prior_params(inf["c"])
        kl_state = normal_kl(inf["qs_mean"], inf["qs_std"], prior_mean, prior_std).sum(-1)
        log_probs, c = self.surviving(inf["log_probs"]), self.surviving(inf["c"])
        entropy = -(log_probs.exp() * log_probs).sum(-1)
        metrics = self._loss_metrics(rec, kl_state, entropy, inf["log_probs"])
        elbo = rec + kl_weight * kl_state
        if self.pretraining:
            if self.objective == "consensus":  # its term is logged from the first epoch on
                OBJECTIVES["consensus"](self, elbo, entropy, log_probs, c, metrics)
            return self._loss_output(elbo.sum(0).mean(), rec, kl_state, metrics)
        loss = OBJECTIVES[self.objective](self, elbo, entropy, log_probs, c, metrics)
        if self.marginal_entropy_weight:
            marginal = marginal_entropy(log_probs)
            metrics["marginal_entropy"] = marginal.mean().detach()
            loss = loss - self.marginal_entropy_weight * marginal.sum()
        return self._loss_output(loss, rec, kl_state, metrics)

    @staticmethod
    def _loss_output(loss, rec, kl_state, metrics: dict) -> LossOutput:
        return LossOutput(
            loss=loss,
            reconstruction_loss=rec.mean(0),
            kl_local={"kl_state": kl_state.mean(0)},
            extra_metrics=metrics,
        )

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        # weights of another width: a checkpoint taken while a wider code pretrained
        saved = state_dict.get(prefix + "type_head.weight")
        if saved is not None and saved.shape[-1] != self.n_types:
            self._adopt_n_types(saved.shape[-1])
        # models saved before pruning existed have no mask: every category is in use
        state_dict.setdefault(prefix + "type_mask", torch.ones_like(self.type_mask))
        # models saved by 0.1.0 encoded log1p of raw counts
        state_dict.setdefault(prefix + "library_normalised", torch.tensor(False))
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)
        self._pruned = not bool(self.type_mask.all())
        self._library_normalised = bool(self.library_normalised)

    def _loss_metrics(self, rec, kl_state, entropy, log_probs) -> dict:
        """Per-arm means of every term of the loss, for the training history."""
        types = log_probs.argmax(-1)
        first, second = torch.triu_indices(self.n_arms, self.n_arms, 1, device=types.device)
        agreement = (types[first] == types[second]).float().mean() if self.n_arms > 1 else 1.0
        metrics = {
            "reconstruction": rec.mean().detach(),
            "kl_state": kl_state.mean().detach(),
            "type_entropy": entropy.mean().detach(),
            "arm_agreement": torch.as_tensor(agreement).detach(),
            "temperature": self.temperature.detach().clone(),
        }
        return metrics
