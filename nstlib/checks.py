"""Automatic checks for the course's exercises: ``nstlib.checks.check_<name>(fn)``.

Each check calls the student's function on small inputs, compares it with the library's
reference, and prints a clear PASS or FAIL with a hint. It never lets a traceback from deep
inside torch reach the student: an exception raised by the student's code (including the
``NotImplementedError`` of an unsolved exercise) is reported as a FAIL with the hint.

Returns True on pass, False on fail, so a notebook cell can also ``assert`` it.
"""
from __future__ import annotations

from typing import Callable

import torch

__all__ = ["report", "run_check"]


def report(name: str, ok: bool, hint: str = "", detail: str = "") -> bool:
    """Print ``PASS``/``FAIL`` for exercise ``name`` (with the hint on failure); return ``ok``."""
    if ok:
        print(f"PASS: {name}" + (f" ({detail})" if detail else ""))
    else:
        print(f"FAIL: {name}" + (f": {detail}" if detail else ""))
        if hint:
            print(f"Hint: {hint}")
    return ok


def run_check(name: str, hint: str, body: Callable[[], tuple[bool, str]]) -> bool:
    """Run ``body() -> (ok, detail)``; an exception from the student's code becomes a FAIL."""
    try:
        ok, detail = body()
    except NotImplementedError:
        return report(name, False, hint, "not implemented yet (replace `raise NotImplementedError`)")
    except Exception as e:  # the student's code may raise anything; report it, don't crash
        return report(name, False, hint, f"your function raised {type(e).__name__}: {e}")
    return report(name, bool(ok), hint, detail)


# --- Notebook 01-02 checks (content loss, Gram matrix) go below this line ---
# (and notebook 00's receptive-field check)

def _not_tensor(got: object) -> str | None:
    """A FAIL detail if ``got`` is not a tensor, else None."""
    if not isinstance(got, torch.Tensor):
        return f"it returned {type(got).__name__} {got!r:.60}, not a torch tensor"
    return None


def _ratio_hint(got: float, want: float, factors: dict[str, float]) -> str:
    """Name the likely mistake when ``got / want`` equals one of the known wrong ``factors``."""
    if want == 0:
        return ""
    for what, f in factors.items():
        if abs(got / want - f) < 1e-3 * max(1.0, abs(f)):
            return f" -- {what}"
    return ""


def check_receptive_field(fn: Callable) -> bool:
    """Notebook 00: ``fn(ops) -> int``, ops a list of ``(kernel, stride)`` pairs, input first."""
    from .anatomy import layer_ops, receptive_field
    cases = [[(3, 1)], [(3, 1), (3, 1)], [(3, 1), (2, 2), (3, 1)], [(7, 2), (3, 2), (3, 1)],
             layer_ops("vgg19", "relu4_2"), layer_ops("vgg19", "pool5")]

    def body() -> tuple[bool, str]:
        for ops in cases:
            got, want = fn(list(ops)), receptive_field(ops)
            if got != want:
                where = f"{len(ops)} layers" if len(ops) > 4 else str(ops)
                return False, f"for {where} you returned {got!r}, expected {want}"
        return True, f"{len(cases)} stacks, up to VGG19's pool5 ({receptive_field(cases[-1])} px)"
    return run_check("receptive_field", "start from r = 1 and j = 1; for each (k, s) in order, first "
                     "r = r + (k - 1) * j, then j = j * s. Forgetting the jump j (every pooling doubles "
                     "it) gives far too small fields.", body)


def check_content_loss(fn: Callable) -> bool:
    """Notebook 01: ``fn(features, target) -> scalar tensor``, the mean squared error."""
    from .losses import content_loss

    def body() -> tuple[bool, str]:
        g = torch.Generator().manual_seed(0)
        for shape in [(1, 4, 5, 6), (2, 3, 4, 4)]:
            feats = torch.randn(shape, generator=g).requires_grad_(True)
            target = torch.randn(shape, generator=g)
            got = fn(feats, target)
            bad = _not_tensor(got)
            if bad:
                return False, bad
            if got.numel() != 1:
                return False, f"it returned shape {tuple(got.shape)}; a loss is one number (a scalar tensor)"
            want = content_loss(feats, target)
            if not torch.allclose(got.detach().float().reshape(()), want.detach(), rtol=1e-4, atol=1e-6):
                n = feats.numel()
                why = _ratio_hint(float(got.detach()), float(want), {
                    f"you summed instead of averaging (x{n})": n, "you halved it (the mean has no 1/2)": 0.5})
                return False, f"for features of shape {shape} you got {float(got.detach()):.6g}, expected {float(want):.6g}{why}"
            if not got.requires_grad:
                return False, ("the result carries no gradient: use torch operations only "
                               "(no .item(), .detach() or numpy) so the optimizer can follow it")
            if float(fn(target, target).detach()) != 0.0:
                return False, "the loss of a target against itself must be exactly 0"
        return True, "matches nstlib.content_loss on 2 shapes; gradients flow"
    return run_check("content_loss", "subtract the target from the features, square every element, "
                     "then average over all of them: torch.mean((features - target) ** 2).", body)


