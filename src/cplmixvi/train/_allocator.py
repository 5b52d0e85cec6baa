"""Keep freed memory in the process heap, so that large tensors reuse pages (glibc only).

glibc's ``malloc`` serves blocks above ``M_MMAP_THRESHOLD`` with a fresh ``mmap`` and returns
the top of the heap to the system once more than ``M_TRIM_THRESHOLD`` is free there. A training
step frees and re-allocates the same few-megabyte activations and gradients every step; when
they are unmapped and mapped again, every page of every such tensor is faulted in and zeroed by
the kernel on its first write, which on one CPU thread costs as much as a sixth of the step.
:func:`retain_freed_memory` raises both thresholds so that those blocks stay in the heap and are
reused. Memory freed by training is then kept by the process instead of returned to the system;
the peak changes little (-57 to +57 MB of 640-930 MB in ``benchmarks/results/throughput_1thread``).
:func:`release_freed_memory` sets the thresholds back to glibc's default values and returns the
free memory: the compiled training plan calls the two at the start and the end of a fit, so the
rest of the user's session frees memory as before.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import sys

M_TRIM_THRESHOLD = -1
M_MMAP_THRESHOLD = -3
#: glibc's upper limit of ``M_MMAP_THRESHOLD`` on 64-bit systems
MAX_MMAP_THRESHOLD = 32 * 1024 * 1024
#: glibc's default of both thresholds
DEFAULT_THRESHOLD = 128 * 1024


def retain_freed_memory(trim_threshold: int = 1 << 30) -> bool:
    """Serve blocks up to 32 MiB from the heap and keep up to ``trim_threshold`` bytes free there.

    Applies to the whole process until :func:`release_freed_memory`. Returns whether it took
    effect (only on Linux with glibc; elsewhere it does nothing and returns False).
    """
    return _set_thresholds(MAX_MMAP_THRESHOLD, trim_threshold)


def release_freed_memory() -> bool:
    """Set both thresholds back to glibc's default values (128 KiB) and return the heap's free
    memory to the system. glibc's own adjustment of the mmap threshold, which any ``mallopt``
    of it turns off, stays off."""
    if not _set_thresholds(DEFAULT_THRESHOLD, DEFAULT_THRESHOLD):
        return False
    _glibc().malloc_trim(0)
    return True


def _set_thresholds(mmap_threshold: int, trim_threshold: int) -> bool:
    libc = _glibc()
    if libc is None:
        return False
    mallopt = libc.mallopt
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    return bool(
        mallopt(M_MMAP_THRESHOLD, mmap_threshold) and mallopt(M_TRIM_THRESHOLD, trim_threshold)
    )


def _glibc() -> ctypes.CDLL | None:
    """The C library when it is glibc (it has ``mallopt`` and ``malloc_trim``), else None."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        libc.mallopt, libc.malloc_trim  # noqa: B018 - musl, for one, has neither
    except (OSError, AttributeError):
        return None
    return libc
