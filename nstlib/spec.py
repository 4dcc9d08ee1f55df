"""One style transfer, written down: :class:`Transfer`, the run specification.

Every option of a run is one field here, checked once, cheaply, when the object is made (before
any image is loaded or network built). :func:`nstlib.stylize` builds one from its keywords; the
CLI, :func:`nstlib.sweep`, the coarse-to-fine stage loop and the playground build, show, vary
(``dataclasses.replace``) and run the same object, and every :class:`nstlib.Result` carries it::

    spec = nstlib.Transfer("tower_bridge", "starry_night", style_weight=1e5, steps=100)
    result = nstlib.run(spec)
    again = nstlib.run(dataclasses.replace(spec, pooling="avg"))

A field left at ``None`` means "the default for this run" (steps: 300 for L-BFGS, 500 for Adam;
lr: 1.0 or 0.068; size: 512 px on a GPU, 256 on the CPU; device: the best available);
:meth:`Transfer.resolved` fills them in. Defaults and their sources: ``docs/defaults.md``.
"""
from __future__ import annotations

import dataclasses
import numbers
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Union

import torch

from .color import PRESERVE_COLOR
from .config import default_size, resolve_device
from .errors import LayerError, check_choice
from .image import ImageSource, check_size
from .naming import format_name, label, option_tags
from .precision import PRECISIONS
from .styles import blend_weights, style_side
from .validation import (
    FLOAT32_MAX,
    LBFGS_HISTORY,
    TILED_LBFGS_HISTORY,
    check_count,
    check_lr,
    check_tile,
    check_weight,
    layer_tuple,
    parse_memory,
    scale_sides,
)
from .vgg import ARCHS, POOLINGS, check_layers, min_side
from .weights import WeightsSpec

__all__ = ["Transfer", "CONTENT_LAYERS", "STYLE_LAYERS", "INITS", "OPTIMIZERS", "CONTENT_WEIGHT",
           "STYLE_WEIGHT", "TV_WEIGHT", "default_steps", "default_lr", "check_weight", "check_count",
           "scale_sides", "FLOAT32_MAX", "LBFGS_HISTORY", "TILED_LBFGS_HISTORY"]

CONTENT_LAYERS = ("relu4_2",)
STYLE_LAYERS = ("relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu5_1")
INITS = ("content", "noise", "style")
OPTIMIZERS = ("lbfgs", "adam")
#: Loss weights alpha, beta, gamma: d2l's 1 : 1e4 : 10, with TV converted from d2l's normalized pixels
#: (one unit = ImageNet std ~0.226) to [0, 1] pixels: 10 / 0.226 ~ 44. Sources: docs/defaults.md.
CONTENT_WEIGHT, STYLE_WEIGHT, TV_WEIGHT = 1.0, 1e4, 44.0
ADAM_LR = 0.068  # d2l's 0.3 on normalized pixels x ImageNet's mean std 0.226 -> [0, 1] pixels
Init = Union[str, torch.Tensor]
Steps = Union[int, Sequence[int], None]


def default_steps(optimizer: str) -> int:
    """300 for L-BFGS (PyTorch tutorial), 500 for Adam (d2l). Quick mode does not change it: the
    course picks its own counts with :func:`nstlib.course.pick`."""
    return 300 if optimizer == "lbfgs" else 500


def default_lr(optimizer: str) -> float:
    """1.0 for L-BFGS (PyTorch's default), 0.068 for Adam (d2l's step size in [0, 1] pixel units)."""
    return 1.0 if optimizer == "lbfgs" else ADAM_LR


