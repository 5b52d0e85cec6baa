"""Training plan of the generative augmenter: alternating generator and discriminator steps."""

from __future__ import annotations

import torch
from scvi import REGISTRY_KEYS
from scvi.train import TrainingPlan


class GenerativeAugmenterPlan(TrainingPlan):
    """Alternate one generator step (VAE + adversarial + latent terms) and one discriminator step.

    Parameters
    ----------
    module
        A :class:`GenerativeAugmenterModule`.
    lr_discriminator
        Learning rate of the discriminator (default: ``lr``).
    **kwargs
        Passed to :class:`scvi.train.TrainingPlan` (``lr``, ``weight_decay``, ...).
    """

    def __init__(self, module, *, lr_discriminator: float | None = None, **kwargs):
        kwargs.setdefault("n_epochs_kl_warmup", None)
        super().__init__(module, **kwargs)
        self.lr_discriminator = lr_discriminator
        self.automatic_optimization = False

    def configure_optimizers(self):
        """Adam for the generator (encoder, decoder) and for the discriminator."""
        gen = [p for n, p in self.module.named_parameters() if not n.startswith("discriminator.")]
        opt_g = torch.optim.Adam(gen, lr=self.lr, eps=0.01, weight_decay=self.weight_decay)
        opt_d = torch.optim.Adam(
            self.module.discriminator.parameters(), lr=self.lr_discriminator or self.lr
        )
        return [opt_g, opt_d]

    def training_step(self, batch, batch_idx):
        """One generator step, then one discriminator step, on the same minibatch."""
        if "kl_weight" in self.loss_kwargs:
            self.loss_kwargs.update({"kl_weight": self.kl_weight})
        opt_g, opt_d = self.optimizers()
        inference_outputs, _, scvi_loss = self.forward(batch, loss_kwargs=self.loss_kwargs)
        self.log("train_loss", scvi_loss.loss, on_epoch=True, on_step=False, prog_bar=True)
        self.compute_and_log_metrics(scvi_loss, self.train_metrics, "train")
        opt_g.zero_grad()
        self.manual_backward(scvi_loss.loss)
        opt_g.step()
        d_loss = self.module.discriminator_loss(batch[REGISTRY_KEYS.X_KEY], inference_outputs)
        opt_d.zero_grad()
        self.manual_backward(d_loss)
        opt_d.step()
        self.log("discriminator_train", d_loss.detach(), on_epoch=True, on_step=False)
        return scvi_loss.loss.detach()
