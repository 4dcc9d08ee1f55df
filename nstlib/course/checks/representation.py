"""Exercise checks for notebooks 00-02 (receptive field, content loss, Gram matrix)."""
from __future__ import annotations

from typing import Callable

import torch

from .common import not_tensor as _not_tensor
from .common import ratio_hint as _ratio_hint
from .common import run_check, seeded_features

__all__ = ['check_receptive_field', 'check_content_loss', 'check_gram_matrix']


def check_receptive_field(fn: Callable) -> bool:
    """Notebook 00: ``fn(ops) -> int``, ops a list of ``(kernel, stride)`` pairs, input first."""
    from ..anatomy import layer_ops, receptive_field
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
    from ...losses import content_loss

    def body() -> tuple[bool, str]:
        for shape, feats, target in seeded_features([(1, 4, 5, 6), (2, 3, 4, 4)], with_target=True):
            assert target is not None
            got = fn(feats, target)
            bad = _not_tensor(got)
            if bad:
                return False, bad
            if got.numel() != 1:
                return False, f"it returned shape {tuple(got.shape)}; a loss is one number (a scalar tensor)"
            want = content_loss(feats, target).detach()
            if not torch.allclose(got.detach().float().reshape(()), want, rtol=1e-4, atol=1e-6):
                n = feats.numel()
                why = _ratio_hint(float(got.detach()), float(want), {
                    f"you summed instead of averaging (x{n})": n, "you halved it (the mean has no 1/2)": 0.5})
                return False, (f"for features of shape {shape} you got {float(got.detach()):.6g}, "
                               f"expected {float(want):.6g}{why}")
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
    from ...losses import gram_matrix

    def body() -> tuple[bool, str]:
        for shape, feats, _ in seeded_features([(1, 3, 4, 5), (2, 6, 3, 3)], uniform=True):
            got = fn(feats)
            bad = _not_tensor(got)
            if bad:
                return False, bad
            b, c, h, w = shape
            want = gram_matrix(feats).detach()
            if tuple(got.shape) != tuple(want.shape):
                why = (" -- you multiplied F^T F (positions x positions) instead of F F^T"
                       if tuple(got.shape[-2:]) == (h * w, h * w) else
                       " -- keep the batch dimension: one C x C matrix per image" if got.dim() == 2 else "")
                return False, f"for features {shape} the shape is {tuple(got.shape)}, expected {tuple(want.shape)}{why}"
            if not torch.allclose(got.detach().float(), want.detach(), rtol=1e-4, atol=1e-7):
                why = _ratio_hint(float(got.detach().sum()), float(want.sum()), {
                    f"you did not divide by C*H*W = {c * h * w}": c * h * w,
                    "you divided by H*W only; divide by C*H*W": c,
                    "you divided by C only; divide by C*H*W": h * w})
                return False, f"for features {shape} the values differ from nstlib.gram_matrix{why}"
            if not got.requires_grad:
                return False, ("the result carries no gradient: use torch operations only "
                               "(no .item(), .detach() or numpy)")
        return True, "matches nstlib.gram_matrix on 2 shapes (batch of 1 and of 2); gradients flow"
    return run_check("gram_matrix", "reshape the features to F of shape [B, C, H*W], multiply F by its "
                     "transpose with torch.bmm (giving [B, C, C]) and divide by C*H*W.", body)
