"""Process-level speed settings, measured in ``benchmarks/`` (see benchmarks/README.md).

glibc's malloc returns large freed blocks to the kernel (``munmap``, heap trimming) and maps
them again on the next allocation. A training step allocates and frees the same few MB of
activations and gradients hundreds of times a second, so with the default thresholds much of
the time goes to page faults in the kernel. Raising the mmap and trim thresholds keeps those
blocks in the heap; it changes no numbers, only where memory comes from.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import os

# mallopt parameter numbers from glibc's <malloc.h>.
_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3
# glibc caps the mmap threshold at 32 MiB on 64-bit; blocks above it are still mmapped.
_MMAP_THRESHOLD = 32 * 1024 * 1024
_TRIM_THRESHOLD = 1024 * 1024 * 1024


@functools.cache
def tune_malloc() -> bool:
    """Raise glibc malloc's mmap and trim thresholds once per process; True if applied.

    A no-op returning False where the C library is not glibc (macOS, musl, Windows), or
    when the environment variable ``MARKETCAST_TUNE_MALLOC`` is ``0`` (benchmarks compare).
    """
    if os.environ.get("MARKETCAST_TUNE_MALLOC", "1") == "0":
        return False
    name = ctypes.util.find_library("c")
    if name is None:
        return False
    try:
        libc = ctypes.CDLL(name)
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    mallopt.restype = ctypes.c_int
    # mallopt returns 1 on success, 0 on an out-of-range value.
    return bool(mallopt(_M_MMAP_THRESHOLD, _MMAP_THRESHOLD)) and bool(
        mallopt(_M_TRIM_THRESHOLD, _TRIM_THRESHOLD)
    )
