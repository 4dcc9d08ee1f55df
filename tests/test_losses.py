"""Losses against values computed by hand (explicit loops and numpy)."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from nstlib import content_loss, gram_matrix, style_loss, tv_loss


def _gram_by_loops(f: np.ndarray) -> np.ndarray:
    """G[b, i, j] = sum_{y, x} F[b, i, y, x] F[b, j, y, x] / (C H W), one term at a time."""
    b_, c_, h_, w_ = f.shape
    g = np.zeros((b_, c_, c_))
    for b in range(b_):
        for i in range(c_):
            for j in range(c_):
                s = 0.0
                for y in range(h_):
                    for x in range(w_):
                        s += f[b, i, y, x] * f[b, j, y, x]
                g[b, i, j] = s / (c_ * h_ * w_)
    return g


def test_gram_matrix_on_a_tiny_tensor_by_hand():
    # one image, 2 channels, 1 x 2 positions: F = [[1, 2], [3, 4]], C*H*W = 4
    f = torch.tensor([[[[1.0, 2.0]], [[3.0, 4.0]]]])
    want = torch.tensor([[[1 + 4, 3 + 8], [3 + 8, 9 + 16]]]) / 4.0
    assert torch.equal(gram_matrix(f), want)


def test_gram_matrix_matches_loops_and_numpy():
    f = torch.randn(2, 3, 4, 5, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    g = gram_matrix(f)
    assert g.shape == (2, 3, 3)
    assert np.allclose(g.numpy(), _gram_by_loops(f.numpy()))
    flat = f.numpy().reshape(2, 3, 20)
    assert np.allclose(g.numpy(), np.einsum("bik,bjk->bij", flat, flat) / 60)
    assert torch.allclose(g, g.transpose(1, 2))  # symmetric
    assert (torch.linalg.eigvalsh(g) > -1e-12).all()  # positive semi-definite
    with pytest.raises(ValueError, match=r"\[B, C, H, W\]"):
        gram_matrix(f[0])


def test_content_loss_is_the_mean_squared_error():
    f = torch.tensor([[[[1.0, 2.0], [3.0, 4.0]]]])
    p = torch.tensor([[[[1.0, 0.0], [0.0, 8.0]]]])
    assert content_loss(f, p).item() == pytest.approx((0 + 4 + 9 + 16) / 4)
    assert content_loss(p, p).item() == 0.0
    a = torch.randn(1, 3, 4, 4, generator=torch.Generator().manual_seed(1))
    b = torch.randn(1, 3, 4, 4, generator=torch.Generator().manual_seed(2))
    assert content_loss(a, b).item() == pytest.approx(float(((a.numpy() - b.numpy()) ** 2).mean()), rel=1e-6)
    with pytest.raises(ValueError, match="differ"):
        content_loss(a, b[:, :, :2])


def test_style_loss_by_hand():
    g = torch.Generator().manual_seed(3)
    feats = {"a": torch.rand(1, 2, 3, 3, generator=g, dtype=torch.float64),
             "b": torch.rand(1, 4, 2, 2, generator=g, dtype=torch.float64),
             "c": torch.rand(1, 3, 2, 2, generator=g, dtype=torch.float64)}
    targets = {"a": torch.rand(1, 2, 2, generator=g, dtype=torch.float64),
               "b": torch.rand(1, 4, 4, generator=g, dtype=torch.float64)}

    def term(name: str) -> float:  # mean over the C x C entries of the squared Gram difference
        diff = _gram_by_loops(feats[name].numpy()) - targets[name].numpy()
        return float((diff ** 2).sum() / diff[0].size)

    # only layers in target_grams count ("c" has features but no target)
    assert style_loss(feats, targets).item() == pytest.approx(term("a") + term("b"), rel=1e-10)
    weighted = style_loss(feats, targets, layer_weights={"a": 0.25, "b": 3.0, "c": 100.0})
    assert weighted.item() == pytest.approx(0.25 * term("a") + 3.0 * term("b"), rel=1e-10)
    partial = style_loss(feats, targets, layer_weights={"b": 0.0})  # missing layers weigh 1
    assert partial.item() == pytest.approx(term("a"), rel=1e-10)
    assert style_loss(feats, {"b": targets["b"]}).item() == pytest.approx(term("b"), rel=1e-10)
    exact = {n: gram_matrix(f) for n, f in feats.items()}
    assert style_loss(feats, exact).item() == 0.0
    with pytest.raises(KeyError, match="d"):
        style_loss(feats, {"d": targets["a"]})


def test_style_loss_has_gradients():
    f = torch.rand(1, 3, 4, 4, requires_grad=True)
    loss = style_loss({"x": f}, {"x": torch.zeros(1, 3, 3)})
    loss.backward()
    assert f.grad is not None and float(f.grad.abs().sum()) > 0


def test_tv_loss_by_hand():
    # one channel 2 x 3: [[0, 1, 3], [2, 2, 2]]
    img = torch.tensor([[[[0.0, 1.0, 3.0], [2.0, 2.0, 2.0]]]])
    vertical = (abs(2 - 0) + abs(2 - 1) + abs(2 - 3)) / 3  # mean |x[i+1, j] - x[i, j]|
    horizontal = (abs(1 - 0) + abs(3 - 1) + abs(2 - 2) + abs(2 - 2)) / 4  # mean |x[i, j+1] - x[i, j]|
    assert tv_loss(img).item() == pytest.approx(0.5 * (vertical + horizontal))


def test_tv_loss_equals_a_second_formula_in_numpy():
    x = torch.rand(2, 3, 5, 7, generator=torch.Generator().manual_seed(4), dtype=torch.float64).numpy()
    want = 0.5 * (np.abs(np.diff(x, axis=2)).mean() + np.abs(np.diff(x, axis=3)).mean())
    assert tv_loss(torch.from_numpy(x)).item() == pytest.approx(want, rel=1e-12)


def test_tv_loss_is_zero_for_a_constant_image_and_positive_otherwise():
    assert tv_loss(torch.full((1, 3, 8, 8), 0.3)).item() == 0.0
    stripes = torch.zeros(1, 3, 8, 8)
    stripes[..., ::2] = 1.0  # vertical stripes: every horizontal step changes by 1
    assert tv_loss(stripes).item() == pytest.approx(0.5 * (0 + 1))
