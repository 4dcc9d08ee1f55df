"""The optimization engine: L-BFGS or Adam on the pixels, with callbacks, snapshots and safety nets.

One *step* is one evaluation of the objective (a forward and a backward pass through VGG), for
every optimizer, so step counts and timings compare fairly. All ``steps`` run: L-BFGS's early
stops on small gradients or small changes are switched off.

The image stays in [0, 1] by projection: before every evaluation the pixels are clamped in place
(as in the PyTorch tutorial), so every image the objective sees, and every image returned, is valid.
"""
from __future__ import annotations

import math
import numbers
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Optional

import torch

from .errors import ImageError

__all__ = ["Result", "optimize", "OPTIMIZERS", "default_lr", "Callback", "Objective"]

OPTIMIZERS = ("lbfgs", "adam")
#: ``objective(image) -> {"total", "content", "style", "tv"}`` (scalar tensors; "total" is minimized).
Objective = Callable[[torch.Tensor], dict]
#: ``callback(step, image, losses) -> bool | None``; returning False stops the run.
Callback = Callable[[int, torch.Tensor, dict], Optional[bool]]

LBFGS_HISTORY = 100  # torch.optim.LBFGS's default, as in the PyTorch tutorial
ADAM_LR = 0.068  # d2l's 0.3 on normalized pixels x ImageNet's mean std 0.226 -> [0, 1] pixels
ADAM_DECAY, ADAM_DECAY_EVERY = 0.8, 0.1  # d2l: x0.8 every 50 of 500 steps (every 10% of the run)
MAX_FAILURES = 5


def default_lr(optimizer: str) -> float:
    """1.0 for L-BFGS (PyTorch's default), 0.068 for Adam (d2l's step size in [0, 1] pixel units)."""
    return 1.0 if optimizer == "lbfgs" else ADAM_LR


@dataclass
class Result:
    """What a run produced.

    Attributes:
        image: the best image seen (lowest total loss), [1, 3, H, W] in [0, 1], on the CPU.
        history: one dict per step: ``step, total, content, style, tv, seconds`` (floats).
        snapshots: ``(step, image)`` pairs taken every ``every`` steps (CPU tensors).
        stopped: why the run ended: ``"done"``, ``"callback"`` (it returned False),
            ``"callback error"`` (it raised; a warning says what), ``"interrupted"`` or ``"diverged"``.
        best_step: the step whose image is ``image``.
        name: a file name that encodes the parameters (used by :meth:`save`).
        params: the parameters of the run.
    """

    image: torch.Tensor
    history: list = field(default_factory=list)
    snapshots: list = field(default_factory=list)
    stopped: str = "done"
    best_step: int = 0
    name: str = "result.jpg"
    params: dict = field(default_factory=dict)

    @property
    def losses(self) -> dict:
        """The losses of the best step (empty if no step ran)."""
        for h in self.history:
            if h["step"] == self.best_step:
                return dict(h)
        return {}

    @property
    def seconds(self) -> float:
        """Wall time of the run's steps."""
        return self.history[-1]["seconds"] if self.history else 0.0

    def save(self, path: str | Path | None = None, folder: str | Path = ".") -> Path:
        """Save the image (default name :attr:`name` in ``folder``); never overwrites a file.

        Returns:
            The path written (``_1``, ``_2``, ... is added if the name is taken).
        """
        from .image import save_image
        return save_image(self.image, Path(path) if path is not None else Path(folder) / self.name)

    def _repr_html_(self) -> str:  # a readable line in notebooks instead of a tensor dump
        loss = self.losses.get("total", float("nan"))
        return (f"<b>Result</b> {tuple(self.image.shape[-2:])} px, {len(self.history)} steps, "
                f"best total loss {loss:.4g} at step {self.best_step}, {self.seconds:.1f} s, {self.stopped}")


class _Stop(Exception):
    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class _Diverged(Exception):
    pass


