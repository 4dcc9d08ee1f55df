"""Style transfer (Gatys, Ecker & Bethge) and the paper's Figure 1 reconstructions.

The objective (:class:`nstlib.objective.Objective`) is minimized over the pixels of the image.
Defaults and their sources: ``docs/defaults.md``.
"""
from __future__ import annotations

from pathlib import Path
from typing import Iterable, Mapping, Sequence, Union

import torch

from .color import combine_luminance, luminance_image
from .config import QUICK, default_size, resolve_device
from .engine import OPTIMIZERS, Callback, Result, check_count, optimize
from .errors import ImageError, LayerError
from .image import ImageSource, load_image, resize
from .objective import Objective
from .styles import as_list, blend_weights, check_options, prepare_inputs
from .memory import advise_on_oom
from .vgg import POOLINGS, VGGFeatures, check_layers, min_side, warn_if_random
from .weights import WeightsSpec

__all__ = ["stylize", "reconstruct", "default_steps", "CONTENT_LAYERS", "STYLE_LAYERS",
           "INITS", "format_name", "CONTENT_WEIGHT", "STYLE_WEIGHT", "TV_WEIGHT"]

CONTENT_LAYERS = ("relu4_2",)
STYLE_LAYERS = ("relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu5_1")
INITS = ("content", "noise", "style")
#: Loss weights alpha, beta, gamma: d2l's 1 : 1e4 : 10, with TV converted from d2l's normalized pixels
#: (one unit = ImageNet std ~0.226) to [0, 1] pixels: 10 / 0.226 ~ 44. Sources: docs/defaults.md.
CONTENT_WEIGHT, STYLE_WEIGHT, TV_WEIGHT = 1.0, 1e4, 44.0
Init = Union[str, torch.Tensor]


def default_steps(optimizer: str) -> int:
    """300 for L-BFGS (PyTorch tutorial), 500 for Adam (d2l); 20 in quick mode."""
    if QUICK:
        return 20
    return 300 if optimizer == "lbfgs" else 500


def _check_weight(name: str, value: float) -> float:
    try:
        value = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a number >= 0, got {value!r}") from None
    if not value >= 0 or value == float("inf"):
        raise ValueError(f"{name} must be a finite number >= 0, got {value!r}")
    return value


def _check_layers(content_layers: list, style_layers: list, style_layer_weights: Mapping | None,
                  alpha: float, beta: float, has_style: bool, arch: str) -> int:
    """Check layer names (:class:`LayerError`) and per-layer weights; return the smallest image
    side the layers in use accept (:func:`nstlib.vgg.min_side`, at least 2 for the TV term)."""
    check_layers(content_layers + style_layers, arch)  # also checks arch
    for name, w in (style_layer_weights or {}).items():
        if name not in style_layers:
            raise LayerError(f"style_layer_weights names {name!r}, which is not in style_layers "
                             f"{style_layers}; add it there or remove its weight")
        _check_weight(f"style_layer_weights[{name!r}]", w)
    in_use = (content_layers if alpha else []) + (style_layers if has_style and beta else [])
    return max(2, min_side(in_use or content_layers + style_layers, arch))


def _label(src: object, fallback: str) -> str:
    return Path(str(src)).stem if isinstance(src, (str, Path)) else fallback


def _num(v: float) -> str:
    """1 -> '1', 0.5 -> '0.5', 10000 -> '1e4': short numbers for file names."""
    if v == 0:
        return "0"
    if 0.01 <= abs(v) < 1000:
        return f"{v:g}"
    mant, exp = f"{v:e}".split("e")
    return f"{float(mant):g}e{int(exp)}"


def option_tags(params: Mapping[str, object]) -> list[str]:
    """File-name tags for the options that differ from the defaults (from ``Result.params``):
    ``vgg16``, ``avg``, ``lum``/``hist`` (preserve_color), ``blend0.7-0.3``, ``ss0.5``
    (style_scale), ``mask``."""
    tags = []
    if params.get("arch", "vgg19") != "vgg19":
        tags.append(str(params["arch"]))
    if params.get("pooling", "max") != "max":
        tags.append(str(params["pooling"]))
    color = params.get("preserve_color")
    if color:
        tags.append({"luminance": "lum", "histogram": "hist"}.get(str(color), str(color)))
    blend = params.get("style_blend")
    if blend and len(blend) > 1:
        tags.append("blend" + "-".join(_num(round(float(b), 3)) for b in blend))
    if float(params.get("style_scale", 1.0) or 1.0) != 1.0:
        tags.append(f"ss{_num(float(params['style_scale']))}")
    if params.get("mask"):
        tags.append("mask")
    return tags


