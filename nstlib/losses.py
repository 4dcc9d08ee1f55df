"""The three terms of the objective: content, style (Gram matrices) and total variation.

Conventions (the PyTorch neural-transfer tutorial's and d2l's): features come from an input in
[0, 1] normalized with ImageNet mean/std; Gram matrices are divided by C*H*W; errors are means.
"""
from __future__ import annotations

from collections.abc import Mapping

import torch
import torch.nn.functional as F

from .errors import check_choice

__all__ = ["gram_matrix", "content_loss", "style_loss", "tv_loss", "REDUCTIONS"]

#: ``"mean"``: one scalar for the whole batch (the mean over every element); ``"none"``: one value
#: per image, shape [B] (the mean over each image's elements). For a batch of one they agree.
REDUCTIONS = ("mean", "none")


def _reduce(err: torch.Tensor, reduction: str) -> torch.Tensor:
    check_choice("reduction", reduction, REDUCTIONS)
    return err.mean() if reduction == "mean" else err.flatten(1).mean(dim=1)


def _flat(t: torch.Tensor) -> torch.Tensor:
    """``t`` as a vector, a view where its memory is dense (contiguous or channels-last)."""
    if t.dim() == 4 and t.is_contiguous(memory_format=torch.channels_last):
        return t.permute(0, 2, 3, 1).reshape(-1)
    return t.reshape(-1)


