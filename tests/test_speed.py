"""The speed features: per-image losses, batched L-BFGS, sweep, multi-scale, precision, channels_last.

No timings are asserted here (they live in benchmarks/run.py); these tests check that the fast
paths compute the same thing as the plain ones.
"""
from __future__ import annotations

import math

import pytest
import torch

import nstlib
from nstlib import content_loss, gram_matrix, resize, stylize, style_loss, sweep, tv_loss
from nstlib.engine import _fetch
from nstlib.lbfgs import BatchLBFGS
from nstlib.multiscale import scale_sides
from nstlib.objective import Objective
from nstlib.precision import amp_dtype, iter_precisions

# one torch thread (restored after the module): the trajectory tolerances below must not depend on
# how many cores the machine running the tests happens to have
pytestmark = [pytest.mark.filterwarnings("ignore::nstlib.RandomWeightsWarning"), pytest.mark.usefixtures("one_thread")]
STYLE = ["relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu5_1"]


def test_reduction_none_gives_one_loss_per_image_whose_mean_is_the_scalar_loss():
    g = torch.Generator().manual_seed(0)
    f, t = torch.rand(3, 4, 5, 6, generator=g), torch.rand(3, 4, 5, 6, generator=g)
    per = content_loss(f, t, reduction="none")
    assert per.shape == (3,) and torch.allclose(per.mean(), content_loss(f, t))
    assert torch.allclose(per[1], content_loss(f[1:2], t[1:2]))
    assert torch.allclose(content_loss(f, t[:1], reduction="none")[2], content_loss(f[2:], t[:1]))  # shared target
    grams = {"a": gram_matrix(t[:1])}
    s = style_loss({"a": f}, grams, reduction="none")
    assert s.shape == (3,) and torch.allclose(s[2], style_loss({"a": f[2:]}, grams))
    tv = tv_loss(f[:, :3], reduction="none")
    assert tv.shape == (3,) and torch.allclose(tv[0], tv_loss(f[:1, :3]))
    with pytest.raises(ValueError, match="reduction"):
        tv_loss(f, reduction="sum")


def test_a_batched_objective_with_weight_vectors_equals_the_separate_objectives(random_vgg, tiny_content, tiny_style):
    alphas, betas, gammas = [1.0, 5.0, 0.0], [1e3, 1e4, 1e2], [10.0, 0.0, 44.0]
    batch = Objective(random_vgg, tiny_content, tiny_style, ["relu4_2"], STYLE, alphas, betas, gammas)
    x = torch.rand(3, *tiny_content.shape[1:], generator=torch.Generator().manual_seed(1))
    out = batch(x)
    assert out["per_image"].shape == (3,) and torch.allclose(out["total"], out["per_image"].sum())
    for b in range(3):
        one = Objective(random_vgg, tiny_content, tiny_style, ["relu4_2"], STYLE, alphas[b], betas[b], gammas[b])
        assert math.isclose(float(out["per_image"][b]), float(one(x[b:b + 1])["total"]), rel_tol=1e-5)


def test_batch_lbfgs_is_torch_lbfgs_on_each_image():
    g = torch.Generator().manual_seed(0)
    a = torch.randn(2, 20, 20, generator=g)
    a = a @ a.transpose(1, 2) + 0.1 * torch.eye(20)

    def f(x, i):
        return 0.5 * (x @ a[i] @ x) + (x ** 4).sum() - x.sum()

    xb = torch.full((2, 20), 0.3, requires_grad=True)
    opt = BatchLBFGS([xb], lr=1.0, max_iter=15, history_size=5)

    def closure():
        if xb.grad is not None:
            xb.grad.zero_()
        loss = f(xb[0], 0) + f(xb[1], 1)
        loss.backward()
        return loss
    opt.step(closure)
    for i in range(2):
        x = torch.full((20,), 0.3, requires_grad=True)
        ref = torch.optim.LBFGS([x], lr=1.0, max_iter=15, max_eval=40, tolerance_grad=-math.inf,
                                tolerance_change=-math.inf, history_size=5)

        def one():
            ref.zero_grad()
            loss = f(x, i)
            loss.backward()
            return loss
        ref.step(one)
        assert torch.allclose(xb[i].detach(), x.detach(), atol=1e-5)


@pytest.mark.parametrize("optimizer", ["adam", "lbfgs"])
def test_sweep_images_follow_their_separate_runs(optimizer, random_vgg, tiny_content, tiny_style):
    cw, sw, steps = [1.0], [1e3, 1e5], 3
    grid = sweep(tiny_content, tiny_style, cw, sw, extractor=random_vgg, steps=steps, optimizer=optimizer,
                 size=48)
    assert len(grid.images) == 1 and len(grid.images[0]) == 2
    assert grid.images[0][1].shape == resize(tiny_content, 48).shape and grid.result.image.shape[0] == 2
    for j, b in enumerate(sw):
        alone = stylize(tiny_content, tiny_style, extractor=random_vgg, steps=steps, optimizer=optimizer, size=48,
                        content_weight=cw[0], style_weight=b)
        batch = [h["per_image"][j] for h in grid.result.history]
        want = [h["total"] for h in alone.history]
        # the same trajectory up to float rounding of the batched convolutions, which every step
        # amplifies (a change of thread count does the same to a single run): steps 1-2 tightly
        # (step 2 checks the first update, per image), step 3 (the first curvature pair) loosely
        # Adam's first update is lr * sign(gradient): a pixel whose gradient is ~0 may flip sign under
        # rounding and move by 2 * lr, so step 2 agrees only to ~1 % for Adam (exactly per image in math)
        tol2 = 1e-2 if optimizer == "adam" else 1e-4
        assert math.isclose(batch[0], want[0], rel_tol=1e-5) and math.isclose(batch[1], want[1], rel_tol=tol2)
        assert math.isclose(batch[2], want[2], rel_tol=5e-2), (b, batch, want)
        assert math.isclose(grid.losses[0][j], min(batch))


