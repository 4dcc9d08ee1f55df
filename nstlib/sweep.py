r"""A grid of loss weights optimized as one batch (one run for a whole row or grid of ratios).

The alpha/beta grid, with one call per content layer, is the analogue of Figures 4 and 5 of the CVPR
2016 paper (Gatys, Ecker & Bethge): ratios against the content layer. It is *not* the arXiv paper's
Figure 3, whose rows are growing sets of *style* layers with the content layer fixed; call ``sweep``
once per style-layer set for that one (notebook 05 does both). The ratios that work here are not the
paper's 1e-3 .. 1e-4: nstlib's losses are means over Gram matrices divided by C*H*W, of a network fed
[0, 1] images with mean/std normalization, where the paper sums over raw Gram matrices of a rescaled
Caffe VGG fed 0-255 pixels (notebook 05, "Conventions and loss scale").

Every image of the grid gets its own :math:`\alpha_b, \beta_b`; the batch minimizes the *sum* of
the per-image objectives (:class:`nstlib.objective.Objective` with weight vectors). The sum is
separable -- image b's gradient is that of its own objective -- so:

* **Adam** updates each pixel from its own gradient only: the batch run is the separate runs
  done together (equal up to float rounding of the batched convolutions).
* **L-BFGS** would couple the images if the batch were one long vector (shared dot products and
  step scalars). The engine therefore runs :class:`nstlib.lbfgs.BatchLBFGS` on batches: one
  curvature history and one set of step scalars per image, i.e. the separate runs in lockstep.

The engine keeps each image's best iterate (lowest own loss). Styles, masks and colour options
of :func:`nstlib.stylize` other than one style image are not batched: run those one at a time.
"""
from __future__ import annotations

import functools
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch

from .engine import Callback, Result, optimize
from .image import ImageSource
from .objective import Objective
from .spec import CONTENT_LAYERS, CONTENT_WEIGHT, STYLE_LAYERS, TV_WEIGHT, Init, Transfer, check_weight
from .stage import build_extractor, init_image, load_inputs
from .vgg import VGGFeatures
from .weights import WeightsSpec

__all__ = ["sweep", "SweepResult"]


@dataclass
class SweepResult:
    """The grid of a :func:`sweep`.

    Attributes:
        images: ``images[i][j]`` is the image for ``content_weights[i]`` and ``style_weights[j]``,
            [1, 3, H, W] in [0, 1] (each image's best iterate).
        content_weights, style_weights: the grid's rows (alpha) and columns (beta).
        losses: ``losses[i][j]``, the best total loss of that image.
        result: the batch run (``.image`` [B, 3, H, W], ``.history`` with ``"per_image"`` totals).
        pretrained: False when the network had random weights (the figure then says so).
    """

    images: list
    content_weights: list
    style_weights: list
    losses: list
    result: Result
    pretrained: bool = True
    params: dict = field(default_factory=dict)
    spec: Transfer | None = None

    @property
    def seconds(self) -> float:
        return self.result.seconds

    @functools.cached_property
    def figure(self) -> Any:
        """A matplotlib grid: rows alpha, columns beta, each titled with alpha/beta."""
        from .plot import show
        titles = [(f"α/β = {a / b:.0e}" if a and b else f"α={a:g}, β={b:g}")
                  for a in self.content_weights for b in self.style_weights]
        fig = show([img for row in self.images for img in row], titles=titles, ncols=len(self.style_weights))
        if not self.pretrained:
            fig.suptitle("RANDOM WEIGHTS: the algorithm running, not a style transfer", color="red")
        return fig


def _weights(name: str, values: Iterable[float]) -> list[float]:
    values = [values] if isinstance(values, (int, float)) else list(values)
    if not values:
        raise ValueError(f"{name} must list at least one weight, e.g. [1e3, 1e4]")
    return [check_weight(name, v) for v in values]


