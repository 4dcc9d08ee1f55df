"""The optimization engine: L-BFGS or Adam on the pixels, one loop a student can read.

One *step* is one evaluation of the objective (a forward and a backward pass through VGG), for
every optimizer, so step counts and timings compare fairly. Every step of the loop in
:func:`optimize` does the same five things: read the loss weights in force (live weights),
clamp the image to [0, 1] (projection, as in the PyTorch tutorial), evaluate the objective and
its gradient, keep the books (history, best image, snapshots, callback), and let the optimizer
take its step. L-BFGS is ``torch.optim.LBFGS(max_iter=1)`` stepped once per step, which gives the
same iterates as one call with ``max_iter=steps`` (its early stops on small gradients or changes
are switched off, so all ``steps`` run); Adam's step size decays x0.8 every 10% of the run
(``torch.optim.lr_scheduler.LambdaLR``). While the loop runs, freed memory stays in the process
for the next evaluation (:mod:`nstlib.allocator`, glibc only).
"""
from __future__ import annotations

import math
import time
import warnings
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Optional

import torch

from .allocator import reusing_freed_memory
from .errors import ImageError, check_choice
from .lbfgs import BatchLBFGS
from .spec import LBFGS_HISTORY, OPTIMIZERS, check_count, default_lr

if TYPE_CHECKING:
    from .spec import Transfer

__all__ = ["Result", "optimize", "OPTIMIZERS", "default_lr", "Callback", "Controls", "Objective", "SNAPSHOT_BUDGET",
           "thin"]

#: ``objective(image) -> {"total", "content", "style", "tv"}`` (scalar tensors; "total" is minimized);
#: an object with ``loss_and_grad(x)`` (:class:`nstlib.Objective`) is evaluated through that method.
Objective = Callable[[torch.Tensor], dict]
#: ``callback(step, image, losses) -> bool | None``; returning False stops the run.
Callback = Callable[[int, torch.Tensor, dict], Optional[bool]]
#: ``controls(step) -> {"style_weight": ..., ...} | None``: the loss weights in force from ``step`` on
#: (keywords of ``Objective.set_weights``; None or {} = unchanged). Polled at the top of every step.
Controls = Callable[[int], Optional[Mapping[str, Any]]]

ADAM_DECAY, ADAM_DECAY_EVERY = 0.8, 0.1  # d2l: x0.8 every 50 of 500 steps (every 10% of the run)
MAX_FAILURES = 5
#: Snapshots kept in memory at most (bytes); past it every other one is dropped, the first and the
#: latest kept, so a long run of a large image cannot fill the memory (300 steps at 2048 px: 15 GB).
SNAPSHOT_BUDGET = 512 * 2**20
WEIGHT_KEYS = ("content_weight", "style_weight", "tv_weight", "style_layer_weights")


def thin(snapshots: list[tuple[int, torch.Tensor]]) -> None:
    """Drop every other snapshot (in place, first and last kept) until they fit :data:`SNAPSHOT_BUDGET`."""
    while len(snapshots) > 2 and sum(t.numel() * t.element_size() for _, t in snapshots) > SNAPSHOT_BUDGET:
        del snapshots[1:-1:2]


@dataclass
class Result:
    """What a run produced.

    Attributes:
        image: the best image seen (lowest total loss under the weights in force), [1, 3, H, W]
            in [0, 1], on the CPU (a batch [B, 3, H, W] for :func:`nstlib.sweep`).
        history: one dict per successful step: ``step, total, content, style, tv, seconds`` and,
            for an :class:`nstlib.Objective`, the weights in force ``content_weight, style_weight,
            tv_weight`` (``total = content_weight * content + style_weight * style + tv_weight * tv``).
        snapshots: ``(step, image)`` pairs taken every ``every`` steps (CPU tensors); past
            :data:`SNAPSHOT_BUDGET` bytes every other one is dropped (the first and the latest stay).
        stopped: why the run ended: ``"done"``, ``"callback"`` (it returned False),
            ``"callback error"`` (it raised; a warning says what), ``"interrupted"`` or
            ``"diverged"`` (the loss kept becoming NaN/inf, or no step gave a finite loss).
        best_step: the step whose image is ``image``.
        name: a file name that encodes the parameters (used by :meth:`save`).
        params: the parameters of the run as a plain dict (from ``spec``).
        spec: the :class:`nstlib.Transfer` that was run (None for a bare :func:`optimize`).
    """

    image: torch.Tensor
    history: list[dict[str, Any]] = field(default_factory=list)
    snapshots: list[tuple[int, torch.Tensor]] = field(default_factory=list)
    stopped: str = "done"
    best_step: int = 0
    name: str = "result.jpg"
    params: dict[str, Any] = field(default_factory=dict)
    spec: Transfer | None = None

    @property
    def losses(self) -> dict[str, Any]:
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
        from .save import save_image
        return save_image(self.image, Path(path) if path is not None else Path(folder) / self.name)

    def _repr_html_(self) -> str:  # a readable line in notebooks instead of a tensor dump
        loss = self.losses.get("total", float("nan"))
        return (f"<b>Result</b> {tuple(self.image.shape[-2:])} px, {len(self.history)} steps, "
                f"best total loss {loss:.4g} at step {self.best_step}, {self.seconds:.1f} s, {self.stopped}")


