"""nstlib.course.analysis: gradient measurements behind notebook 03 (max vs average pooling)."""
from __future__ import annotations

import pytest
import torch

import nstlib
from nstlib.course import analysis

TAPS = ("relu1_2", "relu2_1", "relu2_2", "relu3_1")


@pytest.fixture(scope="module")
def pair():
    """(max, avg) VGG19 extractors with the same seeded random weights, cut after relu3_1."""
    return analysis.pooling_pair(TAPS, weights=None, device="cpu", seed=0)


@pytest.fixture(scope="module")
def image():
    return torch.rand(1, 3, 32, 32, generator=torch.Generator().manual_seed(1))


def deep_style_loss(ext, layer="relu3_1"):
    """A style loss at ``layer`` only, against the Gram matrix of a seeded random image."""
    target = torch.rand(1, 3, 32, 32, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        grams = {layer: nstlib.gram_matrix(ext(target, [layer])[layer])}
    return lambda feats: nstlib.style_loss(feats, grams)


def test_pooling_pair_shares_weights_but_not_pooling(pair):
    mx, av = pair
    assert (mx.pooling, av.pooling) == ("max", "avg")
    assert analysis.same_weights(mx, av)
    other = nstlib.VGGFeatures(layers=["relu1_1"], weights=None, device="cpu", seed=1)
    assert not analysis.same_weights(mx, other)


def test_max_pooling_sends_gradient_to_a_quarter_of_the_positions(pair, image):
    """The pool input of block 1 (relu1_2) gets gradient from relu2_1+ only through pool1."""
    mx, av = pair
    flow_max = analysis.gradient_flow(mx, image, deep_style_loss(mx), ["relu1_2", "relu3_1"])
    flow_avg = analysis.gradient_flow(av, image, deep_style_loss(av), ["relu1_2", "relu3_1"])
    assert flow_max["relu1_2"]["density"] <= 0.25 + 1e-9  # one winner per 2x2 window at most
    assert flow_max["relu1_2"]["density"] > 0.2
    assert flow_avg["relu1_2"]["density"] > 0.9  # every position gets a share
    assert flow_avg["relu1_2"]["spread"] > 2 * flow_max["relu1_2"]["spread"]
    assert list(flow_max) == ["relu1_2", "relu3_1", "image"]


def test_gradient_flow_matches_autograd(pair, image):
    mx, _ = pair
    loss_fn = deep_style_loss(mx)
    flow = analysis.gradient_flow(mx, image, loss_fn, ["relu3_1", "relu1_2"])  # any order in
    x = image.clone().requires_grad_(True)
    feats = mx(x, ["relu1_2", "relu3_1"])
    g12, g31, gx = torch.autograd.grad(loss_fn(feats), [feats["relu1_2"], feats["relu3_1"], x])
    assert flow["relu1_2"]["norm"] == pytest.approx(float(g12.norm()), rel=1e-5)
    assert flow["image"]["norm"] == pytest.approx(float(gx.norm()), rel=1e-5)
    assert flow["relu3_1"]["gain"] == pytest.approx(1.0)
    assert flow["relu1_2"]["gain"] == pytest.approx(float(g12.norm() / g31.norm()), rel=1e-5)
    assert flow["relu1_2"]["feature_rms"] == pytest.approx(float(feats["relu1_2"].detach().pow(2).mean().sqrt()), rel=1e-5)
    assert flow["image"]["density"] == pytest.approx(float((gx != 0).float().mean()))
    assert torch.equal(image, torch.rand(1, 3, 32, 32, generator=torch.Generator().manual_seed(1)))


def test_gradients_returns_tensors_and_zeros_beyond_the_loss(pair, image):
    mx, _ = pair
    out = analysis.gradients(mx, image, deep_style_loss(mx, "relu2_1"), ["relu1_2", "relu2_1", "relu3_1"])
    assert list(out) == ["relu1_2", "relu2_1", "relu3_1", "image"]
    feats, grad = out["image"]
    assert feats.shape == grad.shape == image.shape
    assert not grad.requires_grad
    assert float(out["relu3_1"][1].abs().sum()) == 0.0  # deeper than the loss: no gradient
    assert float(out["relu1_2"][1].abs().sum()) > 0.0


def test_spread_is_one_for_uniform_and_one_over_n_for_a_spike():
    flat = analysis._stats(torch.ones(10), torch.ones(10))
    spike = analysis._stats(torch.tensor([0.0] * 9 + [3.0]), torch.ones(10))
    assert flat["spread"] == pytest.approx(1.0) and flat["density"] == 1.0
    assert spike["spread"] == pytest.approx(0.1) and spike["density"] == pytest.approx(0.1)


def test_bad_loss_and_unknown_layer_raise_clear_errors(pair, image):
    mx, _ = pair
    with pytest.raises(ValueError, match="scalar"):
        analysis.gradient_flow(mx, image, lambda f: f["relu1_2"], ["relu1_2"])
    with pytest.raises(nstlib.LayerError, match="relu1_2"):
        analysis.gradient_flow(mx, image, deep_style_loss(mx), ["relu1_3"])


def test_relative_history_divides_by_the_first_value():
    hist = [{"step": 1, "total": 4.0, "seconds": 0.1}, {"step": 2, "total": 1.0, "seconds": 0.2}]
    rel = analysis.relative_history(nstlib.Result(image=torch.zeros(1, 3, 2, 2), history=hist))
    assert [h["total"] for h in rel] == [1.0, 0.25]
    assert [h["seconds"] for h in rel] == [0.1, 0.2]
    assert analysis.relative_history([]) == []


def test_table_and_plot(pair, image):
    flows = {p.pooling: analysis.gradient_flow(p, image, deep_style_loss(p), TAPS) for p in pair}
    table = analysis.gradient_table(flows)
    lines = table.splitlines()
    assert "density max" in lines[0] and "density avg" in lines[0]
    assert [ln.split()[0] for ln in lines[2:]] == list(TAPS) + ["image"]
    fig = analysis.plot_gradient_flow(flows, metrics=("gain", "density", "spread"))
    assert len(fig.axes) == 3
    assert [t.get_text() for t in fig.axes[1].get_xticklabels()] == list(TAPS) + ["image"]
    import matplotlib.pyplot as plt
    plt.close(fig)
