"""The check of notebook 07's exercise: a style loss that matches channel means and standard deviations.

The reference is computed here in float64 NumPy, loop by loop, from the formula in the exercise,
not with any nstlib loss, so a mistake in the library cannot hide the same mistake in the answer.
"""
from __future__ import annotations

from collections.abc import Mapping
from typing import Callable

import torch

from .common import not_tensor, run_check

__all__ = ["check_mean_std_loss", "mean_std_reference"]

_HINT = ("for each layer, reshape the features to [B, C, H*W]; take the mean and the standard deviation "
         "over the positions (torch.std(..., unbiased=False)); return the sum over layers of "
         "mean((mu_x - mu_s)^2) + mean((sigma_x - sigma_s)^2), a scalar tensor")


def mean_std_reference(features: Mapping[str, torch.Tensor], targets: Mapping[str, torch.Tensor],
                       ddof: int = 0) -> float:
    r"""The exercise's loss in float64: :math:`\sum_l \frac{1}{BC}\sum_{b,c}
    (\mu_{bc} - \mu^s_{c})^2 + (\sigma_{bc} - \sigma^s_{c})^2` over positions (``ddof`` 0: divide by H*W).

    ``features[l]`` is [B, C, H, W]; ``targets[l]`` is [1, C, H', W'] (the style's features)."""
    total = 0.0
    for name, t in targets.items():
        f = features[name].detach().cpu().double().numpy()
        s = t.detach().cpu().double().numpy()[0]
        b, c = f.shape[:2]
        acc = 0.0
        for i in range(b):
            for ch in range(c):
                x, y = f[i, ch].ravel(), s[ch].ravel()
                acc += (x.mean() - y.mean()) ** 2 + (x.std(ddof=ddof) - y.std(ddof=ddof)) ** 2
        total += acc / (b * c)
    return total


def check_mean_std_loss(fn: Callable) -> bool:
    """Check ``fn(features, targets) -> scalar tensor`` against the formula, on small random features.

    Cases: a hand-worked one (means 0 and 2, standard deviations 1 and 3: loss (4 + 4) / 1 = 8 for one
    channel), random features at two layers of different shapes, and a gradient that reaches the input.
    """
    def body() -> tuple[bool, str]:
        # hand-worked: x = [-1, 1, -1, 1] (mean 0, std 1); y = [-1, 5, -1, 5] (mean 2, std 3)
        x = torch.tensor([-1.0, 1.0, -1.0, 1.0]).view(1, 1, 2, 2)
        y = torch.tensor([-1.0, 5.0, -1.0, 5.0]).view(1, 1, 2, 2)
        got = fn({"relu1_1": x}, {"relu1_1": y})
        if (bad := not_tensor(got)) is not None:
            return False, bad
        if got.dim() != 0:
            return False, f"it returned a tensor of shape {tuple(got.shape)}, not a scalar"
        if abs(got.item() - 8.0) > 1e-4:
            extra = " -- that is the unbiased std; use unbiased=False" if abs(got.item() - 28 / 3) < 1e-3 else ""
            return False, (f"one channel, means 0 vs 2, stds 1 vs 3: expected (0-2)^2 + (1-3)^2 = 8, "
                           f"got {got.item():.4g}{extra}")
        g = torch.Generator().manual_seed(0)
        feats = {"relu1_1": torch.rand(1, 4, 6, 5, generator=g).requires_grad_(True),
                 "relu2_1": torch.rand(1, 8, 3, 3, generator=g).requires_grad_(True)}
        targets = {"relu1_1": 2 * torch.rand(1, 4, 7, 7, generator=g), "relu2_1": torch.rand(1, 8, 4, 2, generator=g)}
        got = fn(feats, targets)
        want = mean_std_reference(feats, targets)
        if abs(got.item() - want) > 1e-5 * max(1.0, abs(want)):
            unbiased = mean_std_reference(feats, targets, ddof=1)
            extra = (" -- that is the unbiased std; use unbiased=False (divide by H*W)"
                     if abs(got.item() - unbiased) < 1e-5 * max(1.0, unbiased) else "")
            return False, f"two layers of random features: expected {want:.6g}, got {got.item():.6g}{extra}"
        if not got.requires_grad:
            return False, "the loss carries no gradient: use torch operations only (no .item(), no numpy)"
        grads = torch.autograd.grad(got, list(feats.values()))
        if not all(torch.isfinite(gr).all() and gr.abs().sum() > 0 for gr in grads):
            return False, "the gradient does not reach every layer's features"
        return True, f"matches the formula (random case {want:.4g}) and passes gradients"
    return run_check("mean_std_loss", _HINT, body)
