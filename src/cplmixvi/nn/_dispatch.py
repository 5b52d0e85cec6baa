"""The one switch between a layer's eager formulation and the compiled training step's.

Every layer has one eager formulation: the reference, whose seeds give bit-identical results.
Where the compiled training step needs another (the same distribution with another random
stream, or another memory layout; ``train/_compiled_forms.py`` registers them), the layer asks
:func:`formulation` for it by name and gets it only while ``torch.compile`` traces.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

_COMPILED: dict[str, Callable] = {}


def register_compiled(name: str) -> Callable[[Callable], Callable]:
    """Decorator: ``function`` replaces the eager formulation ``name`` under ``torch.compile``."""

    def register(function: Callable) -> Callable:
        _COMPILED[name] = function
        return function

    return register


def formulation(name: str, eager: Callable) -> Callable:
    """``eager``, or the compiled formulation registered as ``name`` while compiling."""
    if torch.compiler.is_compiling():
        return _COMPILED.get(name, eager)
    return eager
