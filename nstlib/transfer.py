"""Style transfer (Gatys, Ecker & Bethge) and the paper's Figure 1 reconstructions.

:func:`stylize` takes every option as a keyword, writes them into one :class:`nstlib.Transfer`
(checked there, before any work) and hands it to :func:`run`, which runs it at one size
(:mod:`nstlib.stage`) or coarse to fine (:mod:`nstlib.multiscale`). The objective
(:class:`nstlib.objective.Objective`) is minimized over the pixels of the image.
Defaults and their sources: ``docs/defaults.md``.
"""
from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

import torch

from .engine import Callback, Controls, Result
from .image import ImageSource
from .memory import advise_on_oom
from .multiscale import coarse_to_fine
from .naming import format_name, option_tags
from .objective import Objective
from .spec import (
    CONTENT_LAYERS,
    CONTENT_WEIGHT,
    INITS,
    STYLE_LAYERS,
    STYLE_WEIGHT,
    TV_WEIGHT,
    Init,
    Transfer,
    default_steps,
)
from .stage import build_extractor, load_inputs, run_stage
from .vgg import VGGFeatures
from .weights import WeightsSpec

__all__ = ["stylize", "reconstruct", "run", "Transfer", "Objective", "default_steps", "CONTENT_LAYERS",
           "STYLE_LAYERS", "INITS", "format_name", "option_tags", "CONTENT_WEIGHT", "STYLE_WEIGHT", "TV_WEIGHT"]


@advise_on_oom
def run(spec: Transfer, *, extractor: VGGFeatures | None = None, callback: Callback | None = None,
        controls: Controls | None = None) -> Result:
    """Run the transfer ``spec`` (a :class:`Transfer`); the :class:`Result` carries it, resolved.

    Args:
        extractor: a built :class:`nstlib.VGGFeatures` to reuse (its arch, pooling and device are
            used; build it with the spec's layers); otherwise one is built after the images load.
        callback: ``callback(step, image, losses)`` every ``spec.every`` steps; False stops the run.
        controls: live weights, ``controls(step) -> {"style_weight": ..., ...} | None`` polled at
            the top of every step (:func:`nstlib.optimize`).
    """
    if extractor is not None:
        spec = spec.with_extractor(extractor)
    spec = spec.resolved()
    if spec.scales is not None:
        return coarse_to_fine(spec, extractor, callback, controls)
    inputs = load_inputs(spec, spec.device)  # type: ignore[arg-type]
    extractor = build_extractor(spec, spec.device, extractor, stacklevel=5)  # type: ignore[arg-type]
    return run_stage(spec, inputs, extractor, callback, controls)