def optimize(init: torch.Tensor, objective: Objective, *, optimizer: str = "lbfgs", steps: int = 300,
             lr: float | None = None, callback: Callback | None = None, every: int = 10,
             ) -> Result:
    """Minimize ``objective`` over the pixels of ``init`` ([1, 3, H, W] in [0, 1]).

    Runs exactly ``steps`` evaluations unless the callback returns False, the user interrupts
    (KeyboardInterrupt) or the loss keeps diverging; the best image so far is returned in
    every case. A NaN/inf loss rolls back to the best iterate, halves the step size (restarting
    L-BFGS's history) and warns once.
    """
    if optimizer not in OPTIMIZERS:
        raise ValueError(f"unknown optimizer {optimizer!r}; choose one of {', '.join(OPTIMIZERS)}")
    steps, every = check_count("steps", steps), check_count("every", every)
    if not isinstance(init, torch.Tensor) or init.dim() != 4 or not torch.isfinite(init).all():
        raise ImageError(f"the initial image must be a finite tensor [1, 3, H, W] in [0, 1], got "
                         f"{tuple(getattr(init, 'shape', ()))}; load it with nstlib.load_image")
    lr = default_lr(optimizer) if lr is None else float(lr)
    if not lr > 0:
        raise ValueError(f"lr must be positive, got {lr!r}")

    x = init.detach().clone().clamp_(0.0, 1.0).requires_grad_(True)
    best = x.detach().clone()
    res = Result(image=best)
    s = {"step": 0, "best": math.inf, "t0": time.perf_counter(), "warned": False}

    def closure() -> torch.Tensor:
        if s["step"] >= steps:
            raise _Stop("done")
        with torch.no_grad():
            x.clamp_(0.0, 1.0)
        if x.grad is not None:
            x.grad.zero_()
        losses = objective(x)
        total = losses["total"]
        s["step"] += 1
        total.backward()
        vals, per, finite = _fetch(losses, x)  # the step's only host sync
        if not finite:  # NaN/inf in the loss, its gradient or the image itself
            raise _Diverged()
        step = s["step"]
        res.history.append({"step": step, "total": vals["total"], "content": vals.get("content", 0.0),
                            "style": vals.get("style", 0.0), "tv": vals.get("tv", 0.0),
                            "seconds": time.perf_counter() - s["t0"]})
        if per:  # a batch with per-image objectives (nstlib.sweep): keep each image's best
            res.history[-1]["per_image"] = per
            bests = s.setdefault("per_best", [math.inf] * len(per))
            for i, v in enumerate(per):
                if v < bests[i]:
                    bests[i] = v
                    best[i].copy_(x[i].detach())
        if vals["total"] < s["best"]:
            s["best"] = vals["total"]
            if not per:
                best.copy_(x.detach())
            res.best_step = step
        if step % every == 0 or step == steps:
            snap = x.detach().to("cpu", copy=True)  # x is already clamped
            res.snapshots.append((step, snap))
            if callback is not None:
                try:
                    keep = callback(step, snap, vals)
                except Exception as e:  # a broken callback (display, saving, ...) must not lose the run
                    warnings.warn(f"the callback raised {type(e).__name__}: {e}; stopped at step {step} "
                                  "and returned the best image so far", RuntimeWarning, stacklevel=2)
                    raise _Stop("callback error") from None
                if keep is False:
                    raise _Stop("callback")
        return total

    failures, opt = 0, None
    while s["step"] < steps:
        try:
            if opt is None:
                opt = _make(optimizer, x, lr, steps - s["step"])
            if optimizer == "lbfgs":
                opt.step(closure)
                opt = None  # L-BFGS ran its evaluations; a new one restarts only if steps remain
            else:
                opt.param_groups[0]["lr"] = lr * ADAM_DECAY ** int(s["step"] / (ADAM_DECAY_EVERY * steps))
                opt.step(closure)
        except _Diverged:
            failures += 1
            with torch.no_grad():
                x.copy_(best)
            lr, opt = lr * 0.5, None
            if not s["warned"]:
                warnings.warn(f"the loss, its gradient or the image became NaN/inf at step {s['step']}; "
                              f"rolled back to the best image and halved the step size (lr={lr:g}"
                              + (", L-BFGS history restarted)" if optimizer == "lbfgs" else ")"),
                              RuntimeWarning, stacklevel=2)
                s["warned"] = True
            if failures >= MAX_FAILURES:
                res.stopped = "diverged"
                warnings.warn(f"the optimization kept diverging ({failures} times); stopped at step "
                              f"{s['step']} and returned the best image (step {res.best_step}). Lower lr or the loss weights",
                              RuntimeWarning, stacklevel=2)
                break
        except _Stop as e:
            res.stopped = e.reason
            break
        except KeyboardInterrupt:
            res.stopped = "interrupted"
            break
    res.image = best.cpu()
    return res


def check_count(name: str, value: object) -> int:
    """``value`` as a positive int (Python or numpy ints; not bools, floats or strings), else ValueError."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
        raise ValueError(f"{name} must be a positive whole number such as 100, got {value!r}")
    return int(value)


def _fetch(losses: dict, x: torch.Tensor) -> tuple[dict, list, bool]:
    """The scalar losses as floats, the per-image totals (if any) and whether the loss, gradient
    and image are finite, in one device-to-host copy (a sum is finite only if every term is, and
    the sums avoid image-sized temporaries)."""
    keys = [k for k, v in losses.items() if v.dim() == 0]
    parts = [losses[k].detach().float().reshape(1) for k in keys]
    parts += [x.detach().sum().reshape(1), x.grad.sum().reshape(1)]
    if "per_image" in losses:
        parts.append(losses["per_image"].detach().float().reshape(-1))
    flat = torch.cat(parts).tolist()
    n = len(keys)
    return dict(zip(keys, flat[:n])), flat[n + 2:], all(map(math.isfinite, flat))


def _make(optimizer: str, x: torch.Tensor, lr: float, remaining: int) -> torch.optim.Optimizer:
    if optimizer == "adam":
        return torch.optim.Adam([x], lr=lr)
    if x.shape[0] > 1:  # a batch of independent images: one L-BFGS history per image
        from .lbfgs import BatchLBFGS
        return BatchLBFGS([x], lr=lr, max_iter=remaining, history_size=LBFGS_HISTORY)
    # max_iter=remaining: one .step() performs exactly `remaining` evaluations (no line search);
    # the tolerances are disabled so that it never stops early on a tiny gradient or change.
    return torch.optim.LBFGS([x], lr=lr, max_iter=remaining, max_eval=2 * remaining + 10,
                             tolerance_grad=-math.inf, tolerance_change=-math.inf,
                             history_size=LBFGS_HISTORY, line_search_fn=None)
