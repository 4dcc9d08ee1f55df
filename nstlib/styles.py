r"""Style targets: several styles blended, and the style's scale relative to the content.

Several styles :math:`s_1 \dots s_n` with blend weights :math:`b_i` (normalized to sum to 1) give
one target Gram matrix per layer, the weighted mean of theirs:

.. math:: A^l = \sum_i \frac{b_i}{\sum_j b_j} A^l(s_i)

(the loss against this mean differs from :math:`\sum_i b_i \lVert G^l - A^l(s_i)\rVert^2` only by
a constant, so both give the same image). The *style scale* sets the style's longest side to
``style_scale`` times the content's before its Gram matrices are computed. VGG's receptive fields
are fixed in pixels, so the texture is copied at the pixel size it has in the resized style: a
smaller style (``style_scale < 1``) gives finer strokes on the result, a larger one coarser strokes.
"""
from __future__ import annotations

import math
from collections.abc import Sequence

import torch

from .errors import too_small
from .image import ImageSource, load_image
from .losses import gram_matrix
from .vgg import VGGFeatures

__all__ = ["as_list", "blend_weights", "target_grams", "style_side", "load_styles"]


def as_list(style: object) -> list:
    """One style or a list/tuple of them -> a list (``None`` -> [])."""
    if style is None:
        return []
    return list(style) if isinstance(style, (list, tuple)) else [style]


def blend_weights(style_blend: Sequence[float] | None, n: int) -> list[float]:
    """Validate ``style_blend`` for ``n`` styles and normalize it to sum to 1 (None: equal weights)."""
    if style_blend is None:
        return [1.0 / n] * n
    try:
        w = [float(b) for b in style_blend]
    except (TypeError, ValueError):
        raise ValueError(f"style_blend must be a list of {n} numbers >= 0, got {style_blend!r}") from None
    if len(w) != n:
        raise ValueError(f"style_blend has {len(w)} weight(s) for {n} style image(s); give one per style")
    if not all(math.isfinite(b) and b >= 0 for b in w) or sum(w) <= 0:
        raise ValueError(f"style_blend weights must be finite, >= 0 and not all 0, got {style_blend!r}")
    return [b / sum(w) for b in w]


@torch.no_grad()
def target_grams(extractor: VGGFeatures, styles: Sequence[torch.Tensor], layers: Sequence[str],
                 blend: Sequence[float] | None = None) -> dict[str, torch.Tensor]:
    """``{layer: A^l}``: the blended Gram matrices [1, C_l, C_l] of ``styles`` ([1, 3, H_i, W_i] each)."""
    weights = blend_weights(blend, len(styles))
    out: dict[str, torch.Tensor] = {}
    for w, img in zip(weights, styles):
        for name, f in extractor(img, list(layers)).items():
            g = w * gram_matrix(f)
            out[name] = g if name not in out else out[name] + g
    return out


def style_side(content_shape: Sequence[int], style_scale: float) -> int:
    """The style's longest side: ``round(style_scale * max(H, W))`` of the content."""
    try:
        s = float(style_scale)
    except (TypeError, ValueError):
        raise ValueError(f"style_scale must be a positive number, got {style_scale!r}") from None
    if not (math.isfinite(s) and s > 0):
        raise ValueError(f"style_scale must be a positive number (1 = the content's size), "
                         f"got {style_scale!r}")
    return max(1, round(s * max(content_shape[-2:])))


def load_styles(style: ImageSource | Sequence[ImageSource], content_shape: Sequence[int],
                style_scale: float = 1.0, device: str | torch.device | None = None) -> list[torch.Tensor]:
    """Load one or several styles with their longest side ``style_scale`` times the content's."""
    side = style_side(content_shape, style_scale)
    return [load_image(s, size=side, device=device) for s in as_list(style)]


def prepare_inputs(content_img: torch.Tensor, style: ImageSource | Sequence[ImageSource] | None, *,
                   preserve_color: str | None = None, style_scale: float = 1.0, mask: ImageSource | None = None,
                   style_outside: ImageSource | Sequence[ImageSource] | None = None, min_size: int = 1
                   ) -> tuple[torch.Tensor, list[torch.Tensor], list[torch.Tensor], torch.Tensor | None]:
    """Load the styles (scaled), the mask and the second style, and apply colour preservation.

    Returns:
        ``(content, styles, outside, mask)``: the content image the objective sees (its luminance
        copied to 3 channels in ``"luminance"`` mode), the style images ([1, 3, h, w] each), the
        outside styles, and the mask [1, 1, H, W] (or None).
    """
    from .color import luminance_image, match_color, match_luminance
    from .masks import load_mask
    dev = content_img.device
    styles = load_styles(style, content_img.shape, style_scale, dev) if style is not None else []
    outside = (load_styles(style_outside, content_img.shape, style_scale, dev)
               if style_outside is not None else [])
    for s in styles + outside:
        if min(s.shape[-2:]) < min_size:
            raise too_small(f"at style_scale={style_scale!r} a style image", s.shape[-2:], min_size,
                            "use a larger style_scale or size, or a less elongated style image")
    m = load_mask(mask, tuple(content_img.shape[-2:]), dev) if mask is not None else None
    if preserve_color == "histogram":
        styles = [match_color(s, content_img) for s in styles]
        outside = [match_color(s, content_img) for s in outside]
    elif preserve_color == "luminance":
        styles = [match_luminance(s, content_img) for s in styles]
        outside = [match_luminance(s, content_img) for s in outside]
        content_img = luminance_image(content_img)
    return content_img, styles, outside, m
