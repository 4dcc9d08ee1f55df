"""Tests written to kill the mutants of the core modules that survived ``python tools/mutation.py``
(engine, objective, color, styles, masks, multiscale, transfer, vgg, image; see docs/testing.md).

Each test pins a behaviour the other unit tests left open. Expected values are worked by hand in
the comments (or come from a second formula written out here), never from the function under test.
Test names start with the module they guard, so ``tools/mutation.py`` selects them with ``-k``.
"""
from __future__ import annotations

import math
import re
import sys
import warnings

import pytest
import torch

import nstlib

pytestmark = pytest.mark.usefixtures("one_thread")


def _warned_here(w: warnings.WarningMessage) -> bool:
    """The warning points at the test's line (its stacklevel is right). Under mutmut every mutated
    function is called through a trampoline, one more frame, so there the check is left out."""
    return w.filename == __file__ or "mutmut.mutation.trampoline" in sys.modules


# ---------------------------------------------------------------- engine
def _bowl(c: float):
    """f(x) = 0.5 * sum((x - c)^2): gradient x - c, identity Hessian."""
    def objective(x: torch.Tensor) -> dict:
        return {"total": 0.5 * ((x - c) ** 2).sum()}
    return objective


def _evaluated(res) -> list[float]:
    """The (uniform) pixel value of the image evaluated at each step, from every=1 snapshots."""
    out = []
    for _, img in res.snapshots:
        assert torch.allclose(img, img.flatten()[0].expand_as(img))
        out.append(float(img.flatten()[0]))
    return out


@pytest.mark.parametrize("batch", [1, 2])
@pytest.mark.parametrize("lr", [1.0, 0.5])
def test_engine_lbfgs_steps_on_a_quadratic_by_hand(batch, lr):
    # 48 pixels per image at 0.5, c = 0.75: g0 = -0.25 each, |g0|_1 = 12. torch's L-BFGS (and
    # BatchLBFGS, per image) scales the first step by min(1, 1/|g|_1) * lr: x1 = 0.5 + lr * 0.25 / 12.
    # The Hessian is the identity, so every curvature pair has s = y and the two-loop recursion
    # gives d = -g exactly: x_{k+1} = x_k + lr * (0.75 - x_k) from then on.
    # (max_iter=2 per step, or the batch optimizer ignoring lr, gives other iterates.)
    res = nstlib.optimize(torch.full((batch, 3, 4, 4), 0.5), _bowl(0.75), optimizer="lbfgs", steps=4,
                          lr=lr, every=1)
    want = [0.5, 0.5 + lr * 0.25 / 12]
    for _ in range(2):
        want.append(want[-1] + lr * (0.75 - want[-1]))
    assert _evaluated(res) == pytest.approx(want, abs=1e-6)


def test_engine_lbfgs_moves_on_a_gradient_below_torchs_tolerance():
    # f = -1e-8 * sum(x): |g| = 1e-8 < torch.optim.LBFGS's default tolerance_grad 1e-7, which would
    # return without a step. The engine switches the tolerances off: x1 = x0 + 1 * 1e-8 (t = 1).
    res = nstlib.optimize(torch.full((1, 3, 4, 4), 1e-3), lambda x: {"total": -1e-8 * x.sum()},
                          optimizer="lbfgs", steps=2, every=1)
    x0, x1 = _evaluated(res)
    assert x1 - x0 == pytest.approx(1e-8, rel=1e-2)


def test_engine_default_steps_and_snapshot_interval():
    res = nstlib.optimize(torch.full((1, 3, 2, 2), 0.5), _bowl(0.75), optimizer="adam")
    assert len(res.history) == 300 and res.history[-1]["step"] == 300
    assert [s for s, _ in res.snapshots] == list(range(10, 301, 10))


def test_engine_bad_arguments_name_the_parameter():
    x = torch.full((1, 3, 2, 2), 0.5)
    with pytest.raises(ValueError, match=r"^unknown optimizer 'sgd'; choose one of 'lbfgs', 'adam'$"):
        nstlib.optimize(x, _bowl(0.75), optimizer="sgd")
    with pytest.raises(ValueError, match=r"^steps must be a positive whole number such as 100, got 0$"):
        nstlib.optimize(x, _bowl(0.75), steps=0)
    with pytest.raises(ValueError, match=r"^every must be a positive whole number such as 100, got 0$"):
        nstlib.optimize(x, _bowl(0.75), steps=2, every=0)