def stylize(content: ImageSource, style: ImageSource | Sequence[ImageSource] | None, *,
            content_weight: float = CONTENT_WEIGHT, style_weight: float = STYLE_WEIGHT,
            tv_weight: float = TV_WEIGHT, content_layers: str | Iterable[str] = CONTENT_LAYERS,
            style_layers: str | Iterable[str] = STYLE_LAYERS,
            style_layer_weights: Mapping[str, float] | None = None, optimizer: str = "lbfgs",
            steps: int | Sequence[int] | None = None, lr: float | None = None, init: Init = "content",
            arch: str = "vgg19", pooling: str = "max", weights: WeightsSpec = "imagenet",
            extractor: VGGFeatures | None = None, size: int | tuple[int, int] | None = None,
            seed: int = 0, callback: Callback | None = None, every: int | None = None,
            device: str | torch.device | None = None, preserve_color: str | None = None,
            style_blend: Sequence[float] | None = None, style_scale: float = 1.0,
            mask: ImageSource | None = None, style_outside: ImageSource | None = None,
            scales: int | Sequence[int] | None = None, precision: str = "fp32",
            tile: int | str | None = None, max_memory: int | str | None = None, checkpoint: bool = False,
            lbfgs_history: int | None = None, controls: Controls | None = None) -> Result:
    """Paint ``content`` in the style of ``style`` by optimizing the pixels.

    Every option except ``extractor``, ``callback`` and ``controls`` is a field of the run's
    :class:`nstlib.Transfer` (``result.spec``); this is ``run(Transfer(content, style, ...))``.

    Args:
        content, style: images (path, URL, example name, PIL, array or tensor; see
            :func:`nstlib.load_image`). The style is resized so that its longest side equals the
            content's; the two need not share a shape.
        content_weight, style_weight, tv_weight: alpha, beta and gamma (>= 0, not all 0).
        content_layers, style_layers: VGG taps, a name or a list (paper: relu4_2; relu1_1 ... relu5_1).
        style_layer_weights: ``{layer: w_l}`` for the style sum (default 1 each).
        optimizer: ``"lbfgs"`` or ``"adam"``; ``steps`` counts objective evaluations (default
            300 for L-BFGS, 500 for Adam); ``lr`` defaults to 1.0 (L-BFGS) or 0.068 (Adam).
        init: ``"content"``, ``"noise"`` (uniform, seeded), ``"style"`` or an image tensor
            (continue from it).
        extractor: a built :class:`VGGFeatures` to reuse (then arch/pooling/weights are ignored).
        size: longest side of the result, or (H, W); default 512 on GPU, 256 on CPU.
        seed: seeds the noise init; the same seed and inputs on CPU give the identical image.
        callback: ``callback(step, image, losses)`` every ``every`` steps (default steps // 10);
            returning False stops the run. Ctrl-C also stops it; the best image so far is kept.
        device: ``"cpu"``, ``"cuda"``, ``"cuda:1"``, ``"mps"`` or None (the best available).
        preserve_color: ``None`` (default), ``"luminance"`` (transfer on Y, recombined with the
            content's I, Q in YIQ) or ``"histogram"`` (the style's colour mean and covariance matched
            to the content's first); see :mod:`nstlib.color`.
        style_blend: with ``style=[img1, img2, ...]``, one weight each (normalized to sum 1;
            default equal): the target Gram matrices are blended (:mod:`nstlib.styles`).
        style_scale: the style's longest side relative to the content's (default 1).
        mask: [H, W] mask or black-and-white image (white = inside, content's aspect ratio): the style
            is applied only inside it, with masked Gram matrices; ``style_outside`` (optional) is
            applied outside it (:mod:`nstlib.masks`).
        scales: coarse to fine (:mod:`nstlib.multiscale`): a number of octaves (``3``: size/4,
            size/2, size) or ascending sides ``[128, 256, 512]``; each stage starts from the last
            one's image, upsampled. ``steps`` is then per stage (one int, or one count per stage).
        precision: ``"fp32"`` (default), ``"bf16"``, ``"fp16"`` or ``"auto"`` (mixed precision on
            CUDA): the network's precision when stylize builds it (:mod:`nstlib.precision`).
        tile: large images on bounded memory (:mod:`nstlib.tiling`): None (default, untiled), a
            tile side in px (e.g. 512) or ``"auto"`` (the side whose pass fits ``max_memory``). The
            objective and gradient are the untiled ones (exact: global Gram matrices, an 80 px
            halo); a stage whose image fits in one tile runs untiled, so with ``scales`` only the
            large (last) stages are tiled.
        max_memory: the memory budget of one tile's activations for ``tile="auto"``: bytes or a
            size such as ``"3GB"`` (default: half the device's available memory).
        checkpoint: gradient checkpointing through VGG (recompute activations in the backward
            pass: less memory, more time; the same values), in tiles or untiled.
        lbfgs_history: L-BFGS's curvature pairs (default 100; 10 in a tiled stage, where each
            image-sized pair costs 24 bytes per pixel: 100 would take 10 GB at 2048 px).
        controls: live weights: ``controls(step)`` returns new loss weights or None (:func:`run`).

    Returns:
        A :class:`Result` (``.image`` [1, 3, H, W] in [0, 1], ``.history``, ``.snapshots``,
        ``.spec``, ``.save()``).
    """
    if extractor is not None:  # its network and device, not the arguments'
        arch, pooling, precision, device = extractor.arch, extractor.pooling, extractor.precision, extractor.device
    spec = Transfer(content, style, content_weight=content_weight, style_weight=style_weight,
                    tv_weight=tv_weight, content_layers=content_layers, style_layers=style_layers,  # type: ignore[arg-type]
                    style_layer_weights=style_layer_weights, arch=arch, pooling=pooling, weights=weights,
                    precision=precision, optimizer=optimizer, steps=steps, lr=lr, init=init, size=size,
                    scales=scales, seed=seed, every=every, device=device, preserve_color=preserve_color,  # type: ignore[arg-type]
                    style_blend=style_blend, style_scale=style_scale, mask=mask,  # type: ignore[arg-type]
                    style_outside=style_outside, tile=tile, max_memory=max_memory, checkpoint=checkpoint,
                    lbfgs_history=lbfgs_history)
    return run(spec, extractor=extractor, callback=callback, controls=controls)


def reconstruct(target: ImageSource, layers: str | Iterable[str], kind: str = "content", *,
                steps: int | None = None, optimizer: str = "lbfgs", lr: float | None = None,
                style_layer_weights: Mapping[str, float] | None = None, init: Init = "noise",
                **kwargs) -> Result:
    """The paper's Figure 1: synthesize an image from noise that matches only ``target``'s
    content features (``kind="content"``) or only its Gram matrices (``kind="style"``, texture
    synthesis) at ``layers``. Other keyword arguments go to :func:`stylize` (size, seed,
    extractor, weights, pooling, arch, callback, every, device); no TV term is used.

    One term alone needs no balance, but its scale matters to L-BFGS: the style term is weighted
    by ``STYLE_WEIGHT`` (1e4), as in :func:`stylize`. Unweighted, a Gram loss of a few layers is
    about 1e-3..1e-2; torch's L-BFGS then takes the raw gradient as its first step and skips
    every curvature pair with ``s·y <= 1e-10``, so it barely moves (relu1_1 alone: no progress
    at all). The history's ``"style"`` and ``"content"`` stay unweighted.
    """
    if kind == "content":
        return stylize(target, None, content_weight=1.0, style_weight=0.0, tv_weight=0.0,
                       content_layers=layers, style_layers=(), steps=steps, optimizer=optimizer,
                       lr=lr, init=init, **kwargs)
    if kind == "style":
        return stylize(target, target, content_weight=0.0, style_weight=STYLE_WEIGHT, tv_weight=0.0,
                       content_layers=(), style_layers=layers, style_layer_weights=style_layer_weights,
                       steps=steps, optimizer=optimizer, lr=lr, init=init, **kwargs)
    raise ValueError(f"unknown kind {kind!r}; choose 'content' or 'style'")