def optimize(init: torch.Tensor, objective: Objective, *, optimizer: str = "lbfgs", steps: int = 300,
             lr: float | None = None, callback: Callback | None = None, every: int = 10,
             controls: Controls | None = None, lbfgs_history: int = LBFGS_HISTORY) -> Result:
    """Minimize ``objective`` over the pixels of ``init`` ([B, 3, H, W] in [0, 1]).

    Runs exactly ``steps`` evaluations unless the callback returns False, the user interrupts
    (KeyboardInterrupt) or the loss keeps diverging; the best image so far is returned in
    every case. A NaN/inf loss rolls back to the best iterate, halves the step size (restarting
    L-BFGS's history) and warns once; after :data:`MAX_FAILURES` the run stops as ``"diverged"``.

    ``controls`` (live weights): called as ``controls(step)`` at the top of every step; a dict of
    new weights (``content_weight``, ``style_weight``, ``tv_weight``, ``style_layer_weights``) is
    applied with ``objective.set_weights`` before that step is evaluated. L-BFGS then restarts its
    history (its curvature pairs belong to the old objective); Adam continues. The best image is
    then chosen among the steps under the new weights.

    ``lbfgs_history``: L-BFGS's curvature pairs (default 100; each is two image-sized vectors).
    """
    check_choice("optimizer", optimizer, OPTIMIZERS)
    steps, every = check_count("steps", steps), check_count("every", every)
    lbfgs_history = check_count("lbfgs_history", lbfgs_history)
    if not isinstance(init, torch.Tensor) or init.dim() != 4 or not torch.isfinite(init).all():
        raise ImageError(f"the initial image must be a finite tensor [1, 3, H, W] in [0, 1], got "
                         f"{tuple(getattr(init, 'shape', ()))}; load it with nstlib.load_image")
    lr = default_lr(optimizer) if lr is None else float(lr)
    if not (lr > 0 and math.isfinite(lr)):
        raise ValueError(f"lr must be a finite number > 0, got {lr!r}")

    x = init.detach().clone(memory_format=torch.contiguous_format).clamp_(0.0, 1.0).requires_grad_(True)
    evaluate = _evaluator(objective)
    best, best_total, best_step, per_best = x.detach().clone(), math.inf, 0, [math.inf] * x.shape[0]
    history: list[dict[str, Any]] = []
    snapshots: list[tuple[int, torch.Tensor]] = []
    opt, schedule = _make(optimizer, x, lr, steps, lbfgs_history, done=0)
    failures, stopped, t0 = 0, "done", time.perf_counter()
    with reusing_freed_memory():  # the evaluations reuse each other's memory (nstlib.allocator)
        try:
            for step in range(1, steps + 1):
                new = controls(step) if controls is not None else None
                if new and _changes(objective, new):  # 1. the weights in force for this step
                    objective.set_weights(**new)  # type: ignore[attr-defined]
                    best_total = math.inf  # losses under other weights do not compare
                    per_best = [math.inf] * x.shape[0]
                    if optimizer == "lbfgs":
                        opt, schedule = _make(optimizer, x, lr, steps, lbfgs_history, done=step - 1)
                with torch.no_grad():  # 2. project onto [0, 1]
                    x.clamp_(0.0, 1.0)
                if x.grad is not None:
                    x.grad.zero_()
                losses = evaluate(x)  # 3. loss and gradient
                values, per, finite = _fetch(losses, x)  # the step's only host sync
                if not finite:  # NaN/inf in the loss, its gradient or the image: roll back
                    failures += 1
                    with torch.no_grad():
                        x.copy_(best)
                    lr *= 0.5
                    opt, schedule = _make(optimizer, x, lr, steps, lbfgs_history, done=step)
                    if failures == 1:
                        warnings.warn(f"the loss, its gradient or the image became NaN/inf at step {step}; "
                                      f"rolled back to the best image and halved the step size (lr={lr:g}"
                                      + (", L-BFGS history restarted)" if optimizer == "lbfgs" else ")"),
                                      RuntimeWarning, stacklevel=2)
                    if failures >= MAX_FAILURES:
                        stopped = "diverged"
                        warnings.warn(f"the optimization kept diverging ({failures} times); stopped at step {step} "
                                      f"and returned the best image (step {best_step}). Lower lr or the loss weights",
                                      RuntimeWarning, stacklevel=2)
                        break
                    continue
                history.append(_entry(step, values, per, objective, time.perf_counter() - t0))  # 4. books
                for i, v in enumerate(per):  # a batch (nstlib.sweep): keep each image's best
                    if v < per_best[i]:
                        per_best[i] = v
                        best[i].copy_(x[i].detach())
                if values["total"] < best_total:
                    best_total, best_step = values["total"], step
                    if not per:
                        best.copy_(x.detach())
                if step % every == 0 or step == steps:
                    snap = x.detach().to("cpu", copy=True)  # x is already clamped
                    snapshots.append((step, snap))
                    thin(snapshots)
                    stopped = _call(callback, step, snap, values)
                    if stopped != "done":
                        break
                opt.step(lambda: losses["total"])  # noqa: B023 (called at once)  5. the update, from x.grad
                if schedule is not None:
                    schedule.step()
        except KeyboardInterrupt:
            stopped = "interrupted"
    if not history and stopped == "done":
        stopped = "diverged"
        warnings.warn("no step gave a finite loss: nothing was optimized and the result is the initial image. "
                      "Lower the loss weights or lr", RuntimeWarning, stacklevel=2)
    return Result(image=best.cpu(), history=history, snapshots=snapshots, stopped=stopped, best_step=best_step)


