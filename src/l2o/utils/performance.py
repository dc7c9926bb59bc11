"""Process-level performance settings for batched CPU solves.

Batched iterations allocate a few (B, n) temporaries per step (4 MB each for
B = 1000, n = 500 in float64). glibc serves blocks that large with mmap and
returns them to the OS on free, so every step pays fresh page faults. Raising
glibc's mmap and trim thresholds (``mallopt``) keeps those blocks in the heap for
reuse. What it gains is measured by ``benchmarks/bench_allocator.py``
(``benchmarks/results/allocator.md``; history in ``benchmarks/results/design-notes.md``).

This changes the allocator of the whole process, so the library never does it
on import: the CLI and the benchmarks call ``tune_allocator()``; API users may.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import sys

_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3
_THRESHOLD = 32 * 1024 * 1024  # glibc's maximum for M_MMAP_THRESHOLD on 64-bit


def tune_allocator(threshold: int = _THRESHOLD) -> bool:
    """Keep large freed blocks in the heap (glibc only); True if applied."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        ok_trim = libc.mallopt(_M_TRIM_THRESHOLD, ctypes.c_int(threshold))
        ok_mmap = libc.mallopt(_M_MMAP_THRESHOLD, ctypes.c_int(threshold))
    except (OSError, AttributeError):  # not glibc (musl, macOS)
        return False
    return bool(ok_trim and ok_mmap)
