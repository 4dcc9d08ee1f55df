r"""Spatial control (Gatys et al., CVPR 2017, "Controlling perceptual factors in neural style
transfer"): a style applied only inside a mask, optionally a second style outside it.

A mask :math:`m` ([1, 1, H, W] in [0, 1], 1 = inside) is downsampled to each layer's resolution
by area averaging (each feature position gets the fraction of its cell that lies inside), and
the Gram matrix only sums over the positions it selects:

.. math:: G^{m}_{ij} = \frac{1}{C \sum_k m_k} \sum_k m_k F_{ik} F_{jk}

Normalization: by :math:`C \sum_k m_k` instead of :math:`C H W`, so an all-ones mask gives
exactly :func:`nstlib.gram_matrix`, and a region's Gram does not shrink with its area (a
texture's statistics do not depend on how much of the picture it covers).

Positions with :math:`m_k = 0` do not enter the loss at all. In pixel terms this holds up to the
receptive field: a pixel outside the mask still moves the features of nearby positions inside it.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import torch
import torch.nn.functional as F

from .errors import ImageError, check_choice
from .image import ImageSource, load_image

__all__ = ["load_mask", "shape_mask", "MASK_SHAPES", "downsample_mask", "masked_gram_matrix", "masked_style_loss"]

ASPECT_TOLERANCE = 0.03
MASK_SHAPES = ("none", "left half", "right half", "top half", "bottom half", "centre")


def _name(src: object) -> str:
    if isinstance(src, (str, Path)):
        return f"mask {str(src)!r}"
    shape = getattr(src, "shape", None)
    return f"the mask {type(src).__name__}" + (f" of shape {tuple(shape)}" if shape is not None else "")


def shape_mask(shape: str, height: int, width: int) -> torch.Tensor | None:
    """A [1, 1, height, width] mask in {0, 1} for one of :data:`MASK_SHAPES` (None for ``"none"``).

    ``"centre"`` is the ellipse inscribed in the middle half of the image in each direction.
    """
    check_choice("mask shape", shape, MASK_SHAPES)
    if shape == "none":
        return None
    y = (torch.arange(height, dtype=torch.float32) + 0.5) / height
    x = (torch.arange(width, dtype=torch.float32) + 0.5) / width
    yy, xx = torch.meshgrid(y, x, indexing="ij")
    inside = {"left half": xx < 0.5, "right half": xx >= 0.5, "top half": yy < 0.5, "bottom half": yy >= 0.5,
              "centre": ((xx - 0.5) / 0.25) ** 2 + ((yy - 0.5) / 0.25) ** 2 <= 1}[shape]
    return inside.float()[None, None]


def load_mask(src: ImageSource, shape: Sequence[int], device: str | torch.device | None = None
              ) -> torch.Tensor:
    """Load a mask and resize it to ``shape`` (H, W), the content's size.

    Args:
        src: anything :func:`nstlib.load_image` reads (a black-and-white image file, a PIL image),
            or an array / tensor [H, W] (bool, or float in [0, 1]). Colour images are averaged
            over channels; white (1) marks the inside.
        shape: (H, W) of the content image.

    Returns:
        [1, 1, H, W] float32 in [0, 1].

    Raises:
        ImageError: unreadable, selects no pixel, or its aspect ratio differs from the content's
            (it would be stretched); the message names the mask.
    """
    name = _name(src)
    if isinstance(src, torch.Tensor) and src.dim() == 4 and src.shape[:2] == (1, 1):
        src = src[0, 0]
    try:
        img = load_image(src, device=device)
    except ImageError as e:
        raise ImageError(f"{name} could not be used: {e}") from None
    h, w = img.shape[-2:]
    if abs((h / w) / (shape[0] / shape[1]) - 1) > ASPECT_TOLERANCE:
        raise ImageError(f"{name} is {h}x{w} px but the content is {shape[0]}x{shape[1]}: the aspect "
                         "ratios differ, so the mask would be stretched; make it the content's shape")
    mask = F.interpolate(img.mean(dim=1, keepdim=True), size=tuple(shape), mode="area")
    if float(mask.max()) <= 0:
        raise ImageError(f"{name} selects no pixel (all black/zero); white (1) marks where the "
                         "style goes")
    return mask.clamp(0, 1)


def downsample_mask(mask: torch.Tensor, size: Sequence[int]) -> torch.Tensor:
    """[B, 1, H, W] -> [B, 1, h, w] by area averaging (the fraction of each cell inside the mask)."""
    if tuple(mask.shape[-2:]) == tuple(size):
        return mask
    return F.interpolate(mask, size=tuple(size), mode="area")


def masked_gram_matrix(features: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    r""":math:`G^m_{ij} = \sum_k m_k F_{ik} F_{jk} / (C \sum_k m_k)`.

    Args:
        features: [B, C, H, W].
        mask: [B or 1, 1, H, W] in [0, 1] at the features' resolution (see :func:`downsample_mask`).

    Returns:
        [B, C, C]; equal to :func:`nstlib.gram_matrix` for an all-ones mask, zero for an empty one.
    """
    if features.dim() != 4 or mask.dim() != 4 or mask.shape[-2:] != features.shape[-2:]:
        raise ValueError(f"masked_gram_matrix: features {tuple(features.shape)} and mask "
                         f"{tuple(mask.shape)} must be [B, C, H, W] and [B, 1, H, W] with the same H, W")
    b, c, h, w = features.shape
    f = features.reshape(b, c, h * w)
    m = mask.reshape(mask.shape[0], 1, h * w).to(f.dtype)
    area = m.sum(dim=2, keepdim=True).clamp_min(1e-8)
    return torch.bmm(f * m, f.transpose(1, 2)) / (c * area)


def masked_style_loss(features: Mapping[str, torch.Tensor], target_grams: Mapping[str, torch.Tensor],
                      mask: torch.Tensor, layer_weights: Mapping[str, float] | None = None) -> torch.Tensor:
    r"""The style loss restricted to a mask:
    :math:`\sum_l w_l \frac{1}{C_l^2}\sum_{ij}(G^{m,l}_{ij} - A^l_{ij})^2`.

    Args:
        features: ``{layer: [B, C_l, H_l, W_l]}`` of the image being optimized.
        target_grams: ``{layer: [B or 1, C_l, C_l]}``; only these layers count.
        mask: [1, 1, H, W] at image resolution; downsampled to each layer.
        layer_weights: ``{layer: w_l}`` (default 1). A layer where the downsampled mask is empty
            adds nothing.

    Returns:
        A scalar tensor.
    """
    weights = layer_weights or {}
    total = mask.new_zeros(())
    for name, target in target_grams.items():
        if name not in features:
            raise KeyError(f"masked_style_loss: no features for layer {name!r}; extract it too")
        m = downsample_mask(mask, features[name].shape[-2:])
        if float(m.sum()) > 0:
            diff = masked_gram_matrix(features[name], m) - target
            total = total + weights.get(name, 1.0) * torch.mean(diff ** 2)
    return total
