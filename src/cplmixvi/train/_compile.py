"""Opt-in fast training: a ``torch.compile``-d training step and a fused Adam.

On one CPU thread most of an eager training step of the reference configuration is not matrix
arithmetic but elementwise passes over ``(n_arms, n_cells, n_genes)`` tensors (gene dropout,
likelihood, batch norm, activations and their gradients) and per-parameter optimizer updates.
:class:`FastTrainingMixin` compiles the training loss of a minibatch (and with it, through
AOTAutograd, its backward pass) with inductor, which fuses those passes into a few loops, and
uses the single-kernel ``Adam(fused=True)``. The compiled function returns only the loss and
the scalars logged for the epoch, so the per-arm copies and reconstructions are never written
out unless the backward pass needs them. Validation and inference stay eager.

Compile-only formulations make the fused loops cheaper (eager training is unchanged); all are
in :mod:`cplmixvi.train._compiled_forms`:

- gene-dropout masks and Gumbel noise come from counter-based random bits
  (:mod:`cplmixvi.train._random`) that are computed inside the fused loops instead of drawn into
  memory, from one key per call drawn from torch's generator;
- the Gaussian likelihood has a hand-written backward pass, batch norm takes its statistics in
  one pass on the arm-major layout and linear layers add their bias in the consumer's loop;
- while a compiled fit runs, the process keeps freed memory in its heap
  (:mod:`cplmixvi.train._allocator`), so that the step's megabyte-sized tensors reuse pages
  instead of being mapped and zeroed again; glibc's defaults are set back when the fit ends.

What changes against eager training with the same seed: the dropout masks and the Gumbel noise
are other streams of the same distributions, and fused kernels and the fused Adam round
differently, so the model is close to, not bit-identical with, the eager one. A seed gives the
same model on every run of the compiled path.

The first training step compiles, once per minibatch size (the last, smaller minibatch of an
epoch has its own graph): tens of seconds on one CPU thread; inductor caches the generated code
on disk for later processes.
"""

from __future__ import annotations

import torch

from cplmixvi.train import _compiled_forms  # noqa: F401 (registers the compiled formulations)
from cplmixvi.train._allocator import release_freed_memory, retain_freed_memory

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

    def on_fit_start(self) -> None:
        """Keep freed memory in the heap while a compiled fit runs (see ``_allocator``)."""
        super().on_fit_start()
        if self.__dict__.get("_compile"):
            retain_freed_memory()

    def on_fit_end(self) -> None:
        """Give glibc its default thresholds back once the compiled fit has ended."""
        super().on_fit_end()
        if self.__dict__.get("_compile"):
            release_freed_memory()

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
        """The parent's forward pass, compiled while the module trains when ``compile``.

        Used by training steps that log every step (the default step compiles
        :meth:`_training_terms` instead).
        """
        compiling = torch.compiler.is_compiling()
        if compiling or not (self.__dict__.get("_compile") and self.module.training):
            return super().forward(*args, **kwargs)
        if self.__dict__["_compiled_forward"] is None:
            self.__dict__["_compiled_forward"] = torch.compile(
                super().forward, options=INDUCTOR_OPTIONS
            )
        return self.__dict__["_compiled_forward"](*args, **kwargs)

    def get_optimizer_creator(self):
        """The parent's Adam/AdamW, as the fused single-kernel version when asked for."""
        fused_cls = {"Adam": torch.optim.Adam, "AdamW": torch.optim.AdamW}.get(self.optimizer_name)
        if not self.__dict__.get("_fused_optimizer") or fused_cls is None:
            return super().get_optimizer_creator()
        return lambda params: fused_cls(
            params, lr=self.lr, eps=self.eps, weight_decay=self.weight_decay, fused=True
        )
