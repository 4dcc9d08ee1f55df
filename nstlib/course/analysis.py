r"""Measurements for the course: how the gradient of a loss travels back through VGG.

Notebook 03 uses these to compare max and average pooling with numbers instead of claims.
For a loss :math:`\mathcal{L}` computed from the features at some layers, backpropagation
delivers :math:`\partial \mathcal{L} / \partial F^l` to every earlier layer :math:`l` and finally
:math:`\partial \mathcal{L} / \partial x` to the image. :func:`gradient_flow` measures, at each
tap and at the image,

* ``norm``: the Euclidean norm :math:`\lVert \partial \mathcal{L} / \partial F^l \rVert_2`;
* ``gain``: that norm divided by the norm at the deepest tap (how much the gradient grew or
  shrank on its way back; independent of the loss's overall scale);
* ``density``: the fraction of entries that receive a nonzero gradient;
* ``spread``: :math:`(\sum_k |g_k|)^2 / (N \sum_k g_k^2)`, 1 when every entry gets the same
  magnitude and :math:`1/N` when one entry gets everything (how evenly the gradient is shared);
* ``feature_rms``: :math:`\sqrt{\operatorname{mean}(F^2)}` of the features themselves.
"""
from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Callable

import torch

from ..vgg import VGGFeatures, check_layers

__all__ = ["gradients", "gradient_flow", "pooling_pair", "same_weights", "relative_history", "gradient_table",
           "plot_gradient_flow", "METRICS"]

#: The measurements :func:`gradient_flow` returns for every tap (and the image).
METRICS = ("norm", "gain", "density", "spread", "feature_rms")
LossFn = Callable[[Mapping[str, torch.Tensor]], torch.Tensor]


def _stats(grad: torch.Tensor, feats: torch.Tensor) -> dict[str, float]:
    # float64 sums on the CPU: MPS has no float64
    g = grad.detach().cpu().double()
    n = g.numel()
    sq = float((g * g).sum())
    l1 = float(g.abs().sum())
    return {"norm": sq ** 0.5, "density": int((g != 0).sum()) / n,
            "spread": l1 * l1 / (n * sq) if sq > 0 else 0.0,
            "feature_rms": float(feats.detach().cpu().double().pow(2).mean().sqrt())}


def gradients(extractor: VGGFeatures, image: torch.Tensor, loss_fn: LossFn,
              taps: Iterable[str] | None = None) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    r"""Backpropagate ``loss_fn(features)`` once: ``{tap: (features, d loss / d features)}``.

    Args:
        extractor: the VGG network (its pooling decides how the gradient crosses each pooling).
        image: [1, 3, H, W] in [0, 1]; not modified.
        loss_fn: ``loss_fn({tap: Tensor[1, C, H, W]}) -> scalar tensor``, e.g. a style loss at
            one deep layer. It may use any of the taps.
        taps: the layers to measure, in any order (default: ``extractor.layers``).

    Returns:
        Detached tensor pairs in network order, then ``"image"`` (the pixels and
        :math:`\partial \mathcal{L} / \partial x`, both [1, 3, H, W]). A tap the loss does not
        depend on (deeper than every layer it uses) gets a zero gradient.
    """
    taps = check_layers(extractor.layers if taps is None else taps, extractor.arch)
    taps = sorted(dict.fromkeys(taps), key=extractor.layer_names.index)
    x = image.detach().clone().requires_grad_(True)
    feats = extractor(x, taps)
    loss = loss_fn(feats)
    if not isinstance(loss, torch.Tensor) or loss.numel() != 1 or not loss.requires_grad:
        raise ValueError("loss_fn must return a scalar tensor computed from the features it is given")
    tensors = [feats[t] for t in taps] + [x]
    grads = torch.autograd.grad(loss.reshape(()), tensors, allow_unused=True)
    return {name: (f.detach(), torch.zeros_like(f) if g is None else g.detach())
            for name, f, g in zip(taps + ["image"], tensors, grads)}


def gradient_flow(extractor: VGGFeatures, image: torch.Tensor, loss_fn: LossFn,
                  taps: Iterable[str] | None = None) -> dict[str, dict[str, float]]:
    """The :data:`METRICS` of :func:`gradients` (same arguments) at every tap, then ``"image"``.

    ``gain`` is relative to the deepest tap; the image's ``feature_rms`` is its pixels' RMS.
    """
    out = {name: _stats(g, f) for name, (f, g) in gradients(extractor, image, loss_fn, taps).items()}
    deepest = out[list(out)[-2]]["norm"]
    for row in out.values():
        row["gain"] = row["norm"] / deepest if deepest > 0 else float("nan")
    return out