def test_sweep_figure_and_bad_weights(random_vgg, tiny_content, tiny_style):
    grid = sweep(tiny_content, tiny_style, [1.0], [1e3, 1e4, 1e5], extractor=random_vgg, steps=2, size=48)
    fig = grid.figure
    assert len([ax for ax in fig.axes if ax.images]) == 3
    assert "α/β" in fig.axes[0].get_title() and not grid.pretrained
    with pytest.raises(ValueError, match="style_weights"):
        sweep(tiny_content, tiny_style, [1.0], [], extractor=random_vgg, steps=2)
    with pytest.raises(ValueError, match="content_weights"):
        sweep(tiny_content, tiny_style, [-1.0], [1e3], extractor=random_vgg, steps=2)


def test_scales_run_coarse_to_fine_and_return_the_final_size(random_vgg):
    content = nstlib.example("tower_bridge", size=96, device="cpu")  # [1, 3, 48, 96]
    style = nstlib.example("starry_night", size=96, device="cpu")
    seen = []
    res = stylize(content, style, extractor=random_vgg, size=96, scales=[48, 96], steps=[3, 2], every=1,
                  callback=lambda step, img, losses: seen.append((step, tuple(img.shape[-2:]))))
    assert res.image.shape == (1, 3, 48, 96)
    assert [h["step"] for h in res.history] == [1, 2, 3, 4, 5]
    assert [h["size"] for h in res.history] == [48, 48, 48, 96, 96]
    assert seen == [(1, (24, 48)), (2, (24, 48)), (3, (24, 48)), (4, (48, 96)), (5, (48, 96))]
    secs = [h["seconds"] for h in res.history]
    assert secs == sorted(secs) and res.best_step in (4, 5) and res.params["scales"] == [48, 96]
    assert scale_sides(3, 512) == [128, 256, 512]
    with pytest.raises(ValueError, match="ascending"):
        scale_sides([96, 48], 48)
    with pytest.raises(ValueError, match="must equal size"):
        scale_sides([48, 64], 96)
    with pytest.raises(ValueError, match="one per scale"):
        stylize(content, style, extractor=random_vgg, size=96, scales=2, steps=[3, 2, 1])


def test_channels_last_gives_the_same_features_and_grams(tiny_content):
    plain = nstlib.VGGFeatures(layers=["conv1_1"] + STYLE, weights=None, device="cpu", channels_last=False)
    nhwc = nstlib.VGGFeatures(layers=["conv1_1"] + STYLE, weights=None, device="cpu", channels_last=True,
                              winograd=False)  # the layout alone (Winograd's rounding: tests/test_winograd.py)
    a, b = plain(tiny_content), nhwc(tiny_content)
    for name in a:
        assert b[name].is_contiguous(memory_format=torch.channels_last)
        assert torch.allclose(a[name], b[name], rtol=1e-4, atol=1e-4 * float(a[name].abs().max()))
        ga, gb = gram_matrix(a[name]), gram_matrix(b[name])
        assert torch.allclose(ga, gb, rtol=1e-4, atol=1e-5 * float(ga.abs().max()))
    assert nstlib.VGGFeatures(layers=["relu1_1"], weights=None, device="cpu").channels_last  # default on CPU


@pytest.mark.parametrize("precision", list(iter_precisions()) or [pytest.param("bf16", marks=pytest.mark.skip(
    reason="this CPU's torch has no autocast for bf16/fp16"))])
def test_mixed_precision_runs_with_float32_features_and_losses(precision, tiny_content, tiny_style):
    ref = nstlib.VGGFeatures(layers=STYLE, weights=None, device="cpu")
    low = nstlib.VGGFeatures(layers=STYLE, weights=None, device="cpu", precision=precision)
    x = tiny_content.clone().requires_grad_(True)
    feats = low(x)
    assert all(f.dtype == torch.float32 for f in feats.values())
    want = ref(tiny_content)
    for name, f in feats.items():  # a coarse check: the same features up to reduced-precision rounding
        assert float((f - want[name]).norm() / want[name].norm()) < 0.3
    sum(v.square().mean() for v in feats.values()).backward()
    assert x.grad is not None and bool(torch.isfinite(x.grad).all()) and float(x.grad.abs().sum()) > 0
    res = stylize(tiny_content, tiny_style, steps=3, size=48, weights=None, device="cpu", precision=precision)
    assert res.history[-1]["total"] < res.history[0]["total"] and res.image.dtype == torch.float32


def test_precision_choices():
    assert amp_dtype("auto", torch.device("cpu")) is None and amp_dtype("fp32", torch.device("cuda")) is None
    assert amp_dtype("bf16", torch.device("cpu")) is torch.bfloat16
    with pytest.raises(ValueError, match="precision"):
        nstlib.VGGFeatures(layers=["relu1_1"], weights=None, device="cpu", precision="int8")


def test_one_fetch_per_step_reports_non_finite_gradients_and_images():
    x = torch.rand(2, 3, 4, 4, requires_grad=True)
    (x.sum() * 2).backward()
    losses = {"total": torch.tensor(3.0), "style": torch.tensor(1.0), "per_image": torch.tensor([1.0, 2.0])}
    vals, per, finite = _fetch(losses, x)
    assert vals == {"total": 3.0, "style": 1.0} and per == [1.0, 2.0] and finite
    x.grad[0, 0, 0, 0] = float("nan")
    assert not _fetch(losses, x)[2]
