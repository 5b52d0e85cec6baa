"""Counter-based random numbers for the compiled training step.

Under ``torch.compile`` on the CPU, drawing from torch's generator is a separate, sequential
call that fills a tensor in memory (inductor's own elementwise generator is slower still).
:func:`hashed_bits` instead computes each entry's random bits as an integer hash of its position
and of one key drawn from torch's generator: vectorised integer arithmetic that the compiler
fuses into the consumer of the numbers, so no random tensor is drawn or stored. A seed still
fixes every number (through the key). Used for gene-dropout masks and Gumbel noise when the
training step is compiled; eager training draws from torch's generator as before.
"""

from __future__ import annotations

import math

import torch

#: random bits per entry of :func:`hashed_bits`
N_BITS = 24


def hashed_bits(shape: torch.Size | tuple[int, ...], device: torch.device) -> torch.Tensor:
    """Uniform random integers in ``[0, 2^24)`` of the given shape (int32).

    Each row (all but the last dimension) gets a hashed key; each entry is the ``lowbias32``
    hash of its row key plus its column, of which the top 24 bits are kept.
    """
    key = torch.randint(-(2**31), 2**31 - 1, (1,), dtype=torch.int32, device=device)
    rows = torch.arange(math.prod(shape[:-1]), dtype=torch.int32, device=device)
    cols = torch.arange(shape[-1], dtype=torch.int32, device=device)
    row_keys = _lowbias32(rows ^ key).reshape(*shape[:-1], 1)
    return (_lowbias32(row_keys + cols) >> (32 - N_BITS)) & ((1 << N_BITS) - 1)


def hashed_uniform(shape: torch.Size | tuple[int, ...], device: torch.device) -> torch.Tensor:
    """Uniform float32 in the open interval ``(0, 1)``: ``(k + 1/2) 2^-23``, ``k < 2^23``.

    See :func:`bits_to_uniform`.
    """
    return bits_to_uniform(hashed_bits(shape, device))


def bits_to_uniform(bits: torch.Tensor) -> torch.Tensor:
    """Map integers in ``[0, 2^24)`` to float32 ``(k + 1/2) 2^-23`` with ``k = bits >> 1``.

    Every value is exact in float32, so the largest is ``1 - 2^-24 < 1`` and ``log(-log(u))`` is
    finite (with 24 bits, ``(k + 1/2) 2^-24`` rounds to exactly 1 for the largest ``k``).
    """
    return ((bits >> 1).float() + 0.5) * 2.0 ** (1 - N_BITS)


def _lowbias32(h: torch.Tensor) -> torch.Tensor:
    """C. Wellons' ``lowbias32`` integer hash on int32 tensors (wrapping arithmetic)."""
    h = h ^ ((h >> 16) & 0xFFFF)
    h = h * 0x7FEB352D
    h = h ^ ((h >> 15) & 0x1FFFF)
    h = h * (0x846CA68B - 2**32)
    return h ^ ((h >> 16) & 0xFFFF)
