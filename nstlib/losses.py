"""The three terms of the objective: content, style (Gram matrices) and total variation.

Conventions (the PyTorch neural-transfer tutorial's and d2l's): features come from an input in
[0, 1] normalized with ImageNet mean/std; Gram matrices are divided by C*H*W; errors are means.
"""
from __future__ import annotations

from typing import Mapping

import torch

__all__ = ["gram_matrix", "content_loss", "style_loss", "tv_loss"]


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
    f = features.reshape(b, c, h * w)
    return torch.bmm(f, f.transpose(1, 2)) / (c * h * w)


def content_loss(features: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    r"""Mean squared error between features and target features (same shape [B, C, H, W]).

    .. math:: \mathcal{L}_{content} = \frac{1}{N} \sum (F - P)^2

    Returns:
        A scalar tensor.
    """
    if features.shape != target.shape:
        raise ValueError(f"content_loss: features {tuple(features.shape)} and target "
                         f"{tuple(target.shape)} differ; make the image the content's size")
    return torch.mean((features - target) ** 2)


def style_loss(features: Mapping[str, torch.Tensor], target_grams: Mapping[str, torch.Tensor],
               layer_weights: Mapping[str, float] | None = None) -> torch.Tensor:
    r"""Weighted sum over layers of the mean squared error between Gram matrices.

    .. math:: \mathcal{L}_{style} = \sum_l w_l \, \frac{1}{C_l^2} \sum_{ij} (G^l_{ij} - A^l_{ij})^2

    Args:
        features: ``{layer: Tensor[B, C_l, H_l, W_l]}`` of the image being optimized.
        target_grams: ``{layer: Tensor[B or 1, C_l, C_l]}``, the style's Gram matrices; only these
            layers count.
        layer_weights: ``{layer: w_l}``; missing layers (or ``None``) weigh 1.

    Returns:
        A scalar tensor.
    """
    weights = layer_weights or {}
    total = None
    for name, target in target_grams.items():
        if name not in features:
            raise KeyError(f"style_loss: no features for layer {name!r}; extract it too")
        term = weights.get(name, 1.0) * torch.mean((gram_matrix(features[name]) - target) ** 2)
        total = term if total is None else total + term
    if total is None:
        raise ValueError("style_loss: target_grams is empty; give at least one style layer")
    return total


def tv_loss(img: torch.Tensor) -> torch.Tensor:
    r"""Total variation (anisotropic, L1, as in d2l): half the sum of the mean absolute differences
    between vertical and between horizontal neighbours.

    .. math:: \mathcal{L}_{tv} = \tfrac12 \left( \operatorname{mean}|x_{i+1,j} - x_{i,j}|
              + \operatorname{mean}|x_{i,j+1} - x_{i,j}| \right)

    Args:
        img: [B, C, H, W] with H, W >= 2.

    Returns:
        A scalar tensor; 0 for a constant image.
    """
    dh = (img[:, :, 1:, :] - img[:, :, :-1, :]).abs().mean()
    dw = (img[:, :, :, 1:] - img[:, :, :, :-1]).abs().mean()
    return 0.5 * (dh + dw)
