"""Exercise checks for notebooks 03-04 (gradient flow, Adam)."""
from __future__ import annotations

from typing import TYPE_CHECKING, Callable

import torch

from .common import ratio_hint as _ratio_hint
from .common import run_check

if TYPE_CHECKING:
    from ...vgg import VGGFeatures

__all__ = ['check_gradient_norms', 'check_adam_loop']


def check_gradient_norms(fn: Callable, extractor: VGGFeatures | None = None) -> bool:
    """Notebook 03: ``fn(features, loss) -> {layer: float}``, the norm of d loss / d features[layer].

    Compared with :func:`nstlib.course.analysis.gradient_flow` on a style loss at the deepest layer of
    ``extractor`` (default: a small random-weights VGG with average pooling).
    """
    from ...losses import gram_matrix, style_loss
    from ...vgg import VGGFeatures
    from ..analysis import gradient_flow

    def body() -> tuple[bool, str]:
        ext = extractor or VGGFeatures(layers=("relu1_2", "relu2_2", "relu3_1"), pooling="avg",
                                       weights=None, device="cpu")
        taps, side = list(ext.layers), max(32, 2 * ext.min_size())
        g = torch.Generator().manual_seed(0)
        img, target = (torch.rand(1, 3, side, side, generator=g).to(ext.device) for _ in range(2))
        with torch.no_grad():
            grams = {taps[-1]: gram_matrix(ext(target, taps[-1:])[taps[-1]])}
        want = gradient_flow(ext, img, lambda f: style_loss(f, grams), taps)
        feats = ext(img.clone().requires_grad_(True), taps)
        got = fn(feats, style_loss(feats, grams))
        if not isinstance(got, dict) or set(got) != set(taps):
            return False, f"return a dict with one entry per layer {taps}, got {type(got).__name__} {got!r:.80}"
        for name in taps:
            v, w = float(got[name]), want[name]["norm"]
            if abs(v - w) > 1e-4 * w + 1e-12:
                why = _ratio_hint(v, w * w, {"this is the squared norm; take the square root": 1.0})
                return False, f"at {name} you returned {v:.6g}, expected {w:.6g}{why}"
        return True, f"norms at {', '.join(taps)} match nstlib.course.analysis.gradient_flow"
    return run_check("gradient_norms", "call torch.autograd.grad(loss, [features[k] for k in features]) "
                     "once: it returns one gradient per tensor, in order; then each gradient's "
                     ".norm().item(). (loss.backward() leaves no .grad on intermediate features, and a "
                     "second autograd.grad call needs retain_graph=True.)", body)


def _adam_torch(objective: Callable, init: torch.Tensor, steps: int, lr: float) -> list[float]:
    """The reference: torch.optim.Adam on the pixels, clamped to [0, 1] after every update."""
    x = init.detach().clone().requires_grad_(True)
    opt, losses = torch.optim.Adam([x], lr=lr), []
    for _ in range(steps):
        opt.zero_grad()
        loss = objective(x)["total"]
        loss.backward()
        losses.append(float(loss.detach()))
        opt.step()
        with torch.no_grad():
            x.clamp_(0.0, 1.0)
    return losses


def _adam_mistake(objective: Callable, init: torch.Tensor, steps: int, lr: float,
                  bias_correction: bool, clamp: bool) -> list[float]:
    """Adam with one common mistake (no bias correction, or no clamping), to name it in a hint."""
    x, (b1, b2) = init.detach().clone(), (0.9, 0.999)
    m, v, losses = torch.zeros_like(x), torch.zeros_like(x), []
    for t in range(1, steps + 1):
        x.requires_grad_(True)
        loss = objective(x)["total"]
        (grad,) = torch.autograd.grad(loss, x)
        losses.append(float(loss.detach()))
        with torch.no_grad():
            m, v = b1 * m + (1 - b1) * grad, b2 * v + (1 - b2) * grad * grad
            c1, c2 = (1 - b1 ** t, 1 - b2 ** t) if bias_correction else (1.0, 1.0)
            x = x - lr * (m / c1) / ((v / c2).sqrt() + 1e-8)
            x = x.clamp(0.0, 1.0) if clamp else x
    return losses


