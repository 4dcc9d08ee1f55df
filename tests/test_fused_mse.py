"""The content and style terms' mean squared error (nstlib.losses._MeanSquaredError, issue 18's
'fused mse' lever): the same value and gradients as the plain formula mean((x - t)^2), in every
memory layout the features come in, for a target shared by a batch, and twice differentiable.

Tolerances: float32 sums of a few thousand terms in a different order differ by about
sqrt(n) * 2^-24 ~ 1e-6 relative; the bound is 1e-5. In float64 (gradcheck) they agree to 1e-10.
"""
from __future__ import annotations

import pytest
import torch

from nstlib.losses import content_loss, gram_matrix, style_loss


def _plain(x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    return ((x - t) ** 2).mean()  # the formula, written out by autograd's own operations


LAYOUTS = {
    "contiguous": lambda t: t.contiguous(),
    "channels_last": lambda t: t.contiguous(memory_format=torch.channels_last),
    "strided": lambda t: t.transpose(2, 3).contiguous().transpose(2, 3),  # neither of the two
}


@pytest.mark.parametrize("layout", sorted(LAYOUTS))
@pytest.mark.parametrize("batch, target_batch", [(1, 1), (3, 1), (3, 3)])
def test_value_and_both_gradients_match_the_plain_formula(layout, batch, target_batch):
    g = torch.Generator().manual_seed(batch * 10 + target_batch)
    x0 = LAYOUTS[layout](torch.randn(batch, 16, 12, 10, generator=g))
    t0 = LAYOUTS[layout](torch.randn(target_batch, 16, 12, 10, generator=g))
    got, want = {}, {}
    for out, fn in ((got, content_loss), (want, lambda a, b: _plain(a, b.expand_as(a)))):
        x, t = x0.clone().requires_grad_(True), t0.clone().requires_grad_(True)
        loss = fn(x, t)
        loss.backward()
        out.update(loss=loss.detach(), x=x.grad, t=t.grad)
    for k in ("loss", "x", "t"):  # t's gradient is -x's, summed over the batch when t is shared
        torch.testing.assert_close(got[k], want[k], rtol=1e-5, atol=1e-8)


def test_one_entry_by_hand():
    x = torch.zeros(1, 1, 2, 2, requires_grad=True)
    t = torch.tensor([[[[0.0, 0.0], [0.0, 2.0]]]])
    loss = content_loss(x, t)  # (0 - 2)^2 / 4 = 1; dL/dx = 2 (x - t) / 4 = -1 at that entry
    loss.backward()
    assert loss.item() == 1.0
    assert x.grad.flatten().tolist() == [0.0, 0.0, 0.0, -1.0]


def test_gradcheck_and_second_derivative_through_the_style_loss():
    g = torch.Generator().manual_seed(0)
    f = torch.randn(1, 3, 4, 5, dtype=torch.float64, generator=g).contiguous(memory_format=torch.channels_last)
    target = {"l": torch.randn(1, 3, 3, dtype=torch.float64, generator=g)}
    content = torch.randn(1, 3, 4, 5, dtype=torch.float64, generator=g)

    def loss(feat):
        return style_loss({"l": feat}, target) + content_loss(feat, content)
    f.requires_grad_(True)
    assert torch.autograd.gradcheck(loss, (f,))
    assert torch.autograd.gradgradcheck(loss, (f,))


def test_the_style_loss_still_equals_the_plain_formula_over_gram_matrices():
    g = torch.Generator().manual_seed(1)
    f = torch.randn(2, 8, 6, 6, generator=g).contiguous(memory_format=torch.channels_last).requires_grad_(True)
    a = torch.randn(1, 8, 8, generator=g)
    got = style_loss({"l": f}, {"l": a})
    b, c, h, w = f.shape
    fm = f.reshape(b, c, h * w)
    want = _plain(fm @ fm.transpose(1, 2) / (c * h * w), a)  # the Gram matrix by its formula
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-9)
    gg, = torch.autograd.grad(got, f)
    gw, = torch.autograd.grad(want, f)
    torch.testing.assert_close(gg, gw, rtol=1e-5, atol=1e-9)
    assert torch.equal(gram_matrix(f), gram_matrix(f))  # deterministic
