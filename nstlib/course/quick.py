"""Quick mode: the course's one switch between real-quality, CPU-friendly and CI-sized settings.

``NSTLIB_QUICK=1`` (read once, when nstlib.course is imported) makes every notebook use tiny images and
few steps, so the whole course runs in CI in minutes. Only :func:`pick` reads it: the library's own
defaults (``stylize``'s steps and size) never change with it, for users outside the course.
"""
from __future__ import annotations

from typing import TypeVar

from ..config import default_device, env_flag

__all__ = ["QUICK", "pick"]

T = TypeVar("T")

#: Quick mode (``NSTLIB_QUICK=1``): small images and few steps, for CI and slow machines.
QUICK: bool = env_flag("NSTLIB_QUICK")


def pick(normal: T, quick: T, cpu: T | None = None) -> T:
    """Choose a setting for the mode the course runs in.

    Returns ``quick`` in quick mode (``NSTLIB_QUICK=1``); else ``cpu``, when given and no GPU
    (CUDA or MPS) is available -- the CPU-friendly setting, real weights but fewer steps so a
    notebook finishes in a lesson on a laptop; else ``normal``::

        steps = pick(300, quick=20, cpu=100)
    """
    if QUICK:
        return quick
    if cpu is not None and default_device().type == "cpu":
        return cpu
    return normal
