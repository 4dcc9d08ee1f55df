"""Figures: image grids and loss curves."""
from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch

__all__ = ["show", "plot_history"]


def _as_array(img: Any) -> np.ndarray:
    """A tensor [1|3, H, W] / [1, 3, H, W], PIL image or array -> (H, W, 3) or (H, W) float array."""
    if isinstance(img, torch.Tensor):
        t = img.detach().float().cpu()
        if t.dim() == 4:
            t = t[0]
        if t.dim() == 3:
            t = t.permute(1, 2, 0)
            if t.shape[2] == 1:
                t = t[..., 0]
        return t.clamp(0, 1).numpy()
    return np.asarray(img)


def show(*imgs: Any, titles: Sequence[str] | None = None, ncols: int | None = None,
         size: float = 3.5, cmap: str | None = None):
    """Show images side by side in a matplotlib grid and return the figure.

    Args:
        imgs: tensors ([1, 3, H, W], [3, H, W], [H, W]), PIL images or arrays (also one list of them).
        titles: one title per image.
        ncols: images per row (default: all in one row, at most 4).
    """
    import matplotlib.pyplot as plt
    if len(imgs) == 1 and isinstance(imgs[0], (list, tuple)):
        imgs = tuple(imgs[0])
    n = len(imgs)
    if n == 0:
        raise ValueError("show() needs at least one image")
    if titles is not None and len(titles) != n:
        raise ValueError(f"show(): {n} images but {len(titles)} titles")
    ncols = ncols or min(n, 4)
    nrows = math.ceil(n / ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(size * ncols, size * nrows), squeeze=False)
    for i, ax in enumerate(axes.flat):
        ax.axis("off")
        if i < n:
            arr = _as_array(imgs[i])
            ax.imshow(arr, cmap=cmap or ("gray" if arr.ndim == 2 else None))
            if titles is not None:
                ax.set_title(titles[i], fontsize=10)
    fig.tight_layout()
    return fig


#: derived curves: the weighted terms, from the weights in force recorded in each history entry
WEIGHTED = {"α·content": ("content_weight", "content"), "β·style": ("style_weight", "style"),
            "γ·tv": ("tv_weight", "tv")}


def _curve(hist: Sequence[Mapping], key: str) -> list[float]:
    if key in WEIGHTED:
        w, term = WEIGHTED[key]
        return [float(h.get(w, 1.0)) * float(h[term]) for h in hist]
    return [float(h[key]) for h in hist]


def plot_history(results: Mapping[str, Any] | Any, x: str = "step", keys: Sequence[str] = ("total",),
                 ax=None, logy: bool = True, marks: Sequence[tuple[float, str]] = ()):
    """Plot loss curves of one :class:`Result` or a ``{label: Result}`` dict (or history lists).

    Args:
        x: ``"step"`` or ``"seconds"`` (wall time).
        keys: which losses: any of ``total``, ``content``, ``style``, ``tv`` and the weighted
            terms ``α·content``, ``β·style``, ``γ·tv`` (weight in force x term, per step).
        logy: log scale; values <= 0 (the content loss is 0 at step 1 from the content image)
            are left out of the curve instead of breaking the axis. Curves that are 0 throughout
            are not drawn.
        marks: ``[(x, label)]`` drawn as dotted vertical lines (e.g. where the weights changed).

    The legend sits outside the axes, right of the curves.
    """
    import matplotlib.pyplot as plt
    if x not in ("step", "seconds"):
        raise ValueError(f"x must be 'step' or 'seconds', got {x!r}")
    if not isinstance(results, Mapping):
        results = {"": results}
    if ax is None:
        _, ax = plt.subplots(figsize=(6, 4))
    drawn = 0
    for label, res in results.items():
        hist = res.history if hasattr(res, "history") else res
        for key in keys:
            ys = _curve(hist, key)
            if logy:
                ys = [y if y > 0 else math.nan for y in ys]
                if all(math.isnan(y) for y in ys):
                    continue
            name = " ".join(p for p in (label, key if len(keys) > 1 or not label else "") if p)
            ax.plot([h[x] for h in hist], ys, label=name or key)
            drawn += 1
    for pos, text in marks:
        ax.axvline(pos, color="0.4", linestyle=":", linewidth=1)
        ax.annotate(text, (pos, 1.0), xycoords=("data", "axes fraction"), fontsize=7, rotation=90,
                    ha="right", va="top", color="0.3")
    if logy and drawn:
        ax.set_yscale("log")
    ax.set_xlabel("step (objective evaluations)" if x == "step" else "wall time (s)")
    ax.set_ylabel("loss")
    ax.grid(True, alpha=0.3)
    if drawn:
        ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8, frameon=False)
    return ax
