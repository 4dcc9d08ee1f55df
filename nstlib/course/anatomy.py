r"""The anatomy of VGG: each layer's output shape, stride and receptive field, and its feature maps as images.

Receptive field: a layer with kernel :math:`k` and stride :math:`s`, applied to a map whose cells are
:math:`j_{in}` input pixels apart ("jump") and each see :math:`r_{in}` pixels, gives

.. math:: r_{out} = r_{in} + (k - 1)\, j_{in}, \qquad j_{out} = j_{in}\, s

starting from the image itself (:math:`r = j = 1`). A 3x3 convolution (stride 1) widens the view by
:math:`2 j`; a 2x2 pooling (stride 2) by :math:`j`, and doubles the jump.
"""
from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import torch

from ..vgg import WIDTHS, check_layers, layer_names

__all__ = ["LayerInfo", "layer_ops", "receptive_field", "layer_table", "format_layer_table",
           "feature_images"]


@dataclass(frozen=True)
class LayerInfo:
    """One row of :func:`layer_table`: the tap ``name`` and its output for a given input size.

    ``shape`` is (C, H, W); ``stride`` (the jump) is how many input pixels apart neighbouring
    cells are; ``receptive_field`` is the side of the input square one cell depends on.
    """

    name: str
    kind: str
    shape: tuple[int, int, int]
    stride: int
    receptive_field: int


#: (kernel, stride) of each kind of VGG layer: padded 3x3 convolution, ReLU, 2x2 pooling.
_OPS = {"conv": (3, 1), "relu": (1, 1), "pool": (2, 2)}


def _kind(name: str) -> str:
    return "".join(c for c in name.split("_")[0] if c.isalpha())


def layer_ops(arch: str = "vgg19", upto: str | None = None) -> list[tuple[int, int]]:
    """``(kernel, stride)`` of every layer of ``arch`` from the input up to and including ``upto``.

    3x3 convolutions are ``(3, 1)``, ReLUs ``(1, 1)`` and poolings ``(2, 2)``.
    """
    names = layer_names(arch)
    if upto is not None:
        check_layers([upto], arch)
        names = names[:names.index(upto) + 1]
    return [_OPS[_kind(n)] for n in names]


def receptive_field(ops: Iterable[tuple[int, int]]) -> int:
    """Side (pixels) of the input square that one output cell of the stack ``ops`` sees.

    Args:
        ops: ``(kernel, stride)`` per layer, input first (e.g. :func:`layer_ops`).
    """
    r, j = 1, 1
    for k, s in ops:
        r, j = r + (k - 1) * j, j * s
    return r


def layer_table(arch: str = "vgg19", size: int | tuple[int, int] = 224,
                layers: Sequence[str] | None = None) -> list[LayerInfo]:
    """Shape, stride and receptive field of each tap for an input of ``size`` (int: square; (H, W)).

    Computed from the architecture alone (no weights, no forward pass): padded 3x3 convolutions
    keep H and W, each 2x2 pooling halves them (rounding down).
    """
    h, w = (size, size) if isinstance(size, int) else (int(size[0]), int(size[1]))
    want = set(check_layers(layers, arch)) if layers is not None else None
    ops = layer_ops(arch)
    rows, c, stride = [], 3, 1
    for i, name in enumerate(layer_names(arch)):
        kind = _kind(name)
        stride *= ops[i][1]
        if kind == "conv":
            c = WIDTHS[int(name[4]) - 1]  # conv{b}_{i}: block b's width
        elif kind == "pool":
            h, w = h // 2, w // 2
        if want is None or name in want:
            rows.append(LayerInfo(name, kind, (c, h, w), stride, receptive_field(ops[:i + 1])))
    return rows


def format_layer_table(rows: Sequence[LayerInfo]) -> str:
    """A fixed-width text table of :func:`layer_table` rows (one line per layer)."""
    lines = [f"{'layer':<8} {'output C x H x W':>18} {'stride':>7} {'receptive field':>16}"]
    for row in rows:
        c, h, w = row.shape
        lines.append(f"{row.name:<8} {f'{c} x {h} x {w}':>18} {row.stride:>7} "
                     f"{f'{row.receptive_field} x {row.receptive_field}':>16}")
    return "\n".join(lines)


def feature_images(features: torch.Tensor, n: int = 8, channels: Sequence[int] | None = None
                   ) -> list[torch.Tensor]:
    """Channels of a feature map as grey images, each rescaled to [0, 1] on its own.

    Args:
        features: [1, C, H, W] (or [C, H, W]) activations of one layer.
        n: how many channels when ``channels`` is None: the ``n`` most active (largest mean),
            most active first -- with ReLU features many channels are zero on a given image.
        channels: explicit channel indices instead.

    Returns:
        A list of [H, W] CPU tensors in [0, 1] (ready for :func:`nstlib.show`).
    """
    f = features.detach().float().cpu()
    if f.dim() == 4:
        if f.shape[0] != 1:
            raise ValueError(f"feature_images takes one image's features, got a batch of {f.shape[0]}")
        f = f[0]
    if f.dim() != 3:
        raise ValueError(f"feature_images expects [1, C, H, W] or [C, H, W], got {tuple(features.shape)}")
    if channels is None:
        if n < 1:
            raise ValueError(f"n must be a positive int, got {n!r}")
        channels = f.mean(dim=(1, 2)).argsort(descending=True)[:n].tolist()
    out = []
    for ch in channels:
        if not 0 <= ch < f.shape[0]:
            raise ValueError(f"channel {ch} does not exist: this layer has {f.shape[0]} channels")
        m = f[ch]
        lo, hi = m.min(), m.max()
        out.append((m - lo) / (hi - lo) if hi > lo else torch.zeros_like(m))
    return out
