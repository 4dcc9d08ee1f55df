"""What this machine offers the course: device, versions, run mode and where the VGG weights stand.

Every notebook's setup cell (:mod:`nstlib.course.setup_cell`) prints :func:`environment_report`;
nothing here downloads or builds a model.
"""
from __future__ import annotations

import os
import platform
import sys
from pathlib import Path

import torch

from ..config import offline, resolve_device
from ..weights import cache_path, download_size_mb, weights_env
from .quick import QUICK

__all__ = ["environment_report", "weights_status", "in_colab", "gpu_advice"]


def in_colab() -> bool:
    """True inside Google Colab (its ``google.colab`` module is already imported there)."""
    return "google.colab" in sys.modules


def gpu_advice() -> str:
    """How to get a GPU, when the course runs on Colab without one (else ``""``); ends with a newline."""
    if not in_colab() or torch.cuda.is_available():
        return ""
    return ("No GPU in this Colab runtime: choose Runtime > Change runtime type > T4 GPU (any GPU), "
            "Save, then Runtime > Run all. On the CPU every notebook still runs, more slowly.\n")


def weights_status(arch: str = "vgg19") -> str:
    """One sentence on whether the pretrained ``arch`` weights are here, and what happens if not.

    Looks at the network's variable (:func:`nstlib.weights.weights_env`) and torchvision's cache only;
    it does not try a download.
    """
    name, env = weights_env(arch)
    if env:
        path = Path(env).expanduser()
        return (f"pretrained: {name}={path}" if path.is_file()
                else f"{name}={path} is not a file: fix the path or unset it")
    cached = cache_path(arch)
    if cached.is_file():
        return f"pretrained: {arch} weights cached at {cached}"
    if offline():
        return ("not cached; NSTLIB_OFFLINE=1, so if they cannot be downloaded nstlib uses SEEDED "
                "RANDOM weights (images then show the algorithm running, not real results)")
    return (f"not cached yet: the first model you build downloads them ({download_size_mb(arch):.0f} MB) to {cached}; "
            "without internet that fails with instructions (or set NSTLIB_OFFLINE=1)")


def environment_report(device: str | torch.device | None = None, arch: str = "vgg19") -> dict[str, str]:
    """The facts a student (or a teacher debugging a student's machine) needs first.

    Returns:
        ``{"python", "torch", "torchvision", "device", "colab", "mode", "offline", "weights"}``,
        all strings, in that order; print it with ``for k, v in report.items(): print(k, v)``.
    """
    import torchvision
    dev = resolve_device(device)
    name = dev.type
    if dev.type == "cuda":
        name += f" ({torch.cuda.get_device_name(dev)})"
    elif dev.type == "cpu":
        name += f" ({os.cpu_count()} cores)"
    return {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "torchvision": torchvision.__version__,
        "device": name,
        "colab": "yes" if in_colab() else "no",
        "mode": "QUICK (NSTLIB_QUICK=1: tiny images, few steps)" if QUICK else "normal",
        "offline": "yes (NSTLIB_OFFLINE=1)" if offline() else "no",
        "weights": weights_status(arch),
    }
