"""L-BFGS for a batch of independent images: one curvature history per image.

:func:`nstlib.sweep` optimizes a grid of images as one batch [B, 3, H, W]. Its objective is a sum
of per-image objectives, so the gradient of image b is that of its own objective. Plain
``torch.optim.LBFGS`` would still couple the images: it treats the batch as one long vector, so
every dot product (curvature pairs, step scalars) mixes all images, and a loud image steers the
steps of a quiet one. :class:`BatchLBFGS` keeps every scalar per image (dot products over each
image's pixels, shape [B, 1, 1, 1]), which makes it B independent copies of the
``torch.optim.LBFGS`` iteration without line search (the engine's setting) run in lockstep.

The one difference: when a curvature pair is rejected for some images only (``y.s <= 1e-10``, as
torch does), it is stored with weight 0 for them, so it still occupies a slot of their history.
"""
from __future__ import annotations

from typing import Callable

import torch

__all__ = ["BatchLBFGS"]


class BatchLBFGS(torch.optim.Optimizer):
    """L-BFGS (fixed step ``lr``, no line search) on each image of one tensor [B, ...] separately.

    One :meth:`step` performs ``max_iter`` evaluations of ``closure``, like ``torch.optim.LBFGS``
    with its tolerances disabled. The first step of each image is scaled by
    ``min(1, 1 / |g_b|_1)`` as in torch.
    """

    def __init__(self, params, lr: float = 1.0, max_iter: int = 20, history_size: int = 100) -> None:
        super().__init__(params, dict(lr=lr, max_iter=max_iter, history_size=history_size))
        if len(self.param_groups) != 1 or len(self.param_groups[0]["params"]) != 1:
            raise ValueError("BatchLBFGS optimizes exactly one tensor [B, ...] (a batch of images)")

    @torch.no_grad()
    def step(self, closure: Callable[[], torch.Tensor]) -> torch.Tensor:  # type: ignore[override]
        group = self.param_groups[0]
        x = group["params"][0]
        lr, max_iter, size = group["lr"], group["max_iter"], group["history_size"]
        b = x.shape[0]
        shape = (b,) + (1,) * (x.dim() - 1)

        def dot(u: torch.Tensor, v: torch.Tensor) -> torch.Tensor:  # per-image u.v, no temporaries
            return torch.bmm(u.reshape(b, 1, -1), v.reshape(b, -1, 1)).reshape(shape)

        def evaluate() -> tuple[torch.Tensor, torch.Tensor]:
            with torch.enable_grad():
                loss = closure()
            return loss, x.grad.detach().clone()  # the caller zeroes x.grad in place

        st = self.state[x]
        first_loss, grad = evaluate()
        d, t, prev, h = st.get("d"), st.get("t"), st.get("prev"), st.get("h")
        dirs, stps, ro = st.get("dirs", []), st.get("stps", []), st.get("ro", [])
        for n in range(1, max_iter + 1):
            st["n_iter"] = st.get("n_iter", 0) + 1
            if st["n_iter"] == 1:
                d, dirs, stps, ro = grad.neg(), [], [], []
                h = torch.ones(shape, dtype=x.dtype, device=x.device)
            else:
                y, s = grad - prev, d * t
                ys = dot(y, s)
                ok = ys > 1e-10
                if bool(ok.any()):
                    if len(dirs) == size:
                        dirs.pop(0), stps.pop(0), ro.pop(0)
                    dirs.append(y), stps.append(s)
                    ro.append(torch.where(ok, 1.0 / ys, torch.zeros_like(ys)))
                    h = torch.where(ok, ys / dot(y, y), h)
                q, al = grad.neg(), {}
                for i in range(len(dirs) - 1, -1, -1):
                    al[i] = dot(stps[i], q) * ro[i]
                    q.addcmul_(dirs[i], al[i], value=-1.0)
                d = q.mul_(h)
                for i in range(len(dirs)):
                    d.addcmul_(stps[i], al[i] - dot(dirs[i], d) * ro[i])
            prev = grad  # a fresh tensor every evaluation, never written to
            if st["n_iter"] == 1:
                t = (1.0 / grad.abs().reshape(b, -1).sum(1)).clamp(max=1.0).reshape(shape) * lr
            else:
                t = lr
            if isinstance(t, torch.Tensor):
                x.addcmul_(d, t)
            else:
                x.add_(d, alpha=t)
            if n == max_iter:
                break
            _, grad = evaluate()
        st.update(d=d, t=t, prev=prev, h=h, dirs=dirs, stps=stps, ro=ro)
        return first_loss
