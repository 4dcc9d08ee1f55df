"""Run-time settings read once from the environment, and device helpers.

Environment variables (read when nstlib is imported, never written):

* ``NSTLIB_QUICK=1`` -- the course's quick mode, read by :mod:`nstlib.course.quick` only: the
  library's own defaults (``stylize``'s steps and size) never change with it.
* ``NSTLIB_OFFLINE=1`` -- when the pretrained VGG weights cannot be had, fall back
  to seeded random weights (with a loud warning) instead of raising.
* ``NSTLIB_WEIGHTS=/path/to/vgg19.pth`` (or ``NSTLIB_WEIGHTS_VGG19``) -- a local VGG19 weight file to use
  for ``weights="imagenet"``; ``NSTLIB_WEIGHTS_VGG16`` -- the same for VGG16
  (:func:`nstlib.weights.weights_env`).
* ``NSTLIB_ALLOCATOR=default`` -- leave glibc's allocator as it is while a run optimizes
  (:mod:`nstlib.allocator`; by default freed memory is kept for reuse during a run).
"""
from __future__ import annotations

import os

import torch

from .errors import check_choice

__all__ = ["env_flag", "offline", "default_device", "default_size", "resolve_device"]


def env_flag(name: str) -> bool:
    """True when the environment variable ``name`` is set to 1, true, yes or on (any case)."""
    return os.environ.get(name, "").strip().lower() in {"1", "true", "yes", "on"}


def offline() -> bool:
    """True when ``NSTLIB_OFFLINE=1``: missing pretrained weights fall back to random ones.

    Read at call time (not cached), so a script or a test may set it before building a model.
    """
    return env_flag("NSTLIB_OFFLINE")


def default_device() -> torch.device:
    """The best available device: CUDA, then Apple's MPS, then the CPU."""
    if torch.cuda.is_available():
        return torch.device("cuda")
    mps = getattr(torch.backends, "mps", None)
    if mps is not None and mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


DEVICES = ("cpu", "cuda", "cuda:N", "mps")


def resolve_device(device: str | torch.device | None) -> torch.device:
    """``None`` -> :func:`default_device`; a name or device -> ``torch.device``.

    Raises:
        ValueError: an unknown name (``"gpu0"``), or a CUDA/MPS device this machine does not have.
    """
    if device is None:
        return default_device()
    try:
        dev = device if isinstance(device, torch.device) else torch.device(device)
    except (RuntimeError, TypeError, ValueError):
        check_choice("device", device, DEVICES, " or None (the best available)")  # raises: not a device
        raise ValueError(f"device {device!r}: write a GPU's number, e.g. 'cuda:0'") from None
    if dev.type == "cuda" and (not torch.cuda.is_available() or (dev.index or 0) >= torch.cuda.device_count()):
        have = torch.cuda.device_count() if torch.cuda.is_available() else 0
        raise ValueError(f"device={device!r}, but this machine has {have} CUDA GPU(s); use device='cpu' "
                         "or leave device=None for the best available")
    mps = getattr(torch.backends, "mps", None)
    if dev.type == "mps" and not (mps is not None and mps.is_available()):
        raise ValueError(f"device={device!r}, but Apple's MPS is not available here; use device='cpu' or None")
    return dev


def default_size(device: str | torch.device | None = None) -> int:
    """Default longest image side: 512 on CUDA or MPS, 256 on the CPU. (Quick mode does not change
    it; the course picks its sizes with ``pick(default_size(device), quick=64)``.)"""
    kind = default_device().type if device is None else torch.device(device).type
    return 256 if kind == "cpu" else 512