def _pixel_objective() -> tuple[Callable, torch.Tensor]:
    """A small, fast objective from nstlib's losses on raw pixels (no VGG), and its start image."""
    from ...losses import content_loss, gram_matrix, tv_loss
    g = torch.Generator().manual_seed(0)
    content, style, init = (torch.rand(1, 3, 16, 16, generator=g) for _ in range(3))
    target = gram_matrix(style)

    def objective(x: torch.Tensor) -> dict:
        total = content_loss(x, content) + 100 * torch.mean((gram_matrix(x) - target) ** 2) + 0.1 * tv_loss(x)
        return {"total": total}
    return objective, init


def check_adam_loop(fn: Callable, objective: Callable | None = None, init: torch.Tensor | None = None,
                    steps: int = 6, lr: float = 0.05) -> bool:
    """Notebook 04: ``fn(objective, init, steps, lr) -> (image, losses)``, Adam on the pixels.

    Must match ``torch.optim.Adam`` (pixels clamped to [0, 1] after each update, ``losses[t]`` the
    loss of the image evaluated at step t). Default objective: nstlib's losses on raw pixels.
    """
    if objective is None:
        obj, x0 = _pixel_objective()
    elif init is None:
        raise ValueError("check_adam_loop(objective=...) needs init=, the image to start from")
    else:
        obj, x0 = objective, init

    def body() -> tuple[bool, str]:
        out = fn(obj, x0.detach().clone(), steps=steps, lr=lr)
        want = _adam_torch(obj, x0, steps, lr)
        if not isinstance(out, tuple) or len(out) != 2:
            return False, f"return a pair (image, losses), got {type(out).__name__}"
        img, losses = out
        if not isinstance(img, torch.Tensor) or tuple(img.shape) != tuple(x0.shape):
            got = f"{getattr(img, 'shape', img)!r:.60}"
            return False, f"the image must be a tensor of shape {tuple(x0.shape)}, got {got}"
        losses = [float(v) for v in losses]
        if len(losses) != steps:
            return False, f"{steps} steps should give {steps} losses, got {len(losses)}"
        if float(img.min()) < 0 or float(img.max()) > 1:
            return False, "the returned image has pixels outside [0, 1]: clamp after every update"
        if not losses[-1] < losses[0] and want[-1] < want[0]:
            return False, (f"the loss did not go down ({losses[0]:.4g} -> {losses[-1]:.4g}); "
                           "step against the gradient: x = x - lr * ...")
        close = lambda a, b: all(abs(p - q) <= 1e-3 * abs(q) + 1e-7 for p, q in zip(a, b))  # noqa: E731
        if not close(losses, want):
            why = ("you record the loss after the update; record the one you just evaluated"
                   if close(losses[:-1], want[1:]) else
                   "without the bias correction m/(1-b1^t), v/(1-b2^t) the first steps are too large"
                   if close(losses, _adam_mistake(obj, x0, steps, lr, False, True)) else
                   "clamp the pixels to [0, 1] after every update (torch.clamp)"
                   if close(losses, _adam_mistake(obj, x0, steps, lr, True, False)) else
                   "compare your update with the formulas above, line by line")
            return False, (f"your losses {[round(v, 5) for v in losses[:3]]}... differ from "
                           f"torch.optim.Adam's {[round(v, 5) for v in want[:3]]}...: {why}")
        # no loss values here: the PASS line is compared verbatim under nbval (# NBVAL_CHECK_OUTPUT),
        # and the losses depend on the weights (pretrained or random) and the device
        return True, f"{steps} losses match torch.optim.Adam's"
    return run_check("adam_loop", "each step: evaluate loss = objective(x)['total'], record float(loss), "
                     "grad = torch.autograd.grad(loss, x)[0]; then m = b1*m + (1-b1)*grad, "
                     "v = b2*v + (1-b2)*grad**2, m_hat = m/(1-b1**t), v_hat = v/(1-b2**t), "
                     "x = (x - lr*m_hat/(v_hat.sqrt()+eps)).clamp(0, 1), with t counting from 1.", body)
