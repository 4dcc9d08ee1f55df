"""The check of the loss-scale exercise: turn the paper's weights into nstlib's.

The reference is the paper's objective written out with NumPy sums in float64 (its content loss
1/2 sum (F - P)^2 and E_l = 1/(4 N_l^2 M_l^2) sum (G - A)^2 on un-normalized Gram matrices), next to
nstlib's, built from the student's weights: the two must be proportional, with the factor that the
content term alone fixes, on random features of two different sizes.
"""
from __future__ import annotations

from typing import Callable

import numpy as np
import torch

from .common import run_check

__all__ = ["check_paper_to_nstlib"]

_HINT = ("nstlib's content loss is 2/(N_c M_c) times the paper's, and its style term at layer l is "
         "4/N_l^2 times the paper's E_l; with alpha' = 1 the factor k = 2/(N_c M_c alpha) fixes "
         "beta' w'_l = k * beta * w_l * N_l^2 / 4")


def _paper(cf, cp, sf, ss, alpha, beta, w):
    loss = alpha * 0.5 * np.sum((cf - cp) ** 2)
    for name, f in sf.items():
        n, m = f.shape[0], f.shape[1]
        g, a = f @ f.T, ss[name] @ ss[name].T
        loss += beta * w[name] * np.sum((g - a) ** 2) / (4 * n ** 2 * m ** 2)
    return loss


def check_paper_to_nstlib(fn: Callable) -> bool:
    """Check ``fn(ratio, layer_weights, channels, content_size) -> {layer: beta' * w'_l}``.

    ``ratio`` is the paper's alpha/beta; ``layer_weights`` its ``{layer: w_l}``; ``channels``
    ``{layer: N_l}``; ``content_size`` the number of entries N_c * M_c of the content layer. With
    nstlib's content weight 1 and those style weights, nstlib's objective must be the paper's times
    one constant, for any features.
    """
    from ...losses import content_loss, gram_matrix

    def body() -> tuple[bool, str]:
        g = torch.Generator().manual_seed(1)
        for side in (4, 6):  # two sizes: the conversion depends on the content layer's size
            chans = {"relu1_1": 3, "relu2_1": 5}
            cf, cp = torch.rand(1, 4, side, side, generator=g), torch.rand(1, 4, side, side, generator=g)
            sf = {n: torch.rand(1, c, side, side, generator=g) for n, c in chans.items()}
            ss = {n: torch.rand(1, c, side, side, generator=g) for n, c in chans.items()}
            ratio, w = 1e-3, {"relu1_1": 0.2, "relu2_1": 0.2}
            got = fn(ratio, dict(w), dict(chans), cf.numel())
            if not isinstance(got, dict) or set(got) != set(chans):
                return False, f"return a dict with one weight per style layer {sorted(chans)}, got {got!r:.80}"
            mine = content_loss(cf, cp).item() + sum(
                float(got[n]) * ((gram_matrix(f) - gram_matrix(ss[n])) ** 2).mean().item() for n, f in sf.items())
            np_ = lambda t: t[0].reshape(t.shape[1], -1).cpu().double().numpy()  # noqa: E731
            paper = _paper(np_(cf), np_(cp), {n: np_(f) for n, f in sf.items()},
                           {n: np_(s) for n, s in ss.items()}, 1.0, 1.0 / ratio, w)
            k = 2.0 / cf.numel()  # what the content terms alone fix (alpha = 1)
            if abs(mine / paper - k) > 1e-4 * k:
                return False, (f"at a {side}x{side} content layer nstlib's objective is {mine / paper:.4g} x the "
                               f"paper's; it should be 2 / (N_c M_c) = {k:.4g}x (the content terms fix it)")
        return True, "nstlib's objective is the paper's times 2/(N_c M_c) at both sizes"
    return run_check("paper_to_nstlib", _HINT, body)
