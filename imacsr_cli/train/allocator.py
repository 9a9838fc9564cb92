"""Training on the CPU: keep freed memory in the process for the next step (glibc's malloc).

glibc serves every block above its mmap threshold (at most 32 MiB) with a fresh mapping and unmaps it
when freed, so each step's large tensors (activations, their gradients, the loss terms' label-size
buffers) are new pages that the kernel zeroes and maps one fault at a time. A DeepLabv3+-R18 step
at 256×512, batch 4 takes 140-180 thousand such faults: 0.2-1.3 s of system time on a 2-3 s step,
and the larger part of its step-to-step variation (BENCHMARKS.md, issue 13). With mmap'd blocks off
and the heap never trimmed, the second step onwards reuses the first one's pages: no faults, no
system time. The cost is that the process keeps its peak heap until it exits, which a trainer does
anyway. PyTorch's CUDA allocator already caches device memory; this is the CPU's equivalent.

Nothing a run computes changes (the same kernels on other addresses): it is not part of the run id.
A ``MALLOC_*`` variable in the environment means somebody chose glibc's settings; they are kept.
"""

from __future__ import annotations

import ctypes
import os
import sys

_M_TRIM_THRESHOLD = -1  # glibc's mallopt parameters (malloc.h)
_M_MMAP_MAX = -4


def keep_freed_memory() -> bool:
    """Turn glibc's mmap'd blocks and heap trimming off in this process; False where it cannot
    (not Linux with glibc) or must not (a MALLOC_* setting in the environment)."""
    if not sys.platform.startswith("linux") or any(name.startswith("MALLOC_") for name in os.environ):
        return False
    try:
        libc = ctypes.CDLL("libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    # mallopt returns 1 on success. The trim threshold is an int: 2 GiB of free heap top before any
    # of it goes back to the system is "never" for a trainer.
    return mallopt(_M_MMAP_MAX, 0) == 1 and mallopt(_M_TRIM_THRESHOLD, 2**31 - 1) == 1
