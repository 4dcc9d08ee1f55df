"""Memory of the VGG pass: gradient checkpointing, and the activation memory per pixel.

:func:`checkpointed` trades time for memory without changing any value: the backward pass
recomputes each segment's activations instead of keeping them (``torch.utils.checkpoint``,
non-reentrant). :func:`bytes_per_pixel` estimates what one pass keeps, for choosing tile sizes
(:mod:`nstlib.tiling`).
"""
from __future__ import annotations

import copy
from collections import OrderedDict
from collections.abc import Sequence

import torch
from torch import nn
from torch.utils.checkpoint import checkpoint

from .vgg import VGGFeatures

__all__ = ["checkpointed", "bytes_per_pixel"]


def bytes_per_pixel(ext: VGGFeatures, layers: Sequence[str], grad: bool = True,
                    after: str | None = None) -> float:
    """Estimated activation memory per input pixel of one pass of ``ext`` up to ``layers``' deepest.

    With every layer's output ``C/s^2`` floats per pixel (``s``: its stride): ``grad=True`` counts
    each output once (kept for the backward pass) plus twice the largest (the backward's gradient
    buffers); ``grad=False`` twice the largest (one layer's input and output) plus the tapped
    outputs. float32: 4 bytes per float. VGG19 to relu5_1: 2.95 KB (grad) and 1.03 KB per pixel.
    ``after``: a pass that starts from that layer's output (:meth:`VGGFeatures.resume`), which it
    counts as kept; VGG19 from pool3 to relu5_1 with gradients: 0.36 KB per pixel.
    For a :func:`checkpointed` extractor it is the plain network's estimate (an upper bound).
    """
    mods = list(_modules(ext))
    deepest = max(i for i, (name, _) in enumerate(mods) if name in layers)
    first = 0 if after is None else [name for name, _ in mods].index(after)
    ch, s, outs = 3, 1, []
    for i, (name, m) in enumerate(mods[:deepest + 1]):
        ch = m.out_channels if isinstance(m, nn.Conv2d) else ch
        s = 2 * s if isinstance(m, (nn.MaxPool2d, nn.AvgPool2d)) else s
        if i >= first:
            outs.append((name, ch / s ** 2))
    big = 2 * max(v for _, v in outs)
    return 4.0 * (big + sum(v for n, v in outs if grad or n in layers))


def _modules(ext: VGGFeatures):
    """``(name, module)`` of every VGG layer of ``ext``'s body, a checkpointed one's segments
    opened (a segment is named after its last layer; the others inside it get None)."""
    for name, m in ext.body.named_children():
        if isinstance(m, _Segment):
            inner = list(m.seq)
            yield from ((None, k) for k in inner[:-1])
            yield name, inner[-1]
        else:
            yield name, m


class _Segment(nn.Module):
    """Consecutive VGG modules run under gradient checkpointing (recomputed in the backward pass)."""

    def __init__(self, modules: list[nn.Module]) -> None:
        super().__init__()
        self.seq = nn.Sequential(*modules)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if torch.is_grad_enabled() and x.requires_grad:
            return checkpoint(self.seq, x, use_reentrant=False)
        return self.seq(x)


def checkpointed(ext: VGGFeatures) -> VGGFeatures:
    """The same extractor (weights shared, ``ext`` untouched) with gradient checkpointing: its body
    is cut into segments ending at each tapped layer and each pooling; only the segments' outputs
    are kept for the backward pass, which recomputes the rest. Use it in place of ``ext``, e.g.
    ``Objective(checkpointed(ext), ...)``; it returns the same taps (``ext.layers``)."""
    segments, group = [], []
    for name, m in ext.body.named_children():
        group.append(m)
        if name in ext.layers or isinstance(m, (nn.MaxPool2d, nn.AvgPool2d)):
            segments.append((name, _Segment(group)))
            group = []
    ck = copy.copy(ext)
    ck._modules = type(ext._modules)(ext._modules)  # its own module table: ext keeps its body
    ck.body = nn.Sequential(OrderedDict(segments))
    return ck