def test_engine_history_of_a_total_only_objective_has_zero_terms():
    res = nstlib.optimize(torch.full((1, 3, 2, 2), 0.5), _bowl(0.75), steps=2)
    assert [(h["content"], h["style"], h["tv"]) for h in res.history] == [(0.0, 0.0, 0.0)] * 2


def test_engine_a_broken_callback_warns_at_the_callers_line():
    def broken(step, img, losses):
        raise OSError("disk full")

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        res = nstlib.optimize(torch.full((1, 3, 2, 2), 0.5), _bowl(0.75), steps=5, every=2, callback=broken)
    assert res.stopped == "callback error"
    (w,) = [w for w in caught if issubclass(w.category, RuntimeWarning)]
    assert str(w.message) == ("the callback raised OSError: disk full; stopped at step 2 "
                              "and returned the best image so far")
    assert _warned_here(w)  # stacklevel: the line that called optimize, not the engine


class _ManualObjective:
    """An objective with only ``loss_and_grad`` (not callable): sets x.grad itself, or leaves it None."""

    def __init__(self, grad: float | None):
        self.grad, self.calls = grad, 0

    def loss_and_grad(self, x: torch.Tensor) -> dict:
        self.calls += 1
        if self.grad is not None:
            x.grad = torch.full_like(x, self.grad)
        return {"total": torch.tensor(1.0)}


def test_engine_evaluates_an_object_through_loss_and_grad():
    obj = _ManualObjective(grad=0.0)
    res = nstlib.optimize(torch.full((1, 3, 2, 2), 0.5), obj, steps=3)  # type: ignore[arg-type]
    assert obj.calls == 3 and len(res.history) == 3 and res.stopped == "done"


def test_engine_copes_with_an_objective_that_leaves_no_gradient():
    obj = _ManualObjective(grad=None)  # x.grad stays None: counted as a zero gradient
    for optimizer in ("lbfgs", "adam"):
        res = nstlib.optimize(torch.full((1, 3, 2, 2), 0.5), obj,  # type: ignore[arg-type]
                              optimizer=optimizer, steps=2)
        assert len(res.history) == 2 and res.stopped == "done"


def test_engine_a_nan_gradient_with_a_finite_loss_rolls_back():
    obj = _ManualObjective(grad=math.nan)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        res = nstlib.optimize(torch.full((1, 3, 2, 2), 0.5), obj, steps=8)  # type: ignore[arg-type]
    assert res.stopped == "diverged" and res.history == [] and res.best_step == 0
    first, last = [w for w in caught if issubclass(w.category, RuntimeWarning)]
    assert str(first.message).startswith("the loss, its gradient or the image became NaN/inf at step 1;")
    # MAX_FAILURES = 5 failed steps, then it stops (the 5th is step 5 of 8)
    assert str(last.message) == ("the optimization kept diverging (5 times); stopped at step 5 and returned "
                                 "the best image (step 0). Lower lr or the loss weights")
    assert obj.calls == 5 and _warned_here(first) and _warned_here(last)


class _Weighted:
    """A minimal live-weights objective: ``loss_weights`` and ``set_weights``, total = w * sum(x)."""

    def __init__(self):
        self.loss_weights = {"content_weight": 1.0, "style_weight": 1.0, "tv_weight": 0.0,
                             "style_layer_weights": None}

    def set_weights(self, **kw):
        self.loss_weights.update(kw)

    def __call__(self, x):
        return {"total": self.loss_weights["style_weight"] * x.sum()}


def test_engine_controls_may_set_only_the_weights():
    with pytest.raises(ValueError, match=r"^controls returned \['colour'\]; it may set only content_weight, "
                                         r"style_weight, tv_weight, style_layer_weights$"):
        nstlib.optimize(torch.full((1, 3, 2, 2), 0.5), _Weighted(), steps=2,
                        controls=lambda step: {"colour": 1.0})
    with pytest.raises(ValueError, match=r"^live weights \(controls=\.\.\.\) need an objective with "
                                         r"set_weights, such as nstlib\.Objective$"):
        nstlib.optimize(torch.full((1, 3, 2, 2), 0.5), _bowl(0.5), steps=2,
                        controls=lambda step: {"style_weight": 2.0})


