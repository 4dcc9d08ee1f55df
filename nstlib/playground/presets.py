"""Named starting points for the playground, each traced to its source (see ``docs/defaults.md``).

A preset sets the controls (it does not run): weights, layers, pooling, optimizer, start image.
Layer names are nstlib's (the ReLU outputs, ``relu4_2``...); where a source taps other layers the
entry says what it really used. The gamma slider is logarithmic, so "no TV term" is its minimum, 1e-4.
"""
from __future__ import annotations

from typing import Any

__all__ = ["PRESETS", "apply_preset"]

PAPER_STYLE = ("relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu5_1")

#: name -> (source, settings). Settings keys: alpha, beta, gamma, content_layer, style_layers,
#: pooling, optimizer, init.
PRESETS: dict[str, tuple[str, dict[str, Any]]] = {
    "Gatys et al. (the paper)": (
        "Gatys, Ecker & Bethge, CVPR 2016: content conv4_2, style conv1_1 ... conv5_1 (Caffe's in-place "
        "ReLUs: relu4_2, relu1_1 ... relu5_1), max pooling replaced by average pooling, L-BFGS from white "
        "noise, no TV term. Its alpha/beta of 1e-3 is for its sum-normalized losses; nstlib's mean-normalized "
        "losses take d2l's 1 : 1e4 for the same layers.",
        dict(alpha=1.0, beta=1e4, gamma=1e-4, content_layer="relu4_2", style_layers=PAPER_STYLE,
             pooling="avg", optimizer="lbfgs", init="noise")),
    "d2l (Dive into Deep Learning)": (
        "d2l, 'Neural Style Transfer': content_weight 1, style_weight 1e4, tv_weight 10 on normalized "
        "pixels (44 on [0, 1] pixels); features[25] and [0, 5, 10, 19, 28] = relu4_2 and relu1_1 ... relu5_1; "
        "max pooling; Adam (lr 0.3 -> 0.068 on [0, 1] pixels) from the content image.",
        dict(alpha=1.0, beta=1e4, gamma=44.0, content_layer="relu4_2", style_layers=PAPER_STYLE,
             pooling="max", optimizer="adam", init="content")),
    "PyTorch tutorial": (
        "PyTorch 'Neural Transfer Using PyTorch': content conv_4, style conv_1 ... conv_5 = conv2_2 and "
        "conv1_1, conv1_2, conv2_1, conv2_2, conv3_1 (pre-ReLU there; here their ReLU outputs), "
        "style_weight 1e6, content_weight 1, no TV, max pooling, L-BFGS from the content image.",
        dict(alpha=1.0, beta=1e6, gamma=1e-4, content_layer="relu2_2",
             style_layers=("relu1_1", "relu1_2", "relu2_1", "relu2_2", "relu3_1"),
             pooling="max", optimizer="lbfgs", init="content")),
}


def apply_preset(pg: Any, name: str) -> str:
    """Set ``pg``'s controls to preset ``name``; returns its source line. ValueError for an unknown name."""
    if name not in PRESETS:
        raise ValueError(f"unknown preset {name!r}; choose one of {', '.join(PRESETS)}")
    source, s = PRESETS[name]
    pg.alpha.value, pg.beta.value, pg.gamma.value = s["alpha"], s["beta"], s["gamma"]
    pg.content_layer.value = s["content_layer"]
    for layer, box in pg.layer_on.items():
        box.value = layer in s["style_layers"]
    for layer in s["style_layers"]:
        pg.layer_w[layer].value = 1.0
    pg.pooling.value, pg.optimizer.value, pg.init.value = s["pooling"], s["optimizer"], s["init"]
    return source