def format_name(content: str, style: str | None, optimizer: str, alpha: float, beta: float,
                gamma: float, size: int, ext: str = ".jpg", tags: Sequence[str] = ()) -> str:
    """``tower_bridge+starry_night_lbfgs_cw1_sw1e4_tv10_s256.jpg``: a file name encoding the run;
    ``tags`` (see :func:`option_tags`) are appended before the extension, e.g. ``..._s256_avg_lum.jpg``."""
    pair = content + (f"+{style}" if style else "")
    extra = "".join(f"_{t}" for t in tags)
    return f"{pair}_{optimizer}_cw{_num(alpha)}_sw{_num(beta)}_tv{_num(gamma)}_s{size}{extra}{ext}"


def _init_image(init: Init, content: torch.Tensor, style: torch.Tensor | None, seed: int) -> torch.Tensor:
    h, w = content.shape[-2:]
    if isinstance(init, torch.Tensor):
        return resize(load_image(init, device=content.device), (h, w))
    if init == "content":
        return content.clone()
    if init == "noise":
        g = torch.Generator().manual_seed(seed)
        return torch.rand(1, 3, h, w, generator=g).to(content.device)
    if init == "style" and style is not None:
        return resize(style, (h, w))
    raise ValueError(f"unknown init {init!r}; choose one of {', '.join(INITS)} or pass an image tensor")


