"""The errors nstlib raises on purpose.

Every error the library raises deliberately is an :class:`NSTError`, so a notebook
or a script can catch them all with one ``except nstlib.NSTError``. Each message
names the input that caused it and says what to do about it.
"""
from __future__ import annotations

__all__ = ["NSTError", "ImageError", "WeightsError", "WeightsUnavailableError", "LayerError",
           "OutOfMemoryError", "check_choice", "too_small"]


class NSTError(Exception):
    """Base class of every error nstlib raises on purpose."""


class ImageError(NSTError, ValueError):
    """An image could not be read, decoded or used (names the input and the fix)."""


class WeightsError(NSTError):
    """A weight file is corrupt, unsafe or for another architecture (names the file)."""


class WeightsUnavailableError(WeightsError):
    """Pretrained weights are not on this machine and could not be downloaded."""


class OutOfMemoryError(NSTError, MemoryError):
    """The device ran out of memory; the message estimates a ``size`` that should fit."""


class LayerError(NSTError, KeyError):
    """An unknown VGG layer name was requested (the message lists the closest valid names)."""

    def __str__(self) -> str:  # KeyError would otherwise print the message in quotes
        return str(self.args[0]) if self.args else ""


def check_choice(what: str, value: object, choices: tuple | list, extra: str = "") -> None:
    """Raise ``ValueError("unknown {what} {value!r}; choose one of 'a', 'b'{extra}")`` unless
    ``value`` is one of ``choices`` (the one wording of every "unknown option" error)."""
    try:
        ok = value in choices
    except TypeError:  # an unhashable or uncomparable value
        ok = False
    if not ok:
        raise ValueError(f"unknown {what} {value!r}; choose one of {', '.join(map(repr, choices))}{extra}")


def too_small(what: str, shape: tuple[int, ...], need: int, fix: str) -> ImageError:
    """The error for an image smaller than the layers in use accept (``need`` px on each side):
    ``"{what} is (H, W) px: too small for the layers in use, which need at least {need} px ..."``."""
    return ImageError(f"{what} is {tuple(shape)} px: too small for the layers in use, which need at least "
                      f"{need} px on each side (one halving per pooling before the deepest layer); {fix}")
