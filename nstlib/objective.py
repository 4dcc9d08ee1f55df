r"""The objective of style transfer, with its targets computed once.

.. math:: \mathcal{L}(x) = \alpha\,\mathcal{L}_{content}(x) + \beta\,\mathcal{L}_{style}(x)
          + \gamma\,\mathcal{L}_{tv}(x)
"""
from __future__ import annotations

from typing import Mapping, Sequence

import torch

from .losses import content_loss, gram_matrix, style_loss, tv_loss
from .vgg import VGGFeatures

__all__ = ["Objective"]


class Objective:
    """``alpha * content + beta * style + gamma * tv`` with its targets computed once.

    Calling it on an image [1, 3, H, W] in [0, 1] returns scalar tensors
    ``{"total", "content", "style", "tv"}`` (the last three unweighted).
    """

    def __init__(self, extractor: VGGFeatures, content: torch.Tensor | None, style: torch.Tensor | None,
                 content_layers: Sequence[str], style_layers: Sequence[str],
                 content_weight: float, style_weight: float, tv_weight: float,
                 style_layer_weights: Mapping[str, float] | None = None) -> None:
        self.ext = extractor
        self.weights = (float(content_weight), float(style_weight), float(tv_weight))
        self.content_layers = list(content_layers) if content is not None and content_weight else []
        self.style_layers = list(style_layers) if style is not None and style_weight else []
        self.style_layer_weights = dict(style_layer_weights or {})
        with torch.no_grad():
            self.content_targets = (extractor(content, self.content_layers) if self.content_layers else {})
            feats = extractor(style, self.style_layers) if self.style_layers else {}
            self.style_grams = {name: gram_matrix(f) for name, f in feats.items()}
        self.layers = list(dict.fromkeys(self.content_layers + self.style_layers))

    def __call__(self, img: torch.Tensor) -> dict[str, torch.Tensor]:
        alpha, beta, gamma = self.weights
        feats = self.ext(img, self.layers) if self.layers else {}
        zero = img.new_zeros(())
        c = sum((content_loss(feats[n], t) for n, t in self.content_targets.items()), zero)
        s = style_loss(feats, self.style_grams, self.style_layer_weights) if self.style_grams else zero
        tv = tv_loss(img) if gamma else zero
        return {"total": alpha * c + beta * s + gamma * tv, "content": c, "style": s, "tv": tv}