def _evaluator(objective: Objective) -> Callable[[torch.Tensor], dict]:
    """``objective.loss_and_grad`` (:class:`nstlib.Objective`, a tiled objective), or for a plain
    function ``objective(x) -> {"total", ...}``: evaluate, back-propagate, detach."""
    method = getattr(objective, "loss_and_grad", None)
    if method is not None:
        return method

    def loss_and_grad(x: torch.Tensor) -> dict:
        losses = objective(x)
        losses["total"].backward()
        return {k: v.detach() for k, v in losses.items()}
    return loss_and_grad


def _changes(objective: Objective, new: Mapping[str, Any]) -> bool:
    """True when ``new`` sets a weight to a value other than the one in force."""
    unknown = set(new) - set(WEIGHT_KEYS)
    if unknown:
        raise ValueError(f"controls returned {sorted(unknown)}; it may set only {', '.join(WEIGHT_KEYS)}")
    now = getattr(objective, "loss_weights", None)
    if now is None:
        raise ValueError("live weights (controls=...) need an objective with set_weights, such as nstlib.Objective")
    return any(v is not None and v != now[k] for k, v in new.items())


def _entry(step: int, values: dict, per: list, objective: Objective, seconds: float) -> dict[str, Any]:
    entry: dict[str, Any] = {"step": step, "total": values["total"], "content": values.get("content", 0.0),
                             "style": values.get("style", 0.0), "tv": values.get("tv", 0.0), "seconds": seconds}
    weights = getattr(objective, "loss_weights", None)
    if weights is not None:
        entry.update((k, weights[k]) for k in WEIGHT_KEYS[:3])
    if per:
        entry["per_image"] = per
    return entry


def _call(callback: Callback | None, step: int, image: torch.Tensor, values: dict) -> str:
    """Run the callback; the run's state afterwards: ``"done"`` (go on), ``"callback"`` (it returned
    False) or ``"callback error"`` (it raised: a broken display or save must not lose the run)."""
    if callback is None:
        return "done"
    try:
        keep = callback(step, image, values)
    except Exception as e:
        warnings.warn(f"the callback raised {type(e).__name__}: {e}; stopped at step {step} "
                      "and returned the best image so far", RuntimeWarning, stacklevel=3)
        return "callback error"
    return "callback" if keep is False else "done"


def _fetch(losses: dict, x: torch.Tensor) -> tuple[dict, list, bool]:
    """The scalar losses as floats, the per-image totals (if any) and whether the loss, gradient
    and image are finite, in one device-to-host copy (a sum is finite only if every term is, and
    the sums avoid image-sized temporaries)."""
    keys = [k for k, v in losses.items() if v.dim() == 0]
    parts = [losses[k].detach().float().reshape(1) for k in keys]
    grad = x.grad if x.grad is not None else torch.zeros_like(x)
    parts += [x.detach().sum().reshape(1), grad.sum().reshape(1)]
    if "per_image" in losses:
        parts.append(losses["per_image"].detach().float().reshape(-1))
    flat = torch.cat(parts).tolist()
    n = len(keys)
    return dict(zip(keys, flat[:n])), flat[n + 2:], all(map(math.isfinite, flat))


def _make(optimizer: str, x: torch.Tensor, lr: float, steps: int, history: int, done: int
          ) -> tuple[torch.optim.Optimizer, Optional[torch.optim.lr_scheduler.LRScheduler]]:
    """A fresh optimizer (and Adam's schedule) for the run's remaining steps, ``done`` already taken."""
    if optimizer == "adam":
        adam = torch.optim.Adam([x], lr=lr)

        def decay(k: int) -> float:  # step done + k of the run: x0.8 every 10% of the steps
            return ADAM_DECAY ** int((done + k) / (ADAM_DECAY_EVERY * steps))
        return adam, torch.optim.lr_scheduler.LambdaLR(adam, decay)
    if x.shape[0] > 1:  # a batch of independent images: one L-BFGS history per image
        return BatchLBFGS([x], lr=lr, max_iter=1, history_size=history), None
    # max_iter=1: one evaluation per .step() (no line search); the tolerances are disabled so
    # that it never stops early on a tiny gradient or change.
    return torch.optim.LBFGS([x], lr=lr, max_iter=1, tolerance_grad=-math.inf, tolerance_change=-math.inf,
                             history_size=history, line_search_fn=None), None