@dataclasses.dataclass(frozen=True, eq=False)
class Transfer:
    """Every option of one style transfer (Gatys et al.), validated when it is made.

    Images (anything :func:`nstlib.load_image` reads): ``content``; ``style`` (one, or a tuple
    blended with ``style_blend``; None for a content reconstruction); ``mask`` and
    ``style_outside`` (:mod:`nstlib.masks`); ``init``: ``"content"``, ``"noise"``, ``"style"`` or
    an image tensor (continue from it). Loss: ``content_weight``, ``style_weight``, ``tv_weight``
    (alpha, beta, gamma, >= 0, not all 0), ``style_layer_weights`` ``{layer: w_l}``;
    ``content_layers``, ``style_layers`` (a name or a sequence of names). Network: ``arch``,
    ``pooling``, ``weights``, ``precision``. Optimization: ``optimizer``, ``steps`` (per stage
    with ``scales``: one count or one per stage), ``lr``, ``seed``, ``every`` (snapshot and
    callback period), ``size``, ``scales``, ``device``. Colour and style: ``preserve_color``,
    ``style_scale``. Large images (:mod:`nstlib.tiling`): ``tile``, ``max_memory``,
    ``checkpoint``, ``lbfgs_history``. See :func:`nstlib.stylize` for each option's meaning.
    """

    content: ImageSource = dataclasses.field(repr=False)
    style: Any = dataclasses.field(default=None, repr=False)
    content_weight: float = CONTENT_WEIGHT
    style_weight: float = STYLE_WEIGHT
    tv_weight: float = TV_WEIGHT
    content_layers: tuple[str, ...] = CONTENT_LAYERS
    style_layers: tuple[str, ...] = STYLE_LAYERS
    style_layer_weights: Mapping[str, float] | None = None
    arch: str = "vgg19"
    pooling: str = "max"
    weights: WeightsSpec = dataclasses.field(default="imagenet", repr=False)
    precision: str = "fp32"
    optimizer: str = "lbfgs"
    steps: Steps = None
    lr: float | None = None
    init: Init = dataclasses.field(default="content", repr=False)
    size: int | tuple[int, int] | None = None
    scales: int | tuple[int, ...] | None = None
    seed: int = 0
    every: int | None = None
    device: str | torch.device | None = None
    preserve_color: str | None = None
    style_blend: tuple[float, ...] | None = None
    style_scale: float = 1.0
    mask: ImageSource | None = dataclasses.field(default=None, repr=False)
    style_outside: ImageSource | None = dataclasses.field(default=None, repr=False)
    tile: int | str | None = None
    max_memory: int | str | None = None
    checkpoint: bool = False
    lbfgs_history: int | None = None

    def __post_init__(self) -> None:
        fix = lambda name, value: object.__setattr__(self, name, value)  # noqa: E731 (frozen)
        if self.content is None:
            raise ValueError("content is None; give a content image (a path, URL, example name or tensor)")
        for name in ("content_weight", "style_weight", "tv_weight"):
            fix(name, check_weight(name, getattr(self, name)))
        if not (self.content_weight or self.style_weight or self.tv_weight):
            raise ValueError("content_weight, style_weight and tv_weight are all 0: there is nothing to "
                             "optimize; set at least one of them > 0")
        fix("content_layers", layer_tuple("content_layers", self.content_layers))
        fix("style_layers", layer_tuple("style_layers", self.style_layers))
        check_choice("arch", self.arch, ARCHS)
        check_layers(self.content_layers + self.style_layers, self.arch)
        if self.style_layer_weights is not None:
            if not isinstance(self.style_layer_weights, Mapping):
                raise ValueError("style_layer_weights must be a dict {layer: weight}, got "
                                 f"{self.style_layer_weights!r}")
            for name, w in self.style_layer_weights.items():
                if name not in self.style_layers:
                    raise LayerError(f"style_layer_weights names {name!r}, which is not in style_layers "
                                     f"{list(self.style_layers)}; add it there or remove its weight")
                check_weight(f"style_layer_weights[{name!r}]", w)
            fix("style_layer_weights", dict(self.style_layer_weights))
        check_choice("pooling", self.pooling, POOLINGS)
        check_choice("precision", self.precision, PRECISIONS)
        check_choice("optimizer", self.optimizer, OPTIMIZERS)
        if not isinstance(self.init, torch.Tensor):
            check_choice("init", self.init, INITS, " or pass an image tensor")
            if self.init == "style" and self.style is None:
                raise ValueError("init='style' needs a style image; pass style=... or init='content' or 'noise'")
        self._check_steps()
        if self.lr is not None:
            fix("lr", check_lr(self.lr))
        if self.size is not None:
            fix("size", check_size(self.size))
        if isinstance(self.seed, bool) or not isinstance(self.seed, numbers.Integral) or \
                not -2**63 <= self.seed < 2**64:
            raise ValueError(f"seed must be a whole number such as 0 (it seeds the noise init), got {self.seed!r}")
        if self.every is not None:
            fix("every", check_count("every (the snapshot period; None: steps // 10)", self.every))
        resolve_device(self.device)  # unknown names and missing GPUs raise ValueError here
        self._check_style_options()
        self._check_memory_options()

    def _check_steps(self) -> None:
        if self.scales is not None:
            if isinstance(self.scales, bool) or not isinstance(self.scales, (numbers.Integral, Sequence)):
                raise ValueError(f"scales must be a number of octaves such as 3 or ascending sides such as "
                                 f"[128, 256, 512], got {self.scales!r}")
            if isinstance(self.scales, Sequence):
                object.__setattr__(self, "scales", tuple(self.scales))
            if self.size is not None and not isinstance(self.size, numbers.Integral):
                raise ValueError(f"scales needs size as one int (the longest side), got {self.size!r}")
        if self.steps is None or isinstance(self.steps, numbers.Integral):
            if self.steps is not None:
                object.__setattr__(self, "steps", check_count("steps", self.steps))
            return
        if self.scales is None or isinstance(self.steps, (str, bytes)) or not isinstance(self.steps, Sequence):
            raise ValueError(f"steps must be a positive whole number such as 100 (a list only with "
                             f"scales=...), got {self.steps!r}")
        object.__setattr__(self, "steps", tuple(check_count("steps", n) for n in self.steps))

    def _check_style_options(self) -> None:
        if self.preserve_color is not None:
            check_choice("preserve_color", self.preserve_color, PRESERVE_COLOR, " or None")
        style_side((1, 1), self.style_scale)  # a positive, finite number
        object.__setattr__(self, "style_scale", float(self.style_scale))
        if isinstance(self.style, list):
            object.__setattr__(self, "style", tuple(self.style))
        if self.style is None and (self.style_blend is not None or self.style_outside is not None):
            raise ValueError("style_blend and style_outside need a style image; pass style=...")
        if self.style is not None and not self.styles:
            raise ValueError("style is an empty list; give at least one style image")
        if self.style_blend is not None:
            object.__setattr__(self, "style_blend", tuple(self.blend()))
        if self.style_outside is not None and self.mask is None:
            raise ValueError("style_outside is painted outside the mask: pass mask=... as well")

    def _check_memory_options(self) -> None:
        object.__setattr__(self, "tile", check_tile(self.tile))
        object.__setattr__(self, "max_memory", parse_memory(self.max_memory))
        if self.max_memory is not None and self.tile != "auto":
            raise ValueError(f"max_memory ({self.max_memory} bytes) is the budget of tile='auto'; pass "
                             "tile='auto' as well, or leave max_memory out")
        if not isinstance(self.checkpoint, bool):
            raise ValueError(f"checkpoint must be True or False (gradient checkpointing through VGG), "
                             f"got {self.checkpoint!r}")
        if self.lbfgs_history is not None:
            object.__setattr__(self, "lbfgs_history", check_count(
                f"lbfgs_history (L-BFGS's curvature pairs; None: {LBFGS_HISTORY}, {TILED_LBFGS_HISTORY} "
                "in tiled stages)", self.lbfgs_history))
        if self.tile is not None and (self.mask is not None or self.style_outside is not None):
            raise ValueError("tile does not support a mask or style_outside; run masked transfers untiled "
                             "(tile=None)")

    # ------------------------------------------------------------------ derived values
    def history_size(self, tiled: bool) -> int:
        """L-BFGS's curvature pairs in a stage: ``lbfgs_history``, else :data:`LBFGS_HISTORY` (100)
        untiled and :data:`TILED_LBFGS_HISTORY` (10) in a tiled stage, where 100 image-sized pairs
        would outweigh the tiles (10 GB at 2048 px)."""
        if self.lbfgs_history is not None:
            return self.lbfgs_history
        return TILED_LBFGS_HISTORY if tiled else LBFGS_HISTORY

    @property
    def styles(self) -> list:
        """The style images as a list ([] without a style)."""
        if self.style is None:
            return []
        return list(self.style) if isinstance(self.style, tuple) else [self.style]

    def blend(self) -> list[float]:
        """The blend weights of the styles, normalized to sum 1 (equal by default)."""
        return blend_weights(self.style_blend, max(1, len(self.styles)))

    def min_side(self) -> int:
        """The smallest image side the layers in use accept (at least 2 px, for the TV term)."""
        in_use = ((list(self.content_layers) if self.content_weight else [])
                  + (list(self.style_layers) if self.style is not None and self.style_weight else []))
        return max(2, min_side(in_use or list(self.content_layers + self.style_layers), self.arch))

    def resolved(self) -> Transfer:
        """A copy with every default filled in: device, size, steps (a tuple per stage with
        ``scales``) and lr. Raises ValueError for scales that do not fit the size."""
        dev = resolve_device(self.device)
        size = self.size
        if size is None:
            size = (self.scales[-1] if isinstance(self.scales, tuple) and self.scales else default_size(dev))
        steps = default_steps(self.optimizer) if self.steps is None else self.steps
        if self.scales is not None:
            sides = scale_sides(self.scales, int(size))  # type: ignore[arg-type]
            counts = (steps,) * len(sides) if isinstance(steps, int) else tuple(steps)  # type: ignore[arg-type]
            if len(counts) != len(sides):
                raise ValueError(f"steps lists {len(counts)} counts for {len(sides)} scales {sides}; "
                                 "give one per scale")
            steps = counts
        lr = default_lr(self.optimizer) if self.lr is None else self.lr
        return dataclasses.replace(self, device=dev, size=size, steps=steps, lr=lr)

    def with_extractor(self, extractor: Any) -> Transfer:
        """This spec with the network settings and device of a built :class:`nstlib.VGGFeatures`."""
        return dataclasses.replace(self, arch=extractor.arch, pooling=extractor.pooling,
                                   precision=extractor.precision, device=extractor.device)

    def loss_weights(self) -> dict[str, Any]:
        """``{content_weight, style_weight, tv_weight, style_layer_weights}``, for
        :meth:`nstlib.Objective.set_weights`."""
        return dict(content_weight=self.content_weight, style_weight=self.style_weight,
                    tv_weight=self.tv_weight, style_layer_weights=self.style_layer_weights)

    def params(self, side: int, weights_source: str) -> dict[str, Any]:
        """The plain-dict summary of a run (``Result.params``): numbers, names and lists."""
        return dict(content_weight=self.content_weight, style_weight=self.style_weight,
                    tv_weight=self.tv_weight, optimizer=self.optimizer, steps=self.steps,
                    init=self.init if isinstance(self.init, str) else "image", size=side, seed=self.seed,
                    content_layers=list(self.content_layers), style_layers=list(self.style_layers),
                    arch=self.arch, pooling=self.pooling, weights=weights_source,
                    preserve_color=self.preserve_color,
                    style_blend=self.blend() if self.style is not None else None,
                    style_scale=self.style_scale, mask=self.mask is not None,
                    precision=self.precision, lr=self.lr, tile=self.tile, checkpoint=self.checkpoint,
                    lbfgs_history=self.lbfgs_history)

    def name(self, side: int) -> str:
        """The result's file name: images, optimizer, weights, side and option tags."""
        many = len(self.styles) > 1
        styles = "+".join(label(s, f"style{i + 1}" if many else "style") for i, s in enumerate(self.styles))
        tags = option_tags(self.params(side, ""))
        return format_name(label(self.content, "content"), styles or None, self.optimizer,
                           self.content_weight, self.style_weight, self.tv_weight, side, tags=tags)

    def describe(self) -> str:
        """A readable multi-line summary (images by name), e.g. for ``python -m nstlib --show``."""
        images = dict(content=self.content, style=self.style, mask=self.mask, style_outside=self.style_outside,
                      init=self.init)

        def name(v: object) -> str:  # a path or name as given; a tensor or array by its type
            if isinstance(v, tuple):
                return ", ".join(name(x) for x in v)
            return str(v) if isinstance(v, (str, Path)) else f"<{type(v).__name__}>"
        lines = [f"{k:20} {name(v)}" for k, v in images.items() if v is not None]
        skip = set(images) | {"weights"}
        lines += [f"{f.name:20} {getattr(self, f.name)!r}" for f in dataclasses.fields(self) if f.name not in skip]
        lines.append(f"{'weights':20} {self.weights!r}" if isinstance(self.weights, (str, Path, type(None)))
                     else f"{'weights':20} (a state dict)")
        return "\n".join(lines)
