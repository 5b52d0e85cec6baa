"""Opt-in fast training: a ``torch.compile``-d training step and a fused Adam.

On one CPU thread most of an eager training step of the reference configuration is not matrix
arithmetic but elementwise passes over ``(n_arms, n_cells, n_genes)`` tensors (gene dropout,
likelihood, batch norm, activations and their gradients) and per-parameter optimizer updates.
:class:`FastTrainingMixin` compiles the module's training forward pass (and with it, through
AOTAutograd, the backward pass) with inductor, which fuses those passes into a few loops, and
uses the single-kernel ``Adam(fused=True)``. Validation and inference stay eager.

What changes against eager training with the same seed:

- inductor draws random numbers with torch's own generator (``fallback_random``), so the
  Gumbel and state noise are those of eager training; gene dropout draws its mask from 16-bit
  integers under compilation (four per 64-bit draw, see
  :class:`~cplmixvi.augment.GeneDropout`), a different stream;
- fused kernels and the fused Adam round differently: the model is close to, not bit-identical
  with, the eager one. A seed gives the same model on every run of the compiled path.

The first training step compiles, once for every minibatch size (the cell dimension is
symbolic): tens of seconds on one CPU thread; inductor caches the generated code on disk for
later processes.
"""

from __future__ import annotations

import torch

from cplmixvi.train._allocator import retain_freed_memory

#: inductor settings of the compiled step (see the module docstring)
INDUCTOR_OPTIONS = {"fallback_random": True}


class FastTrainingMixin:
    """Compile the training forward pass and/or use a fused Adam (mix in before TrainingPlan).

    The plan must call :meth:`_init_fast` from its constructor.
    """

    def _init_fast(self, compile: bool, fused_optimizer: bool) -> None:
        if compile and not hasattr(torch, "compile"):
            raise RuntimeError("compile=True needs torch.compile (torch >= 2.0).")
        self.__dict__["_compile"] = bool(compile)
        self.__dict__["_fused_optimizer"] = bool(fused_optimizer)
        self.__dict__["_compiled_forward"] = self.__dict__["_compiled_terms"] = None
        if compile:
            retain_freed_memory()

    def _training_terms(self, batch, loss_kwargs: dict):
        """The parent's loss and logged terms of a training minibatch, compiled when ``compile``.

        Compiling this function rather than the whole forward pass lets the graph return only
        the loss and a few scalars: the inference and generative outputs (each arm's augmented
        copy, the reconstruction, ...) are then never written out unless the backward pass
        needs them.
        """
        if not (self.__dict__.get("_compile") and self.module.training):
            return super()._training_terms(batch, loss_kwargs)
        if self.__dict__.get("_compiled_terms") is None:
            self.__dict__["_compiled_terms"] = torch.compile(
                super()._training_terms, options=INDUCTOR_OPTIONS
            )
        return self.__dict__["_compiled_terms"](batch, loss_kwargs)

    def forward(self, *args, **kwargs):
        """The parent's forward pass, compiled while the module trains when ``compile``."""
        compiling = torch.compiler.is_compiling()
        if compiling or not (self.__dict__.get("_compile") and self.module.training):
            return super().forward(*args, **kwargs)
        if self.__dict__["_compiled_forward"] is None:
            self.__dict__["_compiled_forward"] = torch.compile(
                super().forward, options=INDUCTOR_OPTIONS
            )
        for value in _tensors(args[0] if args else kwargs.get("tensors")):
            # one graph for every minibatch size (and so the same kernels on every run)
            torch._dynamo.maybe_mark_dynamic(value, 0)
        return self.__dict__["_compiled_forward"](*args, **kwargs)

    def get_optimizer_creator(self):
        """The parent's Adam/AdamW, as the fused single-kernel version when asked for."""
        fused_cls = {"Adam": torch.optim.Adam, "AdamW": torch.optim.AdamW}.get(self.optimizer_name)
        if not self.__dict__.get("_fused_optimizer") or fused_cls is None:
            return super().get_optimizer_creator()
        return lambda params: fused_cls(
            params, lr=self.lr, eps=self.eps, weight_decay=self.weight_decay, fused=True
        )


def _tensors(batch) -> list[torch.Tensor]:
    if isinstance(batch, dict):
        return [value for value in batch.values() if isinstance(value, torch.Tensor)]
    return []
