"""Freed memory kept for the next evaluation: glibc's allocator tuned while a run optimizes.

Every evaluation of the objective allocates the same large tensors (feature maps and their
gradients: 16 MB each for 64 channels at 256 x 256, 64 MB at 512 x 512) and frees them again.
glibc's ``malloc`` gives blocks above its mmap threshold straight back to the kernel and trims the
top of its heap beyond its trim threshold (both at most 32 MB and 64 MB by its own adjustment), so
the next evaluation writes to fresh pages and takes a page fault every 4 KB. On the 2-core machine
of ``docs/benchmarks.md`` an evaluation at 512 px took 5-39 % less time with the blocks kept, the
plain PyTorch loop's 19-33 % (``benchmarks/allocator.py`` measures it).

While :func:`nstlib.optimize` runs, :func:`reusing_freed_memory` raises both thresholds to
:data:`RUN_THRESHOLD`, so those blocks stay in the process and the next evaluation reuses them.
When the run ends it sets them to glibc's ceilings (32 MB, 64 MB: where its own adjustment ends up
in a process that has freed large blocks, as every PyTorch program has) and hands the free memory
back to the system (``malloc_trim``). The peak memory of a run grows a little (the heap keeps freed
blocks that a request of another size cannot use): 6-28 % more at 512 px in probes on that machine.

Linux with glibc only (Colab, most Linux machines); elsewhere (macOS, Windows, musl) nothing
changes, and nothing changes where ``NSTLIB_ALLOCATOR=default`` or where the user set glibc's own
``MALLOC_MMAP_THRESHOLD_`` / ``MALLOC_TRIM_THRESHOLD_``.
"""
from __future__ import annotations

import contextlib
import ctypes
import os
import sys
from collections.abc import Iterator

__all__ = ["RUN_THRESHOLD", "GLIBC_CEILINGS", "tunable", "reusing_freed_memory"]

#: mmap and trim thresholds (bytes) while a run optimizes: blocks below it are kept for reuse.
RUN_THRESHOLD = 1 << 30
#: (mmap threshold, trim threshold) set when a run ends: the largest values glibc's own dynamic
#: adjustment reaches on 64-bit Linux (``DEFAULT_MMAP_THRESHOLD_MAX`` and twice it).
GLIBC_CEILINGS = (32 << 20, 64 << 20)
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3  # glibc's malloc.h
_USER_SETTINGS = ("MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_")


def _glibc() -> ctypes.CDLL | None:
    """The process's C library when it is glibc (it has ``mallopt`` and ``malloc_trim``), else None."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        if not (os.confstr("CS_GNU_LIBC_VERSION") or "").startswith("glibc"):
            return None
        lib = ctypes.CDLL(None)
        lib.mallopt.argtypes, lib.malloc_trim.argtypes = [ctypes.c_int, ctypes.c_int], [ctypes.c_size_t]
    except (AttributeError, OSError, ValueError, TypeError):
        return None
    return lib


def _tunable_lib() -> ctypes.CDLL | None:
    """glibc, unless ``NSTLIB_ALLOCATOR=default`` or the user set glibc's thresholds."""
    if os.environ.get("NSTLIB_ALLOCATOR", "").strip().lower() == "default":
        return None
    return None if any(k in os.environ for k in _USER_SETTINGS) else _glibc()


def tunable() -> bool:
    """Whether :func:`reusing_freed_memory` changes anything here: glibc, ``NSTLIB_ALLOCATOR`` not
    ``default``, and no ``MALLOC_MMAP_THRESHOLD_`` / ``MALLOC_TRIM_THRESHOLD_`` of the user's."""
    return _tunable_lib() is not None


@contextlib.contextmanager
def reusing_freed_memory() -> Iterator[bool]:
    """Keep freed blocks up to :data:`RUN_THRESHOLD` in the process for the duration of the block,
    then set glibc's ceilings and return the free memory to the system. Yields whether the
    allocator was tuned (see :func:`tunable`); a no-op elsewhere."""
    lib = _tunable_lib()
    if lib is None:
        yield False
        return
    lib.mallopt(_M_MMAP_THRESHOLD, RUN_THRESHOLD)
    lib.mallopt(_M_TRIM_THRESHOLD, RUN_THRESHOLD)
    try:
        yield True
    finally:
        lib.mallopt(_M_MMAP_THRESHOLD, GLIBC_CEILINGS[0])
        lib.mallopt(_M_TRIM_THRESHOLD, GLIBC_CEILINGS[1])
        lib.malloc_trim(0)