@advise_on_oom
def stylize(content: ImageSource, style: ImageSource | None, *, content_weight: float = CONTENT_WEIGHT,
            style_weight: float = STYLE_WEIGHT, tv_weight: float = TV_WEIGHT,
            content_layers: Iterable[str] = CONTENT_LAYERS, style_layers: Iterable[str] = STYLE_LAYERS,
            style_layer_weights: Mapping[str, float] | None = None, optimizer: str = "lbfgs",
            steps: int | None = None, lr: float | None = None, init: Init = "content",
            arch: str = "vgg19", pooling: str = "max", weights: WeightsSpec = "imagenet",
            extractor: VGGFeatures | None = None, size: int | tuple[int, int] | None = None,
            seed: int = 0, callback: Callback | None = None, every: int | None = None,
            device: str | torch.device | None = None, preserve_color: str | None = None,
            style_blend: Sequence[float] | None = None, style_scale: float = 1.0,
            mask: ImageSource | None = None, style_outside: ImageSource | None = None,
            scales: int | Sequence[int] | None = None, precision: str = "fp32") -> Result:
    """Paint ``content`` in the style of ``style`` by optimizing the pixels.

    Args:
        content, style: images (path, URL, example name, PIL, array or tensor; see
            :func:`nstlib.load_image`). The style is resized so that its longest side equals the
            content's; the two need not share a shape.
        content_weight, style_weight, tv_weight: alpha, beta and gamma (>= 0).
        content_layers, style_layers: VGG taps (paper: relu4_2; relu1_1 ... relu5_1).
        style_layer_weights: ``{layer: w_l}`` for the style sum (default 1 each).
        optimizer: ``"lbfgs"`` or ``"adam"``; ``steps`` counts objective evaluations (default
            :func:`default_steps`); ``lr`` defaults to 1.0 (L-BFGS) or 0.068 (Adam).
        init: ``"content"``, ``"noise"`` (uniform, seeded), ``"style"`` or an image tensor.
        extractor: a built :class:`VGGFeatures` to reuse (then arch/pooling/weights are ignored).
        size: longest side of the result, or (H, W); default 512 on GPU, 256 on CPU.
        seed: seeds the noise init; the same seed and inputs on CPU give the identical image.
        callback: ``callback(step, image, losses)`` every ``every`` steps (default steps // 10);
            returning False stops the run. Ctrl-C also stops it; the best image so far is kept.
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

    Returns:
        A :class:`Result` (``.image`` [1, 3, H, W] in [0, 1], ``.history``, ``.snapshots``, ``.save()``).
    """
    if scales is not None:  # every argument, as given, to the stage loop
        args = dict(locals())
        from .multiscale import coarse_to_fine
        return coarse_to_fine(stylize, args)
    if optimizer not in OPTIMIZERS:
        raise ValueError(f"unknown optimizer {optimizer!r}; choose one of {', '.join(OPTIMIZERS)}")
    if isinstance(init, str) and init not in INITS:
        raise ValueError(f"unknown init {init!r}; choose one of {', '.join(INITS)} or pass an image tensor")
    alpha = _check_weight("content_weight", content_weight)
    beta = _check_weight("style_weight", style_weight)
    gamma = _check_weight("tv_weight", tv_weight)
    steps = check_count("steps", default_steps(optimizer) if steps is None else steps)
    check_options(style, preserve_color, style_blend, style_scale, mask, style_outside)
    content_layers, style_layers = ([ls] if isinstance(ls, str) else list(ls) for ls in (content_layers, style_layers))
    dev = extractor.device if extractor is not None else resolve_device(device)
    size = default_size(dev) if size is None else size
    # cheap checks first, before the network and its weights: names, weights, image sizes
    need = _check_layers(content_layers, style_layers, style_layer_weights, alpha, beta, style is not None,
                         extractor.arch if extractor is not None else arch)
    if extractor is None and pooling not in POOLINGS:
        raise ValueError(f"unknown pooling {pooling!r}; choose one of {', '.join(map(repr, POOLINGS))}")
    content_img = load_image(content, size=size, device=dev)
    if min(content_img.shape[-2:]) < need:
        raise ImageError(f"the content image {_label(content, 'content')!r} is {tuple(content_img.shape[-2:])} "
                         f"px at size={size!r}: too small for the layers in use, which need at least "
                         f"{need} px on each side (one halving per pooling); use a larger size")
    target, styles, outside, mask_img = prepare_inputs(
        content_img, style, preserve_color=preserve_color, style_scale=style_scale, mask=mask,
        style_outside=style_outside, min_size=need if style_layers else 1)
    if extractor is None:
        extractor = VGGFeatures(arch, content_layers + style_layers, pooling=pooling,
                                weights=weights, device=dev, precision=precision)
    warn_if_random(extractor, stacklevel=4)  # 4: past the @advise_on_oom wrapper, at the caller
    objective = Objective(extractor, target, styles or None, content_layers, style_layers,
                          alpha, beta, gamma, style_layer_weights, style_blend=style_blend,
                          mask=mask_img, style_outside=outside or None)
    x0 = _init_image(init, target, styles[0] if styles else None, seed)
    every = every or max(1, steps // 10)
    cb, recolor = callback, None
    if preserve_color == "luminance":  # optimize the grey image; show and return it in colour
        x0 = luminance_image(x0)
        recolor = lambda img: combine_luminance(img, content_img).to(img.device)  # noqa: E731
        if callback is not None:
            cb = lambda step, img, losses: callback(step, recolor(img), losses)  # noqa: E731
    result = optimize(x0, objective, optimizer=optimizer, steps=steps, lr=lr, callback=cb, every=every)
    if recolor is not None:
        result.image = recolor(result.image)
        result.snapshots = [(k, recolor(img)) for k, img in result.snapshots]
    side = max(content_img.shape[-2:])
    result.params = dict(content_weight=alpha, style_weight=beta, tv_weight=gamma, optimizer=optimizer,
                         steps=steps, init=init if isinstance(init, str) else "image", size=side,
                         seed=seed, content_layers=content_layers, style_layers=style_layers,
                         arch=extractor.arch, pooling=extractor.pooling,
                         weights=extractor.weights_source, preserve_color=preserve_color,
                         style_blend=blend_weights(style_blend, len(styles)) if styles else None,
                         style_scale=float(style_scale), mask=mask is not None)
    label = "+".join(_label(s, f"style{i + 1}" if len(styles) > 1 else "style")
                     for i, s in enumerate(as_list(style)))
    result.name = format_name(_label(content, "content"), label or None, optimizer, alpha, beta, gamma, side,
                              tags=option_tags(result.params))
    return result


def reconstruct(target: ImageSource, layers: Iterable[str], kind: str = "content", *,
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
    layers = [layers] if isinstance(layers, str) else list(layers)
    if kind == "content":
        return stylize(target, None, content_weight=1.0, style_weight=0.0, tv_weight=0.0,
                       content_layers=layers, style_layers=(), steps=steps, optimizer=optimizer,
                       lr=lr, init=init, **kwargs)
    if kind == "style":
        return stylize(target, target, content_weight=0.0, style_weight=STYLE_WEIGHT, tv_weight=0.0,
                       content_layers=(), style_layers=layers, style_layer_weights=style_layer_weights,
                       steps=steps, optimizer=optimizer, lr=lr, init=init, **kwargs)
    raise ValueError(f"unknown kind {kind!r}; choose 'content' or 'style'")
