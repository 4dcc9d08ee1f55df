"""Running out of memory: turn the device's error into advice, with a size that should fit.

The memory of a run grows with the number of pixels. Measured on the CPU (peak RSS of
:func:`nstlib.stylize`, VGG19 up to relu5_1, at 128 and 384 px): about 3.7 KB per pixel for
the activations kept for the backward pass, plus 2.4 KB per pixel for L-BFGS's history
(100 pairs of [1, 3, H, W] float32 vectors). :data:`BYTES_PER_PIXEL` rounds the sum up.
"""
from __future__ import annotations

import functools
import math
import os
from typing import Any, Callable, TypeVar

import torch

from .config import default_size, resolve_device
from .errors import NSTError, OutOfMemoryError

__all__ = ["BYTES_PER_PIXEL", "available_bytes", "fitting_side", "advise_on_oom"]

BYTES_PER_PIXEL = 8 * 1024
F = TypeVar("F", bound=Callable[..., Any])


def available_bytes(device: torch.device) -> int | None:
    """Memory a run could use on ``device``: free CUDA memory plus what PyTorch holds (freed when
    the failed run is dropped), or the machine's available RAM on the CPU; None if unknown."""
    try:
        if device.type == "cuda":
            free, _total = torch.cuda.mem_get_info(device)
            return int(free + torch.cuda.memory_reserved(device))
        if device.type == "cpu":
            return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (RuntimeError, ValueError, OSError, AttributeError):
        pass
    return None


def fitting_side(side: int, aspect: float = 1.0, free: int | None = None) -> int:
    """Estimate the longest side (px) that fits in ``free`` bytes (80% of it, ``BYTES_PER_PIXEL``).

    Args:
        side: the longest side that ran out of memory.
        aspect: longest side / shortest side of the image (>= 1).
        free: usable bytes; None (unknown) -> half the pixels of ``side``.

    Returns:
        A multiple of 16, at most 0.9 * ``side`` (``side`` did not fit) and at least 16.
    """
    if free is None:
        est = side / math.sqrt(2.0)
    else:  # pixels = L * (L / aspect)  ->  L = sqrt(pixels * aspect)
        est = math.sqrt(0.8 * free / BYTES_PER_PIXEL * max(aspect, 1.0))
    return max(16, int(min(est, 0.9 * side)) // 16 * 16)


def _is_oom(e: BaseException) -> bool:
    if isinstance(e, NSTError):  # already explained
        return False
    if isinstance(e, (torch.OutOfMemoryError, MemoryError)):
        return True
    text = str(e)
    return isinstance(e, RuntimeError) and any(  # MPS and the CPU allocator raise RuntimeError
        k in text for k in ("out of memory", "can't allocate memory", "not enough memory"))


def advise_on_oom(fn: F) -> F:
    """Decorate ``stylize``-like functions (keywords ``size``, ``device``, ``extractor``, or a
    :class:`nstlib.Transfer` as the first argument): an out
    of memory error becomes :class:`nstlib.errors.OutOfMemoryError` with a size that should fit."""
    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except Exception as e:
            if not _is_oom(e):
                raise
            spec = args[0] if args and hasattr(args[0], "resolved") else None  # nstlib.run(spec, ...)
            ext = kwargs.get("extractor")
            dev = ext.device if ext is not None else resolve_device(kwargs.get("device", getattr(spec, "device", None)))
            size = kwargs.get("size", getattr(spec, "size", None))
            if isinstance(size, (tuple, list)):
                side, aspect = max(size), max(size) / max(1, min(size))
            else:
                side, aspect = int(size or default_size(dev)), 1.0
            free = available_bytes(dev)
            fit = fitting_side(side, aspect, free)
            how = (f"{free / 2**30:.1f} GB usable at ~{BYTES_PER_PIXEL // 1024} KB per pixel"
                   if free is not None else "half the pixels")
            raise OutOfMemoryError(
                f"out of memory on {dev} at size={side} ({type(e).__name__}). Lower size: about "
                f"size={fit} should fit (estimate: {how}). Also close other notebooks using the "
                "device, or use optimizer='adam' (no L-BFGS history)") from None
    return wrapper  # type: ignore[return-value]