def check_gram_matrix(fn: Callable) -> bool:
    """Notebook 02: ``fn(features [B, C, H, W]) -> [B, C, C]``, divided by C*H*W."""
    from .losses import gram_matrix

    def body() -> tuple[bool, str]:
        g = torch.Generator().manual_seed(0)
        for shape in [(1, 3, 4, 5), (2, 6, 3, 3)]:
            feats = torch.rand(shape, generator=g).requires_grad_(True)
            got = fn(feats)
            bad = _not_tensor(got)
            if bad:
                return False, bad
            b, c, h, w = shape
            want = gram_matrix(feats)
            if tuple(got.shape) != tuple(want.shape):
                why = (" -- you multiplied F^T F (positions x positions) instead of F F^T"
                       if tuple(got.shape[-2:]) == (h * w, h * w) else
                       " -- keep the batch dimension: one C x C matrix per image" if got.dim() == 2 else "")
                return False, f"for features {shape} the shape is {tuple(got.shape)}, expected {tuple(want.shape)}{why}"
            if not torch.allclose(got.detach().float(), want.detach(), rtol=1e-4, atol=1e-7):
                why = _ratio_hint(float(got.detach().sum()), float(want.sum()), {
                    f"you did not divide by C*H*W = {c * h * w}": c * h * w,
                    f"you divided by H*W only; divide by C*H*W": c,
                    f"you divided by C only; divide by C*H*W": h * w})
                return False, f"for features {shape} the values differ from nstlib.gram_matrix{why}"
            if not got.requires_grad:
                return False, ("the result carries no gradient: use torch operations only "
                               "(no .item(), .detach() or numpy)")
        return True, "matches nstlib.gram_matrix on 2 shapes (batch of 1 and of 2); gradients flow"
    return run_check("gram_matrix", "reshape the features to F of shape [B, C, H*W], multiply F by its "
                     "transpose with torch.bmm (giving [B, C, C]) and divide by C*H*W.", body)



# --- Notebook 03-04 checks (pooling, optimization) go below this line ---

def check_gradient_norms(fn: Callable, extractor: object = None) -> bool:
    """Notebook 03: ``fn(features, loss) -> {layer: float}``, the norm of d loss / d features[layer].

    Compared with :func:`nstlib.analysis.gradient_flow` on a style loss at the deepest layer of
    ``extractor`` (default: a small random-weights VGG with average pooling).
    """
    from .analysis import gradient_flow
    from .losses import gram_matrix, style_loss
    from .vgg import VGGFeatures

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
        return True, f"norms at {', '.join(taps)} match nstlib.analysis.gradient_flow"
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
    from .losses import content_loss, gram_matrix, tv_loss
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
    def body() -> tuple[bool, str]:
        obj, x0 = (objective, init) if objective is not None else _pixel_objective()
        out = fn(obj, x0.detach().clone(), steps=steps, lr=lr)
        want = _adam_torch(obj, x0, steps, lr)
        if not isinstance(out, tuple) or len(out) != 2:
            return False, f"return a pair (image, losses), got {type(out).__name__}"
        img, losses = out
        if not isinstance(img, torch.Tensor) or tuple(img.shape) != tuple(x0.shape):
            return False, f"the image must be a tensor of shape {tuple(x0.shape)}, got {getattr(img, 'shape', img)!r:.60}"
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
        return True, f"loss {losses[0]:.4g} -> {losses[-1]:.4g} in {steps} steps, as torch.optim.Adam"
    return run_check("adam_loop", "each step: evaluate loss = objective(x)['total'], record float(loss), "
                     "grad = torch.autograd.grad(loss, x)[0]; then m = b1*m + (1-b1)*grad, "
                     "v = b2*v + (1-b2)*grad**2, m_hat = m/(1-b1**t), v_hat = v/(1-b2**t), "
                     "x = (x - lr*m_hat/(v_hat.sqrt()+eps)).clamp(0, 1), with t counting from 1.", body)


# --- Notebook 05-06 checks go below this line ---


