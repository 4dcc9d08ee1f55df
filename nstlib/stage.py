"""One stage of a transfer: one image size, one optimization (:func:`run_stage`).

The three steps of a run, each a function: :func:`load_inputs` (the images, checked against the
layers' minimum size), :func:`build_extractor` (the VGG network of the spec) and :func:`run_stage`
(the objective, the initial image, :func:`nstlib.optimize`). :func:`nstlib.run` calls them once;
the coarse-to-fine loop (:mod:`nstlib.multiscale`) once per scale, with one network for all.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from .checkpoint import checkpointed
from .color import combine_luminance, luminance_image
from .engine import Callback, Controls, Result, optimize
from .errors import too_small
from .image import load_image, resize
from .naming import label
from .objective import Objective
from .spec import Init, Transfer
from .styles import prepare_inputs
from .tiles import needs_tiles, tile_sides
from .tiling import TiledObjective
from .vgg import VGGFeatures, warn_if_random

__all__ = ["Inputs", "load_inputs", "build_extractor", "stage_tile", "build_objective", "run_stage", "init_image"]


@dataclass(frozen=True)
class Inputs:
    """The images of one stage, on the run's device: ``content`` as loaded, ``target`` (what the
    content loss sees: its luminance in ``"luminance"`` mode), the ``styles`` and ``outside``
    styles ([1, 3, h, w] each) and the ``mask`` [1, 1, H, W] or None."""

    content: torch.Tensor
    target: torch.Tensor
    styles: list
    outside: list
    mask: torch.Tensor | None


def load_inputs(spec: Transfer, device: torch.device) -> Inputs:
    """Load ``spec``'s images at ``spec.size`` and check them against the layers in use (before
    any network is built). Raises :class:`nstlib.ImageError` for an image too small for them."""
    need = spec.min_side()
    content = load_image(spec.content, size=spec.size, device=device)
    if min(content.shape[-2:]) < need:
        raise too_small(f"the content image {label(spec.content, 'content')!r} at size={spec.size!r}",
                        content.shape[-2:], need, "use a larger size")
    style = None if spec.style is None else spec.styles
    target, styles, outside, mask = prepare_inputs(
        content, style, preserve_color=spec.preserve_color, style_scale=spec.style_scale, mask=spec.mask,
        style_outside=spec.style_outside, min_size=need if spec.style_layers else 1)
    return Inputs(content, target, styles, outside, mask)


def build_extractor(spec: Transfer, device: torch.device, extractor: VGGFeatures | None = None,
                    stacklevel: int = 4) -> VGGFeatures:
    """``extractor``, or the VGG network of ``spec`` (arch, pooling, weights, precision) with its
    layers, on ``device``; warns when its weights are random (in both cases)."""
    ext = extractor or VGGFeatures(spec.arch, list(spec.content_layers + spec.style_layers), pooling=spec.pooling,
                                   weights=spec.weights, device=device, precision=spec.precision)
    warn_if_random(ext, stacklevel=stacklevel)
    return ext


def init_image(init: Init, content: torch.Tensor, style: torch.Tensor | None, seed: int) -> torch.Tensor:
    """The first image: a copy of ``content``, seeded uniform noise, the (first) style resized to
    the content's shape, or a given image tensor (continue from it), resized to the content's."""
    h, w = content.shape[-2:]
    if isinstance(init, torch.Tensor):
        return resize(load_image(init, device=content.device), (h, w))
    if init == "noise":
        g = torch.Generator().manual_seed(seed)
        return torch.rand(1, 3, h, w, generator=g).to(content.device)
    if init == "style" and style is not None:
        return resize(style, (h, w))
    return content.clone()  # "content" (and "style" without a style image)


def stage_tile(spec: Transfer, inputs: Inputs, extractor: VGGFeatures) -> tuple[int, int] | None:
    """The tile ``(h, w)`` of this stage, or None to run it untiled: ``spec.tile`` (``"auto"``: the
    side whose crop fits ``spec.max_memory``, :func:`nstlib.tiles.auto_tile`) when the image
    needs more than one tile of it. So with ``scales`` only the stages larger than one tile are
    tiled (typically the last one or two); the smaller ones run untiled, with the same values."""
    if spec.tile is None:
        return None
    layers = list(spec.content_layers + spec.style_layers)
    tile = tile_sides(extractor, layers, spec.tile, spec.max_memory)  # type: ignore[arg-type]
    return tile if needs_tiles(inputs.target.shape, tile, layers, extractor.arch) else None


def build_objective(spec: Transfer, inputs: Inputs, extractor: VGGFeatures,
                    tile: tuple[int, int] | None = None) -> Objective | TiledObjective:
    """The objective of one stage: ``spec``'s weights and layers, targets from ``inputs``; tiled
    (:class:`nstlib.tiling.TiledObjective`, exact) with a ``tile``; through a gradient-checkpointed
    network (:func:`nstlib.checkpoint.checkpointed`) with ``spec.checkpoint``."""
    ext = checkpointed(extractor) if spec.checkpoint else extractor
    args = (ext, inputs.target, inputs.styles or None, spec.content_layers, spec.style_layers,
            spec.content_weight, spec.style_weight, spec.tv_weight, spec.style_layer_weights)
    blend = spec.style_blend if inputs.styles else None
    if tile is not None:
        return TiledObjective(*args, style_blend=blend, tile=tile, max_memory=spec.max_memory)  # type: ignore[arg-type]
    return Objective(*args, style_blend=blend, mask=inputs.mask, style_outside=inputs.outside or None)


def run_stage(spec: Transfer, inputs: Inputs, extractor: VGGFeatures, callback: Callback | None = None,
              controls: Controls | None = None, objective: Any = None) -> Result:
    """Optimize one stage: ``spec`` resolved (:meth:`Transfer.resolved`: ``steps`` an int),
    ``inputs`` from :func:`load_inputs`. ``objective``: anything with ``loss_and_grad(x)`` (and
    ``set_weights`` for live weights), e.g. a tiled objective; default :func:`build_objective`.
    Tiled stages (:func:`stage_tile`) keep a short L-BFGS history (:meth:`Transfer.history_size`).
    Returns the :class:`Result`, carrying ``spec``."""
    if objective is None:
        objective = build_objective(spec, inputs, extractor, stage_tile(spec, inputs, extractor))
    tiled = isinstance(objective, TiledObjective)
    x0 = init_image(spec.init, inputs.target, inputs.styles[0] if inputs.styles else None, spec.seed)
    steps = int(spec.steps)  # type: ignore[arg-type]
    cb = callback
    if spec.preserve_color == "luminance":  # optimize the grey image; show and return it in colour
        x0 = luminance_image(x0)
        if callback is not None:
            cb = lambda step, img, losses: callback(step, _recolor(img, inputs.content), losses)  # noqa: E731
    result = optimize(x0, objective, optimizer=spec.optimizer, steps=steps, lr=spec.lr, callback=cb,
                      every=spec.every or max(1, steps // 10), controls=controls,
                      lbfgs_history=spec.history_size(tiled))
    if spec.preserve_color == "luminance":
        result.image = _recolor(result.image, inputs.content)
        result.snapshots = [(k, _recolor(img, inputs.content)) for k, img in result.snapshots]
    side = max(inputs.content.shape[-2:])
    result.spec = spec
    result.params = spec.params(side, extractor.weights_source)
    result.params.update(arch=extractor.arch, pooling=extractor.pooling,
                         stage_tile=list(objective.tile) if tiled else None, lbfgs_history=spec.history_size(tiled))
    result.name = spec.name(side)
    return result


def _recolor(img: torch.Tensor, content: torch.Tensor) -> torch.Tensor:
    return combine_luminance(img, content).to(img.device)