def test_engine_result_html_line():
    res = nstlib.optimize(torch.full((1, 3, 2, 4), 0.5), lambda x: {"total": -x.sum()}, optimizer="adam",
                          steps=3, lr=0.01)
    # -sum(x) falls every Adam step: the best is the last evaluated image, step 3 (total -12.06 ...)
    html = res._repr_html_()
    want = (r"<b>Result</b> \(2, 4\) px, 3 steps, best total loss -12\.\d* at step 3, \d+\.\d s, done")
    assert re.fullmatch(want, html), html
    empty = nstlib.Result(image=torch.zeros(1, 3, 2, 2))
    assert empty._repr_html_() == "<b>Result</b> (2, 2) px, 0 steps, best total loss nan at step 0, 0.0 s, done"


def test_engine_bad_init_and_lr_say_what_to_do():
    msg = (r"^the initial image must be a finite tensor \[1, 3, H, W\] in \[0, 1\], got {}; "
           r"load it with nstlib\.load_image$")
    with pytest.raises(nstlib.NSTError, match=msg.format(r"\(\)")):
        nstlib.optimize([[0.5]], _bowl(0.75), steps=1)  # type: ignore[arg-type]
    import numpy as np
    with pytest.raises(nstlib.NSTError, match=msg.format(r"\(3, 2, 2\)")):
        nstlib.optimize(np.zeros((3, 2, 2)), _bowl(0.75), steps=1)  # type: ignore[arg-type]
    x = torch.full((1, 3, 2, 2), 0.5)
    for lr in (0, -1, math.inf, math.nan):
        with pytest.raises(ValueError, match=rf"^lr must be a finite number > 0, got {float(lr)!r}$"):
            nstlib.optimize(x, _bowl(0.75), steps=1, lr=lr)


def _always_nan(x):
    return {"total": x.sum() * math.nan}


@pytest.mark.parametrize("optimizer", ["lbfgs", "adam"])
def test_engine_a_run_with_no_finite_step_returns_the_clamped_init(optimizer):
    init = torch.tensor([-0.5, 0.25, 1.5, 2.0]).reshape(1, 1, 2, 2).expand(1, 3, 2, 2)
    init = init.contiguous(memory_format=torch.channels_last)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        res = nstlib.optimize(init, _always_nan, optimizer=optimizer, steps=3, lr=0.1)
    assert res.stopped == "diverged" and res.history == [] and res.best_step == 0
    # clamped to [0, 1] by hand, and a plain contiguous tensor whatever the layout of init
    assert res.image[0, 0].flatten().tolist() == [0.0, 0.25, 1.0, 1.0] and res.image.is_contiguous()
    first = [w for w in caught if "became NaN/inf" in str(w.message)][0]
    assert str(first.message) == (
        "the loss, its gradient or the image became NaN/inf at step 1; rolled back to the best image and "
        "halved the step size (lr=0.05" + (", L-BFGS history restarted)" if optimizer == "lbfgs" else ")"))
    assert _warned_here(first)  # stacklevel: the caller's line
    (none,) = [w for w in caught if "no step" in str(w.message)]  # 3 failures < MAX_FAILURES, no step kept
    assert str(none.message) == ("no step gave a finite loss: nothing was optimized and the result is the "
                                 "initial image. Lower the loss weights or lr") and _warned_here(none)


def test_engine_batch_of_four_keeps_each_images_best_across_a_weight_change():
    # four independent images, image b minimizing w * sum((x_b - c_b)^2) with c = 0.2, 0.4, 0.6, 0.8;
    # the weight changes at step 3 (controls), which restarts the bests
    c = torch.tensor([0.2, 0.4, 0.6, 0.8]).reshape(4, 1, 1, 1)
    w = {"style_weight": 1.0}

    class Batch(_Weighted):
        def __call__(self, x):
            per = self.loss_weights["style_weight"] * ((x - c) ** 2).flatten(1).sum(1)
            return {"total": per.sum(), "per_image": per}

    seen = []

    def controls(step):
        seen.append(step)
        return {"style_weight": 2.0} if step >= 3 else w

    res = nstlib.optimize(torch.full((4, 3, 2, 2), 0.5), Batch(), optimizer="adam", steps=6, lr=0.05,
                          controls=controls)
    assert seen == [1, 2, 3, 4, 5, 6]
    assert [h["style_weight"] for h in res.history] == [1.0, 1.0, 2.0, 2.0, 2.0, 2.0]
    # each image moves towards its own c: the best image of each is closer to c_b than 0.5 is
    for b in range(4):
        assert float((res.image[b] - c[b]).abs().max()) < abs(0.5 - float(c[b]))