def check_masked_gram(fn: Callable) -> bool:
    """Notebook 06: ``fn(features [B, C, H, W], mask [B, 1, H, W]) -> [B, C, C]``, divided by C * sum(m)."""
    from .masks import masked_gram_matrix

    def body() -> tuple[bool, str]:
        g = torch.Generator().manual_seed(0)
        for shape in [(1, 4, 6, 5), (2, 3, 4, 4)]:
            b, c, h, w = shape
            feats = torch.rand(shape, generator=g).requires_grad_(True)
            mask = torch.rand(b, 1, h, w, generator=g) * (torch.rand(b, 1, h, w, generator=g) > 0.4)
            got, want = fn(feats, mask), masked_gram_matrix(feats, mask)
            bad = _not_tensor(got) or (None if tuple(got.shape) == tuple(want.shape) else
                                       f"for features {shape} the shape is {tuple(got.shape)}, "
                                       f"expected {tuple(want.shape)}")
            if bad:
                return False, bad
            if not torch.allclose(got.detach().float(), want.detach(), rtol=1e-4, atol=1e-7):
                sq = masked_gram_matrix(feats, mask ** 2).detach()
                ratio = ((mask ** 2).sum(dim=(1, 2, 3)) / mask.sum(dim=(1, 2, 3))).view(-1, 1, 1)
                why = (" -- you weighted both factors by m (m^2 in total); weight one of them"
                       if any(torch.allclose(got.detach().float(), v, rtol=1e-3) for v in (sq, sq * ratio)) else
                       _ratio_hint(float(got.detach()[0].sum()), float(want[0].sum()), {
                           "divide by C * sum(m), not C*H*W": float(mask[0].sum()) / (h * w),
                           "you did not divide by C": c, "you did not divide by sum(m)": float(mask[0].sum())}))
                return False, f"for features {shape} the values differ from nstlib.masked_gram_matrix{why}"
            if not got.requires_grad:
                return False, "the result carries no gradient: use torch operations only"
        return True, "matches nstlib.masked_gram_matrix on 2 shapes with soft masks; gradients flow"
    return run_check("masked_gram", "reshape F to [B, C, H*W] and m to [B, 1, H*W]; torch.bmm(F * m, "
                     "F.transpose(1, 2)) weighs each position by m once; divide by C * m.sum(dim=2).", body)


def check_total_loss(fn: Callable) -> bool:
    """Notebook 05: ``fn(features, content_targets, style_grams, image, alpha, beta, gamma)`` -> the
    objective ``alpha * L_content + beta * L_style + gamma * L_tv`` (a scalar tensor)."""
    import torch

    from .objective import Objective
    from .vgg import VGGFeatures
    cases = {"content only (β = γ = 0)": (2.0, 0.0, 0.0), "style only (α = γ = 0)": (0.0, 5.0, 0.0),
             "TV only (α = β = 0)": (0.0, 0.0, 3.0), "all three terms": (1.0, 1e3, 10.0)}

    def body() -> tuple[bool, str]:
        ext = VGGFeatures(layers=["relu1_1", "relu2_1", "relu2_2"], weights="random", device="cpu")
        g = torch.Generator().manual_seed(0)
        content, style, image = (torch.rand(1, 3, 24, 24, generator=g) for _ in range(3))
        obj = Objective(ext, content, style, ["relu2_2"], ["relu1_1", "relu2_1"], 1.0, 1.0, 1.0)
        image.requires_grad_(True)
        terms = obj(image)
        for label, (a, b, c) in cases.items():
            feats = ext(image, ["relu2_2", "relu1_1", "relu2_1"])
            got = fn(feats, dict(obj.content_targets), dict(obj.style_grams), image, a, b, c)
            if not isinstance(got, torch.Tensor) or got.numel() != 1:
                return False, f"it returned {type(got).__name__}, not a scalar tensor"
            want = a * terms["content"] + b * terms["style"] + c * terms["tv"]
            if not torch.allclose(got.detach().float().reshape(()), want.detach(), rtol=1e-4, atol=1e-7):
                return False, f"with {label} you got {float(got.detach()):.6g}, expected {float(want):.6g}"
            if not got.requires_grad:
                return False, "the result carries no gradient: use torch operations only (no .item())"
        return True, f"matches nstlib.Objective in {len(cases)} weightings; gradients flow"
    return run_check("total_loss", "total = alpha * (sum of nstlib.content_loss over the content targets) "
                     "+ beta * nstlib.style_loss(features, style_grams) + gamma * nstlib.tv_loss(image); "
                     "the case that fails names the term that is off.", body)