def sweep(content: ImageSource, style: ImageSource, content_weights: Sequence[float] = (CONTENT_WEIGHT,),
          style_weights: Sequence[float] = (1e3, 1e4, 1e5), *, tv_weight: float = TV_WEIGHT,
          content_layers: Iterable[str] = CONTENT_LAYERS, style_layers: Iterable[str] = STYLE_LAYERS,
          style_layer_weights: Mapping[str, float] | None = None, optimizer: str = "lbfgs",
          steps: int | None = None, lr: float | None = None, init: Init = "content",
          arch: str = "vgg19", pooling: str = "max", weights: WeightsSpec = "imagenet",
          extractor: VGGFeatures | None = None, size: int | tuple[int, int] | None = None,
          seed: int = 0, callback: Callback | None = None, every: int | None = None,
          device: str | torch.device | None = None, precision: str = "fp32") -> SweepResult:
    """Style transfer for every (alpha, beta) of a grid, optimized as one batch.

    Args:
        content, style: as for :func:`nstlib.stylize` (one style image).
        content_weights: the rows, alpha values (>= 0); style_weights: the columns, beta values.
        Every other argument is as for :func:`nstlib.stylize`; ``callback`` receives the batch
        [B, 3, H, W] and the summed losses.

    Returns:
        A :class:`SweepResult`: ``.images[i][j]``, ``.losses[i][j]``, ``.figure``, ``.result``.
        Same inputs, seed and steps give each image what ``stylize`` gives it alone (Adam: up to
        float rounding; L-BFGS: see :mod:`nstlib.lbfgs`).
    """
    rows, cols = _weights("content_weights", content_weights), _weights("style_weights", style_weights)
    if extractor is not None:
        arch, pooling, precision, device = extractor.arch, extractor.pooling, extractor.precision, extractor.device
    # one spec for the whole grid (the largest weights: its checks and minimum size cover every cell)
    spec = Transfer(content, style, content_weight=max(rows), style_weight=max(cols), tv_weight=tv_weight,
                    content_layers=content_layers, style_layers=style_layers,  # type: ignore[arg-type]
                    style_layer_weights=style_layer_weights, arch=arch, pooling=pooling, weights=weights,
                    precision=precision, optimizer=optimizer, steps=steps, lr=lr, init=init, size=size,
                    seed=seed, every=every, device=device).resolved()
    inputs = load_inputs(spec, spec.device)  # type: ignore[arg-type]
    extractor = build_extractor(spec, spec.device, extractor)  # type: ignore[arg-type]
    alpha = [a for a in rows for _ in cols]
    beta = [b for _ in rows for b in cols]
    objective = Objective(extractor, inputs.content, inputs.styles, spec.content_layers, spec.style_layers,
                          alpha, beta, [spec.tv_weight] * len(alpha), spec.style_layer_weights)
    x0 = init_image(spec.init, inputs.content, inputs.styles[0], spec.seed).expand(len(alpha), -1, -1, -1)
    n_steps = int(spec.steps)  # type: ignore[arg-type]
    result = optimize(x0, objective, optimizer=spec.optimizer, steps=n_steps, lr=spec.lr, callback=callback,
                      every=spec.every or max(1, n_steps // 10))
    per = [h["per_image"] for h in result.history]
    best = [min(p[i] for p in per) if per else float("nan") for i in range(len(alpha))]
    n = len(cols)
    result.spec = spec
    result.params = dict(content_weights=rows, style_weights=cols, tv_weight=spec.tv_weight,
                         optimizer=spec.optimizer, steps=n_steps, size=max(inputs.content.shape[-2:]),
                         seed=spec.seed, content_layers=list(spec.content_layers),
                         style_layers=list(spec.style_layers), weights=extractor.weights_source)
    return SweepResult(images=[[result.image[i * n + j:i * n + j + 1] for j in range(n)] for i in range(len(rows))],
                       content_weights=rows, style_weights=cols,
                       losses=[best[i * n:(i + 1) * n] for i in range(len(rows))], result=result,
                       pretrained=extractor.pretrained, params=result.params, spec=spec)