def test_engine_result_save_defaults_to_the_current_folder(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    res = nstlib.optimize(torch.full((1, 3, 2, 2), 0.5), _bowl(0.75), steps=1)
    path = res.save()
    assert path.resolve() == tmp_path / "result.jpg" and path.exists()


# ---------------------------------------------------------------- color
def _pixels(*rgb: tuple[float, float, float]) -> torch.Tensor:
    """An image [1, 3, 1, N] from N RGB triples."""
    return torch.tensor(rgb, dtype=torch.float32).T.reshape(1, 3, 1, len(rgb))


def test_color_yiq_back_to_rgb_from_published_values():
    # FCC NTSC: (0.5, 0.25, 1.0) -> Y 0.41025, I -0.092, Q 0.286275 (worked in test_survivors.py)
    yiq = torch.tensor([0.41025, -0.092, 0.286275]).reshape(1, 3, 1, 1)
    assert nstlib.color.yiq_to_rgb(yiq).flatten().tolist() == pytest.approx([0.5, 0.25, 1.0], abs=1e-5)
    y = nstlib.color.luminance(_pixels((0.5, 0.25, 1.0), (1, 1, 1)))
    assert y.shape == (1, 1, 1, 2) and y.flatten().tolist() == pytest.approx([0.41025, 1.0], abs=1e-6)
    grey = nstlib.color.luminance_image(_pixels((0.5, 0.25, 1.0)))
    assert grey.shape == (1, 3, 1, 1) and grey.is_contiguous()
    assert grey.flatten().tolist() == pytest.approx([0.41025] * 3, abs=1e-6)
    with pytest.raises(ValueError, match=r"^expected an image of shape \[B, 3, H, W\], got \(1, 2, 1, 1\)$"):
        nstlib.color.rgb_to_yiq(torch.zeros(1, 2, 1, 1))


def test_color_match_luminance_by_hand():
    # grey pixels (Y = the value): style [0, 0, 1, 1] (mean 0.5, sample std sqrt(1/3)), content
    # [0.5, 0.7] (mean 0.6, sample std 0.1 * sqrt(2)): Y' = (Y - 0.5) * 0.141421 / 0.577350 + 0.6
    style = _pixels(*[(v, v, v) for v in (0.0, 0.0, 1.0, 1.0)])
    content = _pixels((0.5, 0.5, 0.5), (0.7, 0.7, 0.7))
    k = math.sqrt(0.02) / math.sqrt(1 / 3)
    out = nstlib.color.match_luminance(style, content)
    assert out.shape == (1, 3, 1, 4) and out.is_contiguous() and torch.equal(out[:, 0], out[:, 2])
    assert out[0, 0, 0].tolist() == pytest.approx([0.6 - 0.5 * k, 0.6 - 0.5 * k, 0.6 + 0.5 * k, 0.6 + 0.5 * k],
                                                   abs=1e-5)
    # content [0, 1] (std sqrt(0.5)): 0.5 +- 0.5 * 1.2247 leaves [0, 1] and is clamped
    wide = nstlib.color.match_luminance(style, _pixels((0, 0, 0), (1, 1, 1)))
    assert wide[0, 0, 0].tolist() == pytest.approx([0.0, 0.0, 1.0, 1.0], abs=1e-6)
    # a flat style (std 0) becomes the content's mean
    flat = nstlib.color.match_luminance(_pixels((0.3, 0.3, 0.3), (0.3, 0.3, 0.3)), content)
    assert flat.flatten().tolist() == pytest.approx([0.6] * 6, abs=1e-5)


def test_color_combine_luminance_by_hand():
    # white has Y 1 and I = Q = 0 (the I and Q rows sum to 0), so adding t * (1, 1, 1) to a colour
    # changes only its Y, by t: the result is color + (Y_luma - Y_color)
    color = _pixels((0.5, 0.25, 1.0), (1.0, 0.0, 0.0))  # Y 0.41025 and 0.299
    luma = _pixels((0.4, 0.4, 0.4), (0.6, 0.6, 0.6))
    out = nstlib.color.combine_luminance(luma, color)
    assert out[0, :, 0, 0].tolist() == pytest.approx([0.5 - 0.01025, 0.25 - 0.01025, 1.0 - 0.01025], abs=1e-5)
    assert out[0, :, 0, 1].tolist() == pytest.approx([1.0, 0.301, 0.301], abs=1e-5)  # 1.301 clamped


def _hadamard(mean: tuple[float, float, float], dev: tuple[float, float, float]) -> torch.Tensor:
    """A 2 x 2 image whose channels follow orthogonal +-1 patterns: means ``mean``, population
    variances ``dev**2``, uncorrelated channels (a diagonal colour covariance)."""
    signs = torch.tensor([[-1.0, 1.0, -1.0, 1.0], [-1.0, -1.0, 1.0, 1.0], [-1.0, 1.0, 1.0, -1.0]])
    return (torch.tensor(mean)[:, None] + torch.tensor(dev)[:, None] * signs).reshape(1, 3, 2, 2)


def test_color_stats_and_match_color_by_hand():
    mu, cov = nstlib.color.color_stats(_pixels((0, 0, 0), (1, 0.5, 0)))
    assert mu.tolist() == pytest.approx([0.5, 0.25, 0.0])
    assert cov.flatten().tolist() == pytest.approx([0.25, 0.125, 0.0, 0.125, 0.0625, 0.0, 0.0, 0.0, 0.0])
    with pytest.raises(ValueError, match=r"^color_stats takes one image \[1, 3, H, W\], got \(2, 3, 1, 1\)$"):
        nstlib.color.color_stats(torch.zeros(2, 3, 1, 1))
    # diagonal covariances: A = diag(sqrt((var_t + eps) / (var_s + eps))), so each channel's deviation
    # is scaled by that factor and moved to the target's mean
    src = _hadamard((0.5, 0.5, 0.5), (0.1, 0.1, 0.1))
    tgt = _hadamard((0.3, 0.5, 0.7), (0.2, 0.05, 0.1))
    out = nstlib.color.match_color(src, tgt)
    assert out.dtype == torch.float32 and out.shape == src.shape
    for ch, (m, d) in enumerate(zip((0.3, 0.5, 0.7), (0.2, 0.05, 0.1))):
        scale = math.sqrt((d * d + 1e-5) / (0.01 + 1e-5))
        want = [m + 0.1 * scale * s for s in ((src[0, ch].flatten() - 0.5) / 0.1).tolist()]
        assert out[0, ch].flatten().tolist() == pytest.approx(want, abs=1e-6)
    # out of gamut: clamped by default, kept with clamp=False
    wide = _hadamard((0.5, 0.5, 0.5), (0.6, 0.1, 0.1))
    assert float(nstlib.color.match_color(src, wide).min()) == 0.0
    raw = nstlib.color.match_color(src, wide, clamp=False)
    assert float(raw[0, 0].min()) == pytest.approx(0.5 - 0.1 * math.sqrt(0.36001 / 0.01001), abs=1e-5)
    assert float(nstlib.color.match_color(src, wide, eps=0.0, clamp=False)[0, 0].max()) == pytest.approx(1.1, abs=1e-5)


# ---------------------------------------------------------------- masks: the mask's name in its errors
def test_masks_errors_name_the_mask_by_path_or_type_and_shape(tmp_path):
    import numpy as np
    from PIL import Image

    from nstlib.masks import load_mask
    missing = tmp_path / "missing.png"
    with pytest.raises(nstlib.NSTError, match=rf"^mask {re.escape(repr(str(missing)))} could not be used: "):
        load_mask(str(missing), (4, 4))
    with pytest.raises(nstlib.NSTError, match=rf"^mask {re.escape(repr(str(missing)))} could not be used: "):
        load_mask(missing, (4, 4))  # a Path is named like its text
    with pytest.raises(nstlib.NSTError, match=r"^the mask Tensor of shape \(2, 8\) is 2x8 px but the content is "
                                              r"4x4: the aspect ratios differ"):
        load_mask(torch.ones(2, 8), (4, 4))
    with pytest.raises(nstlib.NSTError, match=r"^the mask ndarray of shape \(4, 4\) selects no pixel \(all "
                                              r"black/zero\); white \(1\) marks where the style goes$"):
        load_mask(np.zeros((4, 4), dtype=np.float32), (4, 4))
    with pytest.raises(nstlib.NSTError, match=r"^the mask Image selects no pixel"):  # no .shape: the type only
        load_mask(Image.new("L", (4, 4)), (4, 4))


class _Flat:
    """Every step the same total (and per-image totals), with a gradient that moves the image."""

    def __init__(self, batch: bool):
        self.batch = batch

    def loss_and_grad(self, x: torch.Tensor) -> dict:
        x.grad = torch.full_like(x, -1.0)
        out = {"total": torch.tensor(2.0)}
        if self.batch:
            out["per_image"] = torch.ones(x.shape[0])
        return out


@pytest.mark.parametrize("batch", [False, True])
def test_engine_a_tie_keeps_the_earliest_image(batch):
    init = torch.full((2 if batch else 1, 3, 2, 2), 0.25)
    res = nstlib.optimize(init, _Flat(batch), optimizer="adam", steps=4, lr=0.1, every=1)  # type: ignore[arg-type]
    assert not torch.equal(res.snapshots[-1][1], init)  # the image moved; the loss did not
    assert res.best_step == 1 and torch.equal(res.image, init)  # the first of equal losses
    seconds = [h["seconds"] for h in res.history]
    assert seconds == sorted(seconds) and 0 <= seconds[0] and seconds[-1] < 600  # from the run's start


def test_color_edges_batches_clamps_and_float64():
    # a black Y with red's chroma: red + (0 - 0.299) = (0.701, -0.299, -0.299), clamped below at 0
    out = nstlib.color.combine_luminance(_pixels((0, 0, 0)), _pixels((1.0, 0.0, 0.0)))
    assert out.flatten().tolist() == pytest.approx([0.701, 0.0, 0.0], abs=1e-5)
    # match_color clamps above too (the wide target of test_color_stats_and_match_color_by_hand)
    src, wide = _hadamard((0.5, 0.5, 0.5), (0.1, 0.1, 0.1)), _hadamard((0.5, 0.5, 0.5), (0.6, 0.1, 0.1))
    assert float(nstlib.color.match_color(src, wide).max()) == 1.0
    # a batch of two: each image's own grey copy
    two = torch.stack([_pixels((1.0, 0.0, 0.0))[0], _pixels((0.0, 0.0, 1.0))[0]])
    grey = nstlib.color.luminance_image(two)
    assert grey.shape == (2, 3, 1, 1) and grey[:, 0].flatten().tolist() == pytest.approx([0.299, 0.114], abs=1e-6)
    assert nstlib.color.match_luminance(two, two).shape == (2, 3, 1, 1)
    # a float64 image (CPU) gets the published coefficients exactly, not their float32 roundings
    red = _pixels((1.0, 0.0, 0.0)).double()
    assert nstlib.color.rgb_to_yiq(red).flatten().tolist() == pytest.approx([0.299, 0.5959, 0.2115], abs=1e-12)
    back = nstlib.color.yiq_to_rgb(torch.tensor([0.299, 0.5959, 0.2115], dtype=torch.float64).reshape(1, 3, 1, 1))
    assert back.flatten().tolist() == pytest.approx([1.0, 0.0, 0.0], abs=1e-12)


# ---------------------------------------------------------------- masks: values worked by hand
def test_masks_centre_includes_pixels_on_the_ellipse():
    # 3 x 6: pixel centres y = 1/6, 1/2, 5/6 and x = 1/12, 3/12, ..., 11/12 (exact in float32).
    # Middle row: ((x - 0.5) / 0.25)^2 <= 1 for x in [0.25, 0.75]; x = 0.25 and 0.75 lie ON the
    # ellipse (value exactly 1) and count as inside. Rows 0, 2: ((1/6 - 1/2) / 0.25)^2 = 16/9 > 1.
    m = nstlib.masks.shape_mask("centre", 3, 6)
    assert m.shape == (1, 1, 3, 6)
    assert m[0, 0].tolist() == [[0.0] * 6, [0.0, 1.0, 1.0, 1.0, 1.0, 0.0], [0.0] * 6]


def test_masks_load_mask_tensors_colour_and_area_resize():
    from nstlib.masks import load_mask
    checker = torch.tensor([[1.0, 0.0, 1.0, 0.0], [0.0, 1.0, 0.0, 1.0]] * 2)  # 4 x 4
    # a [1, 1, H, W] tensor reads as its one plane; area resize 4x4 -> 2x2: each 2x2 cell is half white
    out = load_mask(checker[None, None], (2, 2))
    assert out.shape == (1, 1, 2, 2) and out.dtype == torch.float32
    assert out.flatten().tolist() == [0.5, 0.5, 0.5, 0.5]
    # same size: the values themselves (not clamped to 1, not the plane of another index)
    half = torch.tensor([[0.25, 1.0], [0.0, 0.75]])
    assert load_mask(half[None, None], (2, 2)).flatten().tolist() == [0.25, 1.0, 0.0, 0.75]
    assert load_mask(half, (2, 2)).flatten().tolist() == [0.25, 1.0, 0.0, 0.75]
    # a colour [1, 3, H, W] tensor is averaged over its channels: (1 + 0.5 + 0) / 3 = 0.5, not red's 1
    rgb = torch.stack([torch.ones(2, 2), torch.full((2, 2), 0.5), torch.zeros(2, 2)])[None]
    assert load_mask(rgb, (2, 2)).flatten().tolist() == pytest.approx([0.5] * 4, abs=1e-6)
    # a [1, 1, W] tensor is a one-channel 1 x W image (not indexed down to 1-D)
    assert load_mask(torch.tensor([[[1.0, 0.5]]]), (1, 2)).flatten().tolist() == [1.0, 0.5]
    # a batch of two masks, or two channels, is not a mask
    for bad in (torch.ones(2, 1, 2, 2), torch.ones(1, 2, 2, 2)):
        with pytest.raises(nstlib.NSTError, match=r"could not be used: the tensor has shape"):
            load_mask(bad, (2, 2))


def test_masks_load_mask_passes_the_device_and_names_the_content_size(monkeypatch):
    from nstlib import masks
    seen = []
    real = masks.load_image

    def spy(src, device=None):
        seen.append(device)
        return real(src, device="cpu")

    monkeypatch.setattr(masks, "load_image", spy)
    masks.load_mask(torch.ones(2, 2), (2, 2), device="cpu")
    assert seen == ["cpu"]
    monkeypatch.undo()
    # non-square content: its H x W in that order
    with pytest.raises(nstlib.NSTError, match=r"is 2x2 px but the content is 4x8: the aspect"):
        masks.load_mask(torch.ones(2, 2), (4, 8))


def test_masks_downsample_mask_averages_areas():
    checker = torch.tensor([[1.0, 0.0, 1.0, 0.0], [0.0, 1.0, 0.0, 1.0]] * 2)[None, None]
    assert nstlib.masks.downsample_mask(checker, (2, 2)).flatten().tolist() == [0.5] * 4  # nearest: 1 or 0
    assert nstlib.masks.downsample_mask(checker, (4, 4)).flatten().tolist() == checker.flatten().tolist()


def test_masks_masked_gram_matrix_batches_small_areas_and_errors():
    from nstlib.masks import masked_gram_matrix
    # B = 2, C = 3, 1 x 2 positions. Image 0: F = [[1, 2], [0, 1], [3, 0]], mask [0.5, 0]:
    #   sum m = 0.5 (< 1: not clamped up to 1); G_ij = 0.5 F_i0 F_j0 / (3 * 0.5) = F_i0 F_j0 / 3
    # Image 1: F = [[1, 1], [2, 0], [0, 1]], mask [1, 1]: G = F F^T / (3 * 2)
    f = torch.tensor([[[1.0, 2.0], [0.0, 1.0], [3.0, 0.0]], [[1.0, 1.0], [2.0, 0.0], [0.0, 1.0]]]).reshape(2, 3, 1, 2)
    m = torch.tensor([[0.5, 0.0], [1.0, 1.0]]).reshape(2, 1, 1, 2)
    g = masked_gram_matrix(f, m)
    c0 = [1.0, 0.0, 3.0]
    g0 = [[a * b / 3 for b in c0] for a in c0]
    g1 = [[2 / 6, 2 / 6, 1 / 6], [2 / 6, 4 / 6, 0.0], [1 / 6, 0.0, 1 / 6]]
    assert g.shape == (2, 3, 3)
    for got, want in ((g[0], g0), (g[1], g1)):
        assert got.flatten().tolist() == pytest.approx([x for row in want for x in row], abs=1e-6)
    # the result has the features' dtype (a float32 mask with bfloat16 features)
    assert masked_gram_matrix(f.bfloat16(), m).dtype == torch.bfloat16
    # bad shapes: the message names both shapes
    for feats, mask in ((f[0], m[:1]), (f, m[:, :, :, :1]), (f, m[0])):
        with pytest.raises(ValueError, match=rf"^masked_gram_matrix: features {re.escape(str(tuple(feats.shape)))} "
                                             rf"and mask {re.escape(str(tuple(mask.shape)))} must be \[B, C, H, W\]"):
            masked_gram_matrix(feats, mask)


def test_masks_masked_style_loss_by_hand():
    from nstlib.masks import masked_style_loss
    # layer a: 1 channel, 1 x 2, F = [2, 1]; layer b: 1 channel, 1 x 1, F = [3].
    feats = {"a": torch.tensor([2.0, 1.0]).reshape(1, 1, 1, 2), "b": torch.tensor([3.0]).reshape(1, 1, 1, 1)}
    targets = {"a": torch.tensor([[[1.0]]]), "b": torch.tensor([[[4.0]]])}
    mask = torch.tensor([[0.5, 0.0]]).reshape(1, 1, 1, 2)
    # a: G = 0.5 * 4 / 0.5 = 4, (4 - 1)^2 = 9. b: mask area-averaged to 0.25 (> 0 but < 1),
    # G = 0.25 * 9 / 0.25 = 9, (9 - 4)^2 = 25. Weights: a 2.0, b the default 1.
    loss = masked_style_loss(feats, targets, mask, {"a": 2.0})
    assert float(loss) == pytest.approx(2 * 9 + 25)
    assert float(masked_style_loss(feats, targets, mask)) == pytest.approx(9 + 25)
    # an empty mask adds nothing, even with a target far from zero
    assert float(masked_style_loss(feats, targets, torch.zeros(1, 1, 1, 2))) == 0.0
    with pytest.raises(KeyError, match=r"masked_style_loss: no features for layer 'c'; extract it too"):
        masked_style_loss(feats, {"c": targets["a"]}, mask)


# ---------------------------------------------------------------- objective: a fake extractor, by hand
class _Identity:
    """An extractor whose every layer is the image itself ([B, 3, H, W] features)."""

    device = torch.device("cpu")

    def __call__(self, img: torch.Tensor, layers) -> dict:
        return {n: img for n in layers}


def _two_pixels(p0, p1) -> torch.Tensor:
    return torch.tensor([p0, p1], dtype=torch.float32).T.reshape(1, 3, 1, 2)


def test_objective_mask_and_style_outside_by_hand():
    img = _two_pixels((1.0, 0.0, 0.0), (0.0, 1.0, 0.0))
    zero_style = torch.zeros(1, 3, 1, 2)  # Gram 0
    mask = torch.tensor([1.0, 0.0]).reshape(1, 1, 1, 2)
    # inside: G = p0 p0^T / (3 * 1) = diag(1/3, 0, 0), mean of squares over 9 entries = 1/81;
    # outside (1 - mask selects p1): diag(0, 1/3, 0), also 1/81. Unmasked it would be
    # G = diag(1/6, 1/6, 0): 2/36/9 = 1/162.
    inside = nstlib.Objective(_Identity(), None, zero_style, [], ["a"], 0.0, 1.0, 0.0, mask=mask)  # type: ignore[arg-type]
    assert float(inside(img)["style"]) == pytest.approx(1 / 81)
    both = nstlib.Objective(_Identity(), None, zero_style, [], ["a"], 0.0, 1.0, 0.0, mask=mask,  # type: ignore[arg-type]
                            style_outside=zero_style)
    assert float(both(img)["style"]) == pytest.approx(2 / 81)
    plain = nstlib.Objective(_Identity(), None, zero_style, [], ["a"], 0.0, 1.0, 0.0)  # type: ignore[arg-type]
    assert float(plain(img)["style"]) == pytest.approx(1 / 162)


def test_objective_style_per_image_by_hand_and_its_errors():
    s0 = torch.zeros(1, 3, 1, 2)                          # Gram 0
    s1 = _two_pixels((1.0, 0.0, 0.0), (1.0, 0.0, 0.0))   # Gram diag(2/6, 0, 0) = diag(1/3, 0, 0)
    img = torch.zeros(2, 3, 1, 2)
    obj = nstlib.Objective(_Identity(), None, [s0, s1], [], ["a"], 0.0, [1.0, 1.0], 0.0,  # type: ignore[arg-type]
                           style_per_image=True)
    # image 0 against s0 alone: 0; image 1 against s1 alone: (1/3)^2 / 9 = 1/81 (the blend would give 1/324 each)
    assert obj(img)["per_image"].tolist() == pytest.approx([0.0, 1 / 81])
    with pytest.raises(ValueError, match=r"^style_per_image needs one style image per image of the batch \(2\), "
                                         r"got 2 and a blend$"):
        nstlib.Objective(_Identity(), None, [s0, s1], [], ["a"], 0.0, [1.0, 1.0], 0.0,  # type: ignore[arg-type]
                         style_per_image=True, style_blend=[1, 1])
    with pytest.raises(ValueError, match=r"^style_per_image needs one style image per image of the batch \(3\), "
                                         r"got 2$"):
        nstlib.Objective(_Identity(), None, [s0, s1], [], ["a"], 0.0, [1.0, 1.0, 1.0], 0.0,  # type: ignore[arg-type]
                         style_per_image=True)
