r"""The objective of style transfer, with its targets computed once.

.. math:: \mathcal{L}(x) = \alpha\,\mathcal{L}_{content}(x) + \beta\,\mathcal{L}_{style}(x)
          + \gamma\,\mathcal{L}_{tv}(x)
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Union

import torch

from .losses import content_loss, style_loss, tv_loss
from .masks import masked_style_loss
from .styles import as_list, target_grams
from .vgg import VGGFeatures

__all__ = ["Objective"]

#: A loss weight: one number, or one per image of a batch (:func:`nstlib.sweep`).
Weight = Union[float, Sequence[float]]


def _weight(w: float | Sequence[float] | torch.Tensor, device: torch.device) -> float | torch.Tensor:
    """A number stays a float; a sequence becomes a [B] tensor of per-image weights."""
    t = torch.as_tensor(w, dtype=torch.float32)
    return float(t) if t.dim() == 0 else t.reshape(-1).to(device)


class Objective:
    """``alpha * content + beta * style + gamma * tv`` with its targets computed once.

    Calling it on an image [1, 3, H, W] in [0, 1] returns scalar tensors
    ``{"total", "content", "style", "tv"}`` (the last three unweighted). The engine calls
    :meth:`loss_and_grad` instead, which also back-propagates.

    ``style`` may be one image or a list blended with ``style_blend`` (:mod:`nstlib.styles`). With a
    ``mask`` [1, 1, H, W] the style term uses masked Gram matrices inside it, plus
    ``style_outside``'s (if given) with ``1 - mask`` (:mod:`nstlib.masks`). With
    ``style_per_image=True`` (:func:`nstlib.gallery.gallery`), ``style`` is a list of B images and
    image b of the batch is compared with style b alone: the targets are [B, C, C].

    Live weights: :meth:`set_weights` changes alpha, beta, gamma or the per-layer style weights
    and keeps the targets (a term switched on for the first time gets its targets then).

    Per-image weights (:func:`nstlib.sweep`): when a weight is a sequence of B values, the image is
    a batch [B, 3, H, W] and image b gets ``alpha[b] * content_b + beta[b] * style_b + gamma[b] * tv_b``;
    ``"total"`` is the sum over images (so each image's gradient is that of its own objective),
    ``"per_image"`` the [B] totals, and content/style/tv the sums of the per-image terms.
    """

    def __init__(self, extractor: VGGFeatures, content: torch.Tensor | None,
                 style: torch.Tensor | Sequence[torch.Tensor] | None,
                 content_layers: Sequence[str], style_layers: Sequence[str],
                 content_weight: Weight, style_weight: Weight, tv_weight: Weight,
                 style_layer_weights: Mapping[str, float] | None = None, *,
                 style_blend: Sequence[float] | None = None, mask: torch.Tensor | None = None,
                 style_outside: torch.Tensor | Sequence[torch.Tensor] | None = None,
                 style_per_image: bool = False) -> None:
        self.ext = extractor
        self._content = content
        self._styles: list[torch.Tensor] = as_list(style)
        self._outside: list[torch.Tensor] = as_list(style_outside)
        self._layers = (list(content_layers), list(style_layers))
        self._blend = style_blend
        self._style_per_image = style_per_image
        self.mask = mask
        self.content_targets: dict[str, torch.Tensor] = {}
        self.style_grams: dict[str, torch.Tensor] = {}
        self.outside_grams: dict[str, torch.Tensor] = {}
        self.set_weights(content_weight, style_weight, tv_weight, style_layer_weights)
        if style_per_image and (style_blend is not None or len(self._styles) != self.batch):
            raise ValueError(f"style_per_image needs one style image per image of the batch ({self.batch}), "
                             f"got {len(self._styles)}{' and a blend' if style_blend is not None else ''}")
        if self.per_image and mask is not None:
            raise ValueError("per-image weights do not support a mask; run masked transfers one at a time")

    def set_weights(self, content_weight: Weight | None = None, style_weight: Weight | None = None,
                    tv_weight: Weight | None = None, style_layer_weights: Mapping[str, float] | None = None
                    ) -> None:
        """Change alpha, beta, gamma and/or the per-layer style weights (None keeps a value).

        Cheap: the targets stay; those of a term whose weight was 0 until now are computed once.
        """
        old = getattr(self, "given", (None, None, None, None))
        given: tuple[Any, ...] = tuple(o if n is None else n for n, o in zip(
            (content_weight, style_weight, tv_weight, style_layer_weights), old))
        self.given = given
        self.weights = tuple(_weight(w, self.ext.device) for w in given[:3])
        self.style_layer_weights = dict(given[3] or {})
        self.per_image = any(isinstance(w, torch.Tensor) for w in self.weights)
        used = [bool(torch.as_tensor(w).ne(0).any()) for w in self.weights]
        self.use_tv = used[2]
        content, styles = self._content, self._styles
        self.content_layers = self._layers[0] if content is not None and used[0] else []
        self.style_layers = self._layers[1] if styles and used[1] else []
        with torch.no_grad():
            if self.content_layers and not self.content_targets:
                self.content_targets = self.ext(content, self.content_layers)
            if self.style_layers and not self.style_grams and self._style_per_image:
                per_style = [target_grams(self.ext, [s], self.style_layers) for s in styles]
                self.style_grams = {n: torch.cat([g[n] for g in per_style]) for n in self.style_layers}
            elif self.style_layers and not self.style_grams:
                self.style_grams = target_grams(self.ext, styles, self.style_layers, self._blend)
                if self._outside:
                    self.outside_grams = target_grams(self.ext, self._outside, self.style_layers)
        self.layers = list(dict.fromkeys(self.content_layers + self.style_layers))

    @property
    def batch(self) -> int:
        """B, the number of images the weights are for (1 unless a weight is a sequence)."""
        sizes = [w.numel() for w in self.weights if isinstance(w, torch.Tensor)]
        return max(sizes, default=1)

    @property
    def loss_weights(self) -> dict[str, object]:
        """The weights in force: ``{content_weight, style_weight, tv_weight, style_layer_weights}``
        as given (floats, or lists for per-image weights)."""
        return dict(zip(("content_weight", "style_weight", "tv_weight", "style_layer_weights"), self.given))

    def __call__(self, img: torch.Tensor) -> dict[str, torch.Tensor]:
        alpha, beta, gamma = self.weights
        feats = self.ext(img, self.layers) if self.layers else {}
        red = "none" if self.per_image else "mean"
        zero = img.new_zeros((img.shape[0],) if self.per_image else ())
        c = sum((content_loss(feats[n], self.content_targets[n], reduction=red) for n in self.content_layers), zero)
        s = zero
        if self.style_layers and self.mask is None:
            s = style_loss(feats, self.style_grams, self.style_layer_weights, reduction=red)
        elif self.style_layers and self.mask is not None:
            s = masked_style_loss(feats, self.style_grams, self.mask, self.style_layer_weights)
            if self.outside_grams:
                s = s + masked_style_loss(feats, self.outside_grams, 1 - self.mask, self.style_layer_weights)
        tv = tv_loss(img, reduction=red) if self.use_tv else zero
        total = alpha * c + beta * s + gamma * tv
        if self.per_image:
            return {"total": total.sum(), "content": c.sum(), "style": s.sum(), "tv": tv.sum(), "per_image": total}
        return {"total": total, "content": c, "style": s, "tv": tv}

    def loss_and_grad(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """The engine's one entry point: evaluate at ``x`` ([B, 3, H, W], requires grad, ``x.grad``
        zeroed by the caller), accumulate d(total)/dx into ``x.grad`` and return the losses detached
        (scalars ``"total", "content", "style", "tv"``; ``"per_image"`` [B] for a batch)."""
        losses = self(x)
        losses["total"].backward()
        return {k: v.detach() for k, v in losses.items()}
