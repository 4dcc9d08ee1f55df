"""Exercise checks for notebooks 05-06 (total loss, masked Gram matrix)."""
from __future__ import annotations

from typing import Callable

import torch

from .common import not_tensor as _not_tensor
from .common import ratio_hint as _ratio_hint
from .common import run_check

__all__ = ['check_masked_gram', 'check_total_loss']


def check_masked_gram(fn: Callable) -> bool:
    """Notebook 06: ``fn(features [B, C, H, W], mask [B, 1, H, W]) -> [B, C, C]``, divided by C * sum(m)."""
    from ...masks import masked_gram_matrix

    def body() -> tuple[bool, str]:
        g = torch.Generator().manual_seed(0)
        for shape in [(1, 4, 6, 5), (2, 3, 4, 4)]:
            b, c, h, w = shape
            feats = torch.rand(shape, generator=g).requires_grad_(True)
            mask = torch.rand(b, 1, h, w, generator=g) * (torch.rand(b, 1, h, w, generator=g) > 0.4)
            got, want = fn(feats, mask), masked_gram_matrix(feats, mask).detach()
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

    from ...objective import Objective
    from ...vgg import VGGFeatures
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
                return False, f"with {label} you got {float(got.detach()):.6g}, expected {float(want.detach()):.6g}"
            if not got.requires_grad:
                return False, "the result carries no gradient: use torch operations only (no .item())"
        return True, f"matches nstlib.Objective in {len(cases)} weightings; gradients flow"
    return run_check("total_loss", "total = alpha * (sum of nstlib.content_loss over the content targets) "
                     "+ beta * nstlib.style_loss(features, style_grams) + gamma * nstlib.tv_loss(image); "
                     "the case that fails names the term that is off.", body)