class _MeanSquaredError(torch.autograd.Function):
    r"""mean((x - t)^2) as one subtraction and one ``dot`` forward, with the backward
    dL/dx = 2 (x - t) g / N as one subtraction and one in-place scaling (``F.mse_loss``'s backward
    was measurably slower on the CPU: docs/benchmarks.md, "Speed round three"). The backward is made
    of differentiable operations, so a second derivative works too."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, target: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        ctx.save_for_backward(x, target)
        d = _flat(x - target)
        return torch.dot(d, d) / d.numel()

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:  # type: ignore[override]
        x, target = ctx.saved_tensors
        gx = (x - target).mul_(grad * (2.0 / x.numel()))
        return gx, (-gx if ctx.needs_input_grad[1] else None)


def _mse(x: torch.Tensor, target: torch.Tensor, reduction: str) -> torch.Tensor:
    """Mean squared error of ``x`` against ``target`` (broadcast over the batch): ``"mean"`` by
    :class:`_MeanSquaredError`, ``"none"`` by the fused ``mse_loss`` kernel, reduced per image."""
    target = target.expand_as(x)
    if reduction == "mean":
        return _MeanSquaredError.apply(x, target)
    return _reduce(F.mse_loss(x, target, reduction="none"), reduction)


def _gram_operand(features: torch.Tensor) -> tuple[torch.Tensor, bool]:
    """``features`` [B, C, H, W] as a matrix without a copy where possible: [B, H*W, C] (an NHWC
    view, ``True``) for channels-last features (a spatial window of them: an NHWC copy), else
    [B, C, H*W] (``False``)."""
    b, c, h, w = features.shape
    if c > 1 and features.stride(1) == 1:  # channels innermost: channels-last, or a window of it
        return features.permute(0, 2, 3, 1).reshape(b, h * w, c), True
    return features.reshape(b, c, h * w), False


class _Gram(torch.autograd.Function):
    r"""G = F F^T / N with the symmetric backward dL/dF = (Ḡ + Ḡ^T) F / N: one ``bmm`` (autograd
    of ``bmm(F, F^T)`` takes two and adds their results), the 1/N applied to the small C x C
    matrix, and the gradient returned in the features' own memory layout. The backward is made of
    differentiable operations, so a second derivative works too."""

    @staticmethod
    def forward(ctx, features: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        b, c, h, w = features.shape
        f, nhwc = _gram_operand(features)
        ctx.save_for_backward(features)
        g = torch.bmm(f.transpose(1, 2), f) if nhwc else torch.bmm(f, f.transpose(1, 2))
        return g.div_(c * h * w)

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        (features,) = ctx.saved_tensors
        b, c, h, w = features.shape
        f, nhwc = _gram_operand(features)
        sym = (grad + grad.transpose(1, 2)) / (c * h * w)  # [B, C, C]
        if nhwc:  # [B, H*W, C] @ [B, C, C] = (sym F)^T laid out as NHWC: the features' layout
            return torch.bmm(f, sym).view(b, h, w, c).permute(0, 3, 1, 2)
        return torch.bmm(sym, f).view(b, c, h, w)


def gram_matrix(features: torch.Tensor) -> torch.Tensor:
    r"""Channel correlations of a feature map.

    .. math:: G_{ij} = \frac{1}{C H W} \sum_k F_{ik} F_{jk}

    with :math:`F` the features reshaped to [C, H*W]. Its gradient is computed in one matrix
    product, :math:`\partial L / \partial F = (\bar G + \bar G^T) F / (C H W)` with
    :math:`\bar G = \partial L / \partial G`; channels-last features are read as an NHWC view,
    without a copy.

    Args:
        features: [B, C, H, W].

    Returns:
        [B, C, C], symmetric and positive semi-definite.
    """
    if features.dim() != 4:
        raise ValueError(f"gram_matrix expects features of shape [B, C, H, W], got {tuple(features.shape)}")
    return _Gram.apply(features)


def content_loss(features: torch.Tensor, target: torch.Tensor, *, reduction: str = "mean") -> torch.Tensor:
    r"""Mean squared error between features and target features.

    .. math:: \mathcal{L}_{content} = \frac{1}{N} \sum (F - P)^2

    Args:
        features: [B, C, H, W]; target: the same shape, or [1, C, H, W] (shared by the batch).
        reduction: ``"mean"`` (a scalar) or ``"none"`` (one loss per image, [B]).

    Returns:
        A scalar tensor, or [B] with ``reduction="none"``.
    """
    if features.shape[1:] != target.shape[1:] or target.shape[0] not in (1, features.shape[0]):
        raise ValueError(f"content_loss: features {tuple(features.shape)} and target "
                         f"{tuple(target.shape)} differ; make the image the content's size")
    return _mse(features, target, reduction)


def style_loss(features: Mapping[str, torch.Tensor], target_grams: Mapping[str, torch.Tensor],
               layer_weights: Mapping[str, float] | None = None, *, reduction: str = "mean") -> torch.Tensor:
    r"""Weighted sum over layers of the mean squared error between Gram matrices.

    .. math:: \mathcal{L}_{style} = \sum_l w_l \, \frac{1}{C_l^2} \sum_{ij} (G^l_{ij} - A^l_{ij})^2

    Args:
        features: ``{layer: Tensor[B, C_l, H_l, W_l]}`` of the image being optimized.
        target_grams: ``{layer: Tensor[B or 1, C_l, C_l]}``, the style's Gram matrices; only these
            layers count.
        layer_weights: ``{layer: w_l}``; missing layers (or ``None``) weigh 1.
        reduction: ``"mean"`` (a scalar) or ``"none"`` (one loss per image, [B]).

    Returns:
        A scalar tensor, or [B] with ``reduction="none"``.
    """
    weights = layer_weights or {}
    total = None
    for name, target in target_grams.items():
        if name not in features:
            raise KeyError(f"style_loss: no features for layer {name!r}; extract it too")
        term = weights.get(name, 1.0) * _mse(gram_matrix(features[name]), target, reduction)
        total = term if total is None else total + term
    if total is None:
        raise ValueError("style_loss: target_grams is empty; give at least one style layer")
    return total


def tv_loss(img: torch.Tensor, *, reduction: str = "mean") -> torch.Tensor:
    r"""Total variation (anisotropic, L1, as in d2l): half the sum of the mean absolute differences
    between vertical and between horizontal neighbours.

    .. math:: \mathcal{L}_{tv} = \tfrac12 \left( \operatorname{mean}|x_{i+1,j} - x_{i,j}|
              + \operatorname{mean}|x_{i,j+1} - x_{i,j}| \right)

    Args:
        img: [B, C, H, W] with H, W >= 2.
        reduction: ``"mean"`` (a scalar) or ``"none"`` (one value per image, [B]).

    Returns:
        A scalar tensor (or [B]); 0 for a constant image.
    """
    dh = _reduce((img[:, :, 1:, :] - img[:, :, :-1, :]).abs(), reduction)
    dw = _reduce((img[:, :, :, 1:] - img[:, :, :, :-1]).abs(), reduction)
    return 0.5 * (dh + dw)
