"""Keep freed host memory in the process, so XLA:CPU steps stop page-faulting.

XLA:CPU allocates the temporaries of every execution afresh (gigabytes for a
training step) and frees them when it ends. glibc's malloc serves blocks that
large with `mmap` and gives them back with `munmap`, and it uses one arena per
thread, so every step touches its temporaries as brand-new pages: about
620,000 page faults and over a second of kernel time per PPG training step at
batch 32 on the project's 2-core VM (`benchmarks/`). `keep_freed_memory()`
asks glibc to serve every block from one heap that it never trims, so the
second step onward reuses the pages of the first.

The cost: freed memory stays resident until something trims it, so the
training loop calls `release_freed_memory()` after the one-off peaks (compiling
the step, each evaluation) and runs one step at a time on CPU: otherwise the
heap keeps the compiler's scratch and grows to hold the temporaries of two or
three overlapping steps (`benchmarks/memory.py`, BENCHMARKS.md). It only
touches the host allocator, so it changes nothing on GPU or TPU devices, and it
is a no-op where the C library is not glibc.
"""

from __future__ import annotations

import ctypes
import platform

# mallopt(3) parameters (glibc's malloc.h).
_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3
_M_ARENA_MAX = -8


def _glibc_function(name: str):
    """The C library's function `name`, or None where the C library is not glibc."""
    if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        return None
    try:
        return getattr(ctypes.CDLL(None), name)
    except (OSError, AttributeError):
        return None


def keep_freed_memory() -> bool:
    """Tell glibc's malloc to keep freed memory for reuse; True if it took effect.

    Call it early, before JAX starts its threads: the arena limit applies to
    threads that have not allocated yet.
    """
    mallopt = _glibc_function("mallopt")
    if mallopt is None:
        return False
    mallopt.argtypes = (ctypes.c_int, ctypes.c_int)
    # -1 reads as SIZE_MAX: never mmap a block, never trim the heap; one arena
    # for all threads (a thread's own arena maps large blocks regardless).
    settings = ((_M_MMAP_THRESHOLD, -1), (_M_TRIM_THRESHOLD, -1), (_M_ARENA_MAX, 1))
    return all(mallopt(param, value) == 1 for param, value in settings)


def release_freed_memory() -> bool:
    """Give the free pages of glibc's heap back to the system (`malloc_trim(0)`).

    For after a one-off peak: `keep_freed_memory` never trims, so what was freed
    stays resident. The next step touches its temporaries' pages afresh, once.
    True if it ran.
    """
    trim = _glibc_function("malloc_trim")
    if trim is None:
        return False
    trim.argtypes = (ctypes.c_size_t,)
    trim(0)
    return True