def same_weights(a: VGGFeatures, b: VGGFeatures) -> bool:
    """True when the convolutions the two extractors share have identical weights and biases."""
    pa, pb = dict(a.body.named_parameters()), dict(b.body.named_parameters())
    common = pa.keys() & pb.keys()
    return bool(common) and all(torch.equal(pa[k].cpu(), pb[k].cpu()) for k in common)


def pooling_pair(layers: Sequence[str], weights: Any = "imagenet", arch: str = "vgg19",
                 device: str | torch.device | None = None, seed: int = 0
                 ) -> tuple[VGGFeatures, VGGFeatures]:
    """Two extractors, max pooling and average pooling, with the same weights (verified).

    Random weights with the same ``seed`` do not depend on the pooling, so offline the pair
    also shares its weights. Returns ``(max_ext, avg_ext)``.
    """
    pair = tuple(VGGFeatures(arch, layers, pooling=p, weights=weights, device=device, seed=seed)
                 for p in ("max", "avg"))
    if not same_weights(*pair):
        raise RuntimeError("pooling_pair: the two extractors ended up with different weights")
    return pair  # type: ignore[return-value]


def relative_history(result: Any, key: str = "total") -> list[dict[str, float]]:
    """A run's history with ``key`` divided by its first value (so runs on different objectives compare).

    ``result`` is a :class:`nstlib.Result` or its ``.history``; the returned dicts keep ``step``
    and ``seconds`` and hold the ratio under ``key``, ready for :func:`nstlib.plot_history`.
    """
    hist = result.history if hasattr(result, "history") else list(result)
    if not hist:
        return []
    first = hist[0][key] or 1.0
    return [{"step": h["step"], "seconds": h.get("seconds", 0.0), key: h[key] / first} for h in hist]


def gradient_table(flows: Mapping[str, Mapping[str, Mapping[str, float]]],
                   metrics: Sequence[str] = ("norm", "gain", "density", "spread")) -> str:
    """A text table of :func:`gradient_flow` results: one row per layer, one column per
    (metric, label), e.g. ``flows = {"max": ..., "avg": ...}``."""
    labels = list(flows)
    rows = list(next(iter(flows.values())))
    head = ["layer"] + [f"{m} {lab}" for m in metrics for lab in labels]
    body = [[r] + [_fmt(m, flows[lab][r][m]) for m in metrics for lab in labels] for r in rows]
    widths = [max(len(line[i]) for line in [head] + body) for i in range(len(head))]
    lines = ["  ".join(c.rjust(w) if i else c.ljust(w) for i, (c, w) in enumerate(zip(line, widths)))
             for line in [head] + body]
    return "\n".join(lines[:1] + ["-" * len(lines[0])] + lines[1:])


def _fmt(metric: str, v: float) -> str:
    return f"{v:.2f}" if metric in ("density", "spread") else f"{v:.3g}"


def plot_gradient_flow(flows: Mapping[str, Mapping[str, Mapping[str, float]]],
                       metrics: Sequence[str] = ("gain", "density"), axes: Any = None):
    """One panel per metric: each label's value at every layer (network order, image last).

    ``norm``, ``gain`` and ``feature_rms`` use a log scale. Returns the matplotlib figure.
    """
    import matplotlib.pyplot as plt
    if axes is None:
        fig, axes = plt.subplots(1, len(metrics), figsize=(5.5 * len(metrics), 3.8), squeeze=False)
        axes = axes[0]
    fig = axes[0].figure
    for ax, m in zip(axes, metrics):
        for label, flow in flows.items():
            names = list(flow)
            ax.plot(range(len(names)), [flow[n][m] for n in names], marker="o", label=label)
        ax.set_xticks(range(len(names)), names, rotation=30)
        ax.set_title(m)
        if m in ("norm", "gain", "feature_rms"):
            ax.set_yscale("log")
        else:
            ax.set_ylim(0, 1.05)
        ax.grid(True, alpha=0.3)
        ax.legend()
    fig.tight_layout()
    return fig
