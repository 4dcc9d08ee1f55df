"""The playground's controls as one :class:`nstlib.Transfer` (:func:`build_spec`)."""
from __future__ import annotations

import html
from collections.abc import Sequence
from typing import Any

import torch

from ..image import load_image
from ..masks import shape_mask
from ..spec import Transfer

__all__ = ["build_spec", "style_options", "describe_run", "banner_html", "SCALES"]

#: the *scales* choices: "1" = one size; "2", "3" = coarse to fine over 2 or 3 octaves
SCALES = ("1", "2", "3")


def style_options(p: dict, content_shape: Sequence[int]) -> dict[str, Any]:
    """The :class:`nstlib.Transfer` style and mask fields of a playground run ``p``."""
    style2, mask = p.get("style2"), shape_mask(p.get("mask_shape", "none"), *content_shape)
    if style2 is not None and p.get("style2_mode") == "outside" and mask is None:
        raise ValueError(f"the second style ({style2}) goes outside the mask, and no mask is chosen: "
                         "pick a shape under 'style inside', or use the second style to blend")
    if style2 is not None and p.get("style2_mode") == "blend":
        return dict(style=(p["style"], style2), style_blend=(p["blend"], 1.0 - p["blend"]), mask=mask)
    return dict(style=p["style"], mask=mask, style_outside=style2)


def build_spec(p: dict, weights: Any, device: Any, init: Any = None) -> Transfer:
    """The run ``p`` (``Playground.params``) as a Transfer; ``init`` (a tensor) overrides ``p["init"]``.

    The callback period ``every`` is ``steps // 100`` (at least 1): about 100 frames and
    snapshots per run; the live weights are read at every step regardless."""
    steps, size = int(p["steps"]), int(p["size"])
    mask_shape = p.get("mask_shape", "none")
    shape = tuple(load_image(p["content"], size=size, device="cpu").shape[-2:]) if mask_shape != "none" \
        else (size, size)
    scales = int(p.get("scales", "1"))
    return Transfer(p["content"], content_weight=p["alpha"], style_weight=p["beta"], tv_weight=p["gamma"],
                    content_layers=(p["content_layer"],), style_layers=tuple(p["style_layers"]),
                    style_layer_weights=p["style_layer_weights"], arch=p.get("arch", "vgg19"),
                    pooling=p["pooling"], weights=weights, precision=p.get("precision", "fp32"),
                    optimizer=p["optimizer"], steps=steps, lr=p.get("lr"),
                    init=p["init"] if init is None else init, size=size,
                    scales=scales if scales > 1 else None, seed=int(p["seed"]),
                    every=max(1, steps // 100), device=device, preserve_color=p.get("preserve_color"),
                    style_scale=float(p.get("style_scale", 1.0)), tile=p.get("tile"), **style_options(p, shape))


def describe_run(spec: Transfer, steps: int, init: Any) -> str:
    """The line above the result: the settings of the run in progress."""
    start = "the current image" if isinstance(init, torch.Tensor) else spec.init
    return (f"this run: {len(spec.style_layers)} style layers, content {', '.join(spec.content_layers)}, "
            f"{spec.pooling} pooling, {spec.optimizer}, {steps} steps, {spec.size} px, {spec.arch}, "
            f"{spec.precision}, from {start}" + (f", scales {spec.scales}" if spec.scales else "")
            + (f", tiles {spec.tile} px" if isinstance(spec.tile, int) else ", tiles auto" if spec.tile else ""))


def banner_html(ext: Any, warnings: list[str]) -> str:
    """The banner: the random-weights notice (for an untrained ``ext``) and each warning once."""
    parts = []
    if ext is not None and not ext.pretrained:
        parts.append(f"&#9888; RANDOM WEIGHTS ({html.escape(str(ext.weights_source))}): these images are "
                     "NOT style-transfer results.")
    parts += [f"<small>{html.escape(w)}</small>" for w in warnings if "RandomWeights" not in w]
    return ('<div style="border:2px solid #c00;background:#fee;color:#900;padding:4px;font-weight:bold">'
            + "<br>".join(parts) + "</div>") if parts else ""
