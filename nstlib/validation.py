"""The checks of :class:`nstlib.Transfer`'s fields: each turns a value into the one the spec keeps,
or raises a ``ValueError`` that names the parameter and the values it takes.

Kept apart from :mod:`nstlib.spec` (the dataclass and its derived values) so that both stay
short; :mod:`nstlib.spec` re-exports the public ones.
"""
from __future__ import annotations

import math
import numbers
import re
from collections.abc import Mapping, Sequence

import torch

from .errors import LayerError

__all__ = ["FLOAT32_MAX", "LBFGS_HISTORY", "TILED_LBFGS_HISTORY", "check_count", "check_weight", "check_lr",
           "layer_tuple", "scale_sides", "check_tile", "parse_memory"]

FLOAT32_MAX = float(torch.finfo(torch.float32).max)
#: L-BFGS's curvature pairs: torch.optim.LBFGS's default (as in the PyTorch tutorial), and the
#: short history of tiled stages, SciPy's L-BFGS-B default (``maxcor=10``): each pair is two
#: image-sized vectors, 24 bytes per pixel, so 100 pairs take 10 GB at 2048 x 2048 px, 10 pairs 1 GB.
LBFGS_HISTORY, TILED_LBFGS_HISTORY = 100, 10
_UNITS = {"": 1, "b": 1, "k": 10**3, "kb": 10**3, "m": 10**6, "mb": 10**6, "g": 10**9, "gb": 10**9,
          "t": 10**12, "tb": 10**12, "kib": 2**10, "mib": 2**20, "gib": 2**30, "tib": 2**40}


def check_count(name: str, value: object) -> int:
    """``value`` as a positive int (Python or numpy ints; not bools, floats or strings), else ValueError."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
        raise ValueError(f"{name} must be a positive whole number such as 100, got {value!r}")
    return int(value)


def check_weight(name: str, value: object) -> float:
    """A loss weight as a float: finite, >= 0 and finite in float32 (<= 3.4e38), else ValueError."""
    try:
        w = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a number >= 0, got {value!r}") from None
    if not (w >= 0 and w <= FLOAT32_MAX):
        raise ValueError(f"{name} must be a finite number >= 0 (at most {FLOAT32_MAX:.3g}, float32's "
                         f"largest: the loss is computed in float32), got {value!r}")
    return w


def check_lr(value: object) -> float:
    """A step size: a finite number > 0, else ValueError."""
    lr = float(value) if isinstance(value, numbers.Real) and not isinstance(value, bool) else None
    if lr is None or not (lr > 0 and math.isfinite(lr)):
        raise ValueError(f"lr must be a finite number > 0 (default 1.0 for lbfgs, 0.068 for adam), got {value!r}")
    return lr


def layer_tuple(name: str, layers: object) -> tuple[str, ...]:
    """A layer name or a sequence of names as a tuple of names, else ValueError / LayerError."""
    if isinstance(layers, str):
        return (layers,)
    if layers is None or isinstance(layers, (bytes, Mapping)) or not hasattr(layers, "__iter__"):
        raise ValueError(f"{name} must be a layer name such as 'relu4_2' or a list of names, got {layers!r}")
    out = tuple(layers)  # type: ignore[arg-type]
    if not all(isinstance(n, str) for n in out):
        raise LayerError(f"{name} must list layer names (strings) such as 'relu4_2', got {layers!r}")
    return out


def scale_sides(scales: int | Sequence[int], size: int) -> list[int]:
    """The longest side of every coarse-to-fine stage, ascending, ending at ``size``.

    ``scales=3`` with ``size=512`` -> ``[128, 256, 512]`` (octaves); a list is used as given
    (ascending, its last entry equal to ``size``).
    """
    if isinstance(scales, bool):
        raise ValueError(f"scales must be a number of octaves such as 3 or a list of sides, got {scales!r}")
    if isinstance(scales, numbers.Integral):
        n = check_count("scales", scales)
        return [max(1, round(size / 2 ** k)) for k in range(n - 1, -1, -1)]
    sides = [check_count("scales entry", s) for s in scales]  # type: ignore[union-attr]
    if not sides or any(a >= b for a, b in zip(sides, sides[1:])):
        raise ValueError(f"scales must be ascending image sides such as [128, 256, 512], got {scales!r}")
    if sides[-1] != size:
        raise ValueError(f"the last scale ({sides[-1]}) must equal size ({size}); leave size out or match them")
    return sides


def check_tile(tile: object) -> int | str | None:
    """``tile``: None (untiled), a core side in px (a whole number >= 16, VGG's total stride at
    relu5_1) or ``"auto"`` (the side that fits ``max_memory``), else ValueError."""
    if tile is None or (isinstance(tile, str) and tile == "auto"):
        return tile
    if isinstance(tile, bool) or not isinstance(tile, numbers.Integral) or tile < 16:
        raise ValueError(f"tile must be None (untiled), a tile side in px of at least 16 such as 512, or "
                         f"'auto' (tiles that fit max_memory), got {tile!r}")
    return int(tile)


def parse_memory(value: object, name: str = "max_memory") -> int | None:
    """A memory size in bytes: None, a positive number of bytes, or a string such as ``"3GB"``,
    ``"512 MB"``, ``"1.5GiB"`` (k/M/G/T: powers of 1000; KiB/MiB/GiB/TiB: of 1024), else ValueError."""
    if value is None:
        return None
    if isinstance(value, str):
        m = re.fullmatch(r"\s*([0-9]*\.?[0-9]+(?:e[0-9]+)?)\s*([a-z]*)\s*", value.lower())
        if m and m.group(2) in _UNITS:
            value = float(m.group(1)) * _UNITS[m.group(2)]
        else:
            raise ValueError(f"{name} must be a number of bytes or a size such as '3GB', '512MB' or "
                             f"'1.5GiB', got {value!r}")
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(value) \
            or value < 1:
        raise ValueError(f"{name} must be a positive number of bytes or a size such as '3GB', got {value!r}")
    return int(value)
