"""The three terms of the objective: content, style (Gram matrices) and total variation.

Conventions (the PyTorch neural-transfer tutorial's and d2l's): features come from an input in
[0, 1] normalized with ImageNet mean/std; Gram matrices are divided by C*H*W; errors are means.
"""
from __future__ import annotations

from typing import Mapping

import torch

from .errors import check_choice

__all__ = ["gram_matrix", "content_loss", "style_loss", "tv_loss", "REDUCTIONS"]

#: ``"mean"``: one scalar for the whole batch (the mean over every element); ``"none"``: one value
#: per image, shape [B] (the mean over each image's elements). For a batch of one they agree.
REDUCTIONS = ("mean", "none")


def _reduce(err: torch.Tensor, reduction: str) -> torch.Tensor:
    check_choice("reduction", reduction, REDUCTIONS)
    return err.mean() if reduction == "mean" else err.flatten(1).mean(dim=1)


def gram_matrix(features: torch.Tensor) -> torch.Tensor:
    r"""Channel correlations of a feature map.

    .. math:: G_{ij} = \frac{1}{C H W} \sum_k F_{ik} F_{jk}

    with :math:`F` the features reshaped to [C, H*W].

    Args:
        features: [B, C, H, W].

    Returns:
        [B, C, C], symmetric and positive semi-definite.
    """
    if features.dim() != 4:
        raise ValueError(f"gram_matrix expects features of shape [B, C, H, W], got {tuple(features.shape)}")
    b, c, h, w = features.shape
    if c > 1 and features.is_contiguous(memory_format=torch.channels_last):
        f = features.permute(0, 2, 3, 1).reshape(b, h * w, c)  # a view: no copy for NHWC features
        return torch.bmm(f.transpose(1, 2), f) / (c * h * w)
    f = features.reshape(b, c, h * w)
    return torch.bmm(f, f.transpose(1, 2)) / (c * h * w)


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
    return _reduce((features - target) ** 2, reduction)


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
        term = weights.get(name, 1.0) * _reduce((gram_matrix(features[name]) - target) ** 2, reduction)
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
