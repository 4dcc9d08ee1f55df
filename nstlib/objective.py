r"""The objective of style transfer, with its targets computed once.

.. math:: \mathcal{L}(x) = \alpha\,\mathcal{L}_{content}(x) + \beta\,\mathcal{L}_{style}(x)
          + \gamma\,\mathcal{L}_{tv}(x)
"""
from __future__ import annotations

from typing import Mapping, Sequence

import torch

from .losses import content_loss, style_loss, tv_loss
from .masks import masked_style_loss
from .styles import as_list, target_grams
from .vgg import VGGFeatures

__all__ = ["Objective"]


class Objective:
    """``alpha * content + beta * style + gamma * tv`` with its targets computed once.

    Calling it on an image [1, 3, H, W] in [0, 1] returns scalar tensors
    ``{"total", "content", "style", "tv"}`` (the last three unweighted).

    ``style`` may be one image or a list blended with ``style_blend`` (:mod:`nstlib.styles`). With a
    ``mask`` [1, 1, H, W] the style term uses masked Gram matrices inside it, plus
    ``style_outside``'s (if given) with ``1 - mask`` (:mod:`nstlib.masks`).
    """

    def __init__(self, extractor: VGGFeatures, content: torch.Tensor | None, style: torch.Tensor | None,
                 content_layers: Sequence[str], style_layers: Sequence[str],
                 content_weight: float, style_weight: float, tv_weight: float,
                 style_layer_weights: Mapping[str, float] | None = None, *,
                 style_blend: Sequence[float] | None = None, mask: torch.Tensor | None = None,
                 style_outside: torch.Tensor | None = None) -> None:
        self.ext = extractor
        self.weights = (float(content_weight), float(style_weight), float(tv_weight))
        self.content_layers = list(content_layers) if content is not None and content_weight else []
        self.style_layers = list(style_layers) if style is not None and style_weight else []
        self.style_layer_weights = dict(style_layer_weights or {})
        with torch.no_grad():
            self.content_targets = (extractor(content, self.content_layers) if self.content_layers else {})
            self.style_grams = (target_grams(extractor, as_list(style), self.style_layers, style_blend)
                                if self.style_layers else {})
            self.outside_grams = (target_grams(extractor, as_list(style_outside), self.style_layers)
                                  if self.style_layers and style_outside is not None else {})
        self.mask = mask
        self.layers = list(dict.fromkeys(self.content_layers + self.style_layers))

    def __call__(self, img: torch.Tensor) -> dict[str, torch.Tensor]:
        alpha, beta, gamma = self.weights
        feats = self.ext(img, self.layers) if self.layers else {}
        zero = img.new_zeros(())
        c = sum((content_loss(feats[n], t) for n, t in self.content_targets.items()), zero)
        s = zero
        if self.style_grams and self.mask is None:
            s = style_loss(feats, self.style_grams, self.style_layer_weights)
        elif self.style_grams:
            s = masked_style_loss(feats, self.style_grams, self.mask, self.style_layer_weights)
            if self.outside_grams:
                s = s + masked_style_loss(feats, self.outside_grams, 1 - self.mask, self.style_layer_weights)
        tv = tv_loss(img) if gamma else zero
        return {"total": alpha * c + beta * s + gamma * tv, "content": c, "style": s, "tv": tv}
