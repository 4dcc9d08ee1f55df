r"""One photograph in several styles, optimized as one batch (the paper's Figure 2).

Image :math:`b` of the batch has its own style target, the Gram matrices :math:`A^l_b` of style
:math:`b`, and the batch minimizes the sum of the per-image objectives

.. math:: \sum_b \alpha\,\mathcal{L}_{content}(x_b) + \beta\,\mathcal{L}_{style}(x_b; A_b)
          + \gamma\,\mathcal{L}_{tv}(x_b).

The sum is separable, so each image gets its own objective's optimization (the engine's batch
L-BFGS keeps one curvature history per image, as for :func:`nstlib.sweep`); the network runs once
per step on the whole batch, which is what makes the batch faster than one run per style on a GPU.
"""
from __future__ import annotations

from collections.abc import Iterable, Sequence

import torch

from .config import default_size, resolve_device
from .engine import Result, check_count, optimize
from .image import ImageSource, load_image
from .objective import Objective
from .transfer import CONTENT_LAYERS, CONTENT_WEIGHT, STYLE_LAYERS, STYLE_WEIGHT, TV_WEIGHT, default_steps
from .vgg import VGGFeatures, warn_if_random

__all__ = ["gallery"]


def gallery(content: ImageSource, styles: Sequence[ImageSource], *, extractor: VGGFeatures | None = None,
            content_weight: float = CONTENT_WEIGHT, style_weight: float = STYLE_WEIGHT,
            tv_weight: float = TV_WEIGHT, content_layers: Iterable[str] = CONTENT_LAYERS,
            style_layers: Iterable[str] = STYLE_LAYERS, optimizer: str = "lbfgs",
            steps: int | None = None, size: int | None = None,
            device: str | torch.device | None = None) -> Result:
    """Paint ``content`` once in each of ``styles``, all images optimized together from the content.

    Args:
        content: the photograph (path, example name, tensor, ...; see :func:`nstlib.load_image`).
        styles: B >= 1 style images; each is resized so that its longest side is the content's.
        extractor: a built :class:`VGGFeatures` reaching every layer used (default: VGG19, built here).
        content_weight, style_weight, tv_weight: alpha, beta, gamma, the same for every image.
        optimizer, steps, size, device: as for :func:`nstlib.stylize`.

    Returns:
        The batch :class:`nstlib.Result`: ``.image`` is [B, 3, H, W] in [0, 1], image b (each its own
        best iterate) is ``.image[b:b + 1]``; ``.history`` holds each step's ``"per_image"`` totals.
    """
    styles = list(styles)
    if not styles:
        raise ValueError("gallery() needs at least one style image, e.g. ['starry_night', 'great_wave']")
    content_layers, style_layers = list(content_layers), list(style_layers)
    steps = check_count("steps", default_steps(optimizer) if steps is None else steps)
    dev = extractor.device if extractor is not None else resolve_device(device)
    if extractor is None:
        extractor = VGGFeatures("vgg19", content_layers + style_layers, device=dev)
    warn_if_random(extractor)
    photo = load_image(content, size=default_size(dev) if size is None else size, device=dev)
    side = max(photo.shape[-2:])
    imgs = [load_image(s, size=side, device=dev) for s in styles]
    n = len(imgs)
    # style_per_image: style b's Gram matrices are entry b of a [B, C, C] target, which style_loss
    # compares image by image (reduction "none").
    objective = Objective(extractor, photo, imgs, content_layers, style_layers,
                          [content_weight] * n, [style_weight] * n, [tv_weight] * n, style_per_image=True)
    return optimize(photo.expand(n, -1, -1, -1), objective, optimizer=optimizer, steps=steps,
                    every=max(1, steps // 10))
