"""The Gram matrix's own backward (nstlib.losses._Gram): dL/dF = (Ḡ + Ḡ^T) F / N.

Checked against a gradient worked by hand, against finite differences (gradcheck, float64 on the
CPU, for contiguous and channels-last features) and against autograd through the plain formula
``bmm(F, F^T) / N`` with an upstream gradient that is not symmetric.
"""
from __future__ import annotations

import pytest
import torch

from nstlib import content_loss, gram_matrix, style_loss

LAYOUTS = [torch.contiguous_format, torch.channels_last]


def _features(shape, layout, seed=0):
    f = torch.randn(*shape, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
    return f.contiguous(memory_format=layout).requires_grad_(True)


def test_the_gradient_of_one_off_diagonal_entry_by_hand():
    # F = [[1, 2], [3, 4]] (C = 2 channels, H x W = 1 x 2), N = C*H*W = 4.
    # L = G_01 = (1*3 + 2*4) / 4, so dL/dF_0 = F_1 / 4 = [3, 4] / 4 and dL/dF_1 = F_0 / 4 = [1, 2] / 4.
    # (Ḡ = [[0, 1], [0, 0]] is not symmetric: a backward of 2 Ḡ F / N would give [[6, 8], [0, 0]] / 4.)
    f = torch.tensor([[[[1.0, 2.0]], [[3.0, 4.0]]]], requires_grad=True)
    g = gram_matrix(f)
    assert g[0, 0, 1].item() == 11 / 4
    g[0, 0, 1].backward()
    assert torch.equal(f.grad, torch.tensor([[[[3.0, 4.0]], [[1.0, 2.0]]]]) / 4)


@pytest.mark.parametrize("layout", LAYOUTS, ids=["contiguous", "channels_last"])
def test_gradcheck_and_second_derivative(layout):
    f = _features((2, 3, 4, 5), layout)
    assert torch.autograd.gradcheck(gram_matrix, (f,))
    assert torch.autograd.gradgradcheck(gram_matrix, (f,))


@pytest.mark.parametrize("layout", LAYOUTS, ids=["contiguous", "channels_last"])
def test_same_gradient_as_autograd_through_the_plain_formula(layout):
    f = _features((2, 6, 5, 7), layout, seed=1)
    upstream = torch.randn(2, 6, 6, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    (grad,) = torch.autograd.grad((gram_matrix(f) * upstream).sum(), f)
    flat = f.reshape(2, 6, 35)
    (want,) = torch.autograd.grad((torch.bmm(flat, flat.transpose(1, 2)) / 210 * upstream).sum(), f)
    assert torch.allclose(grad, want, rtol=1e-12, atol=1e-12)
    assert grad.is_contiguous(memory_format=layout)  # returned in the features' layout: no copy later


def test_style_and_content_losses_keep_their_gradients():
    # the losses' gradients against the formulas written out: d/dF mean((F - P)^2) = 2 (F - P) / n,
    # and the style term's gradient through autograd of the plain Gram formula
    f = _features((1, 4, 3, 3), torch.channels_last, seed=3)
    p = torch.randn(1, 4, 3, 3, generator=torch.Generator().manual_seed(4), dtype=torch.float64)
    (gc,) = torch.autograd.grad(content_loss(f, p), f)
    assert torch.allclose(gc, 2 * (f - p) / f.numel())
    a = torch.randn(1, 4, 4, generator=torch.Generator().manual_seed(5), dtype=torch.float64)
    (gs,) = torch.autograd.grad(style_loss({"x": f}, {"x": a}, {"x": 3.0}), f)
    flat = f.reshape(1, 4, 9)
    plain = 3.0 * ((torch.bmm(flat, flat.transpose(1, 2)) / 36 - a) ** 2).mean()
    (want,) = torch.autograd.grad(plain, f)
    assert torch.allclose(gs, want, rtol=1e-12, atol=1e-14)
