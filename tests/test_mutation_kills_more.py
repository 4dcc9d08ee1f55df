"""Tests written to kill the mutants of styles, objective, multiscale, transfer, vgg and image that
survived ``python tools/mutation.py`` (see docs/testing.md, "Mutation testing").

Each test pins a behaviour the other unit tests left open. Expected values are worked by hand in
the comments, published constants or a second formula written out here; never the function under
test. Test names start with the module they guard, so ``tools/mutation.py`` selects them with ``-k``.
"""
from __future__ import annotations

import pytest
import torch

import nstlib
from nstlib import styles

pytestmark = pytest.mark.usefixtures("one_thread")


def _noise(h: int, w: int, lo: float = 0.3, hi: float = 0.7, seed: int = 0) -> torch.Tensor:
    """[1, 3, h, w] uniform in [lo, hi] (seeded): mid-range values, so colour matching never clamps."""
    g = torch.Generator().manual_seed(seed)
    return lo + (hi - lo) * torch.rand(1, 3, h, w, generator=g)


# ---------------------------------------------------------------- styles
def test_styles_load_styles_default_scale_and_device():
    # content 4 x 6: longest side 6; an 8 x 4 style scaled to longest side 6 is 6 x 3 (style_scale 1)
    got = styles.load_styles(_noise(8, 4), (1, 3, 4, 6))
    assert [tuple(s.shape) for s in got] == [(1, 3, 6, 3)]
    # half the content's side: 3, the 8 x 4 style -> 3 x round(1.5) = 3 x 2; two styles, two images
    got = styles.load_styles([_noise(8, 4), _noise(4, 4)], (1, 3, 4, 6), 0.5)
    assert [tuple(s.shape) for s in got] == [(1, 3, 3, 2), (1, 3, 3, 3)]
    # the device asked for ("meta": a device that is not the default one)
    got = styles.load_styles(_noise(8, 4), (1, 3, 4, 6), device="meta")
    assert got[0].device.type == "meta"


def test_styles_prepare_inputs_scales_styles_and_outside_on_the_contents_device():
    content = torch.zeros(1, 3, 4, 6, device="meta")  # the images follow the content's device
    c, st, out, m = styles.prepare_inputs(content, _noise(8, 4), style_scale=0.5, style_outside=_noise(2, 2))
    assert c is content and m is None
    # longest side 0.5 * 6 = 3: the 8 x 4 style -> 3 x 2, the 2 x 2 outside style -> 3 x 3
    assert [tuple(s.shape) for s in st] == [(1, 3, 3, 2)] and [tuple(s.shape) for s in out] == [(1, 3, 3, 3)]
    assert st[0].device.type == "meta" and out[0].device.type == "meta"
    # no style, no outside: empty lists
    _, st, out, _ = styles.prepare_inputs(torch.zeros(1, 3, 4, 6), None)
    assert st == [] and out == []


def test_styles_prepare_inputs_min_size_and_the_mask():
    content = torch.zeros(1, 3, 4, 6)
    # default min_size 1: a 1 x 1 style of a 1 x 1 content passes
    _, st, _, _ = styles.prepare_inputs(torch.zeros(1, 3, 1, 1), _noise(2, 2))
    assert tuple(st[0].shape) == (1, 3, 1, 1)
    with pytest.raises(nstlib.NSTError, match=r"^at style_scale=0\.5 a style image is \(3, 2\) px: too small for "
                                              r"the layers in use, which need at least 4 px on each side .*; use a "
                                              r"larger style_scale or size, or a less elongated style image$"):
        styles.prepare_inputs(content, _noise(8, 4), style_scale=0.5, min_size=4)
    # a square style passes, an elongated outside style (2 x 8 -> 1 x 3) does not
    with pytest.raises(nstlib.NSTError, match=r"^at style_scale=0\.5 a style image is \(1, 3\) px"):
        styles.prepare_inputs(content, _noise(4, 4), style_scale=0.5, style_outside=_noise(2, 8), min_size=2)
    # the mask is loaded at the content's size: a 2 x 3 all-white mask -> [1, 1, 4, 6] of ones
    _, _, _, m = styles.prepare_inputs(content, _noise(4, 4), mask=torch.ones(2, 3))
    assert tuple(m.shape) == (1, 1, 4, 6) and m.eq(1).all()


def test_styles_prepare_inputs_preserve_color_modes():
    content = _noise(4, 6, 0.4, 0.6, seed=1)
    style, outside = _noise(4, 4, 0.1, 0.3, seed=2), _noise(4, 4, 0.6, 0.9, seed=3)
    # histogram: the styles get the content's mean colour (mid-range values: nothing clamps)
    c, st, out, _ = styles.prepare_inputs(content, style, preserve_color="histogram", style_outside=outside)
    assert c is content
    want = content.mean(dim=(2, 3))
    for s in st + out:
        assert torch.allclose(s.mean(dim=(2, 3)), want, atol=1e-4)
    # luminance: the content becomes its Y (0.299 R + 0.587 G + 0.114 B, ITU-R BT.601) in 3 channels;
    # each style becomes grey with the content's luminance mean and (sample) standard deviation
    c, st, out, _ = styles.prepare_inputs(content, style, preserve_color="luminance", style_outside=outside)
    y = 0.299 * content[:, 0] + 0.587 * content[:, 1] + 0.114 * content[:, 2]
    assert torch.allclose(c, y[:, None].expand(-1, 3, -1, -1), atol=1e-6)
    for s in st + out:
        assert torch.equal(s[:, 0], s[:, 1]) and torch.equal(s[:, 0], s[:, 2])
        assert float(s[:, 0].mean()) == pytest.approx(float(y.mean()), abs=1e-5)
        assert float(s[:, 0].std()) == pytest.approx(float(y.std()), abs=1e-5)
    # no preserve_color: the style only resized (4 x 4 -> 6 x 6), its colours kept in [0.1, 0.3]
    _, st, _, _ = styles.prepare_inputs(content, style)
    assert tuple(st[0].shape) == (1, 3, 6, 6) and 0.1 <= float(st[0].min()) and float(st[0].max()) <= 0.3


def test_styles_a_style_exactly_min_size_passes_and_style_side_errors():
    # longest side 0.5 * 6 = 3: a 4 x 4 style -> 3 x 3, exactly min_size 3 (only smaller is refused)
    _, st, _, _ = styles.prepare_inputs(torch.zeros(1, 3, 4, 6), _noise(4, 4), style_scale=0.5, min_size=3)
    assert tuple(st[0].shape) == (1, 3, 3, 3)
    # the side counts H and W only (not the 3 channels of a 1 x 1 content): 1 px
    assert styles.style_side((1, 3, 1, 1), 1.0) == 1 and styles.style_side((1, 3, 4, 6), 0.01) == 1
    with pytest.raises(ValueError, match=r"^style_scale must be a positive number, got 'big'$"):
        styles.style_side((1, 3, 4, 6), "big")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"^style_scale must be a positive number \(1 = the content's size\), "
                                         r"got -1$"):
        styles.style_side((1, 3, 4, 6), -1)


def test_styles_prepare_inputs_passes_the_contents_device_to_the_mask(monkeypatch):
    from nstlib import masks
    seen = []
    real = masks.load_mask

    def spy(src, shape, device=None):
        seen.append((tuple(shape), device))
        return real(src, shape, "cpu")

    monkeypatch.setattr(masks, "load_mask", spy)
    styles.prepare_inputs(torch.zeros(1, 3, 4, 6), _noise(4, 4), mask=torch.ones(2, 3))
    assert seen == [((4, 6), torch.device("cpu"))]


@pytest.mark.parametrize("blend", [[-1.0, 2.0], [float("inf"), 1.0], [0.0, 0.0], [float("nan"), 1.0]])
def test_styles_blend_weights_refuse_negative_infinite_or_all_zero(blend):
    # [-1, 2] sums to 1 > 0 (only the sign is wrong); inf is >= 0 (only not finite); [0, 0] sums to 0
    with pytest.raises(ValueError, match=r"^style_blend weights must be finite, >= 0 and not all 0, got \["):
        styles.blend_weights(blend, 2)


def test_styles_blend_weights_by_hand_and_a_non_number():
    assert styles.blend_weights([0.0, 3.0, 1.0], 3) == [0.0, 0.75, 0.25]
    assert styles.blend_weights(None, 4) == [0.25] * 4
    with pytest.raises(ValueError, match=r"^style_blend must be a list of 2 numbers >= 0, got \['a', 1\]$"):
        styles.blend_weights(["a", 1], 2)


# ---------------------------------------------------------------- multiscale
def test_multiscale_auto_scales_from_512_px_with_lbfgs_only():
    # docs/benchmarks.md: 4 scales with (120, 80, 15) coarse L-BFGS steps from 512 px up
    assert nstlib.multiscale.auto_scales(512, 300, "lbfgs") == (4, (120, 80, 15, 300))
    assert nstlib.multiscale.auto_scales(511, 300, "lbfgs") == (None, 300)
    assert nstlib.multiscale.auto_scales(1024, 300, "adam") == (None, 300)


@pytest.fixture(scope="module")
def relu1_vgg() -> nstlib.VGGFeatures:
    """VGG19 cut after relu1_1, seeded random weights: one small convolution, cheap to build."""
    return nstlib.VGGFeatures(layers=["relu1_1"], weights=None, device="cpu", seed=5)


def _three_stages(ext, **kw):
    """``nstlib.run``: content 8 x 16 coarse to fine at sides 4, 8, 16 (2 x 4, 4 x 8, 8 x 16), 1, 2, 2 Adam steps."""
    content = _noise(8, 16, 0.0, 1.0, seed=4)
    opts = dict(content_layers=["relu1_1"], style_layers=["relu1_1"], optimizer="adam", lr=0.05, init="noise",
                seed=1, every=1, tv_weight=1.0, scales=[4, 8, 16], steps=[1, 2, 2])
    opts.update(kw)
    hooks = {k: opts.pop(k) for k in ("callback", "controls") if k in opts}
    return nstlib.run(nstlib.Transfer(content, _noise(8, 8, seed=6), **opts), extractor=ext, **hooks)


def test_multiscale_stages_chain_steps_snapshots_history_and_controls(relu1_vgg):
    seen, polled = [], []

    def controls(step):  # all weight on TV from the run's step 4 (stage 3's first step) on
        polled.append(step)
        return {"content_weight": 0.0, "style_weight": 0.0} if step == 4 else None

    t0 = __import__("time").perf_counter()
    res = _three_stages(relu1_vgg, callback=lambda step, img, losses: seen.append((step, tuple(img.shape[-2:]),
                                                                                   sorted(losses))),
                        controls=controls)
    elapsed = __import__("time").perf_counter() - t0
    sizes = [(2, 4), (4, 8), (4, 8), (8, 16), (8, 16)]
    assert [(s, hw) for s, hw, _ in seen] == list(zip(range(1, 6), sizes))
    assert all("total" in keys and "style" in keys for _, _, keys in seen)  # the losses reach the callback
    assert polled == [1, 2, 3, 4, 5]
    assert [h["step"] for h in res.history] == [1, 2, 3, 4, 5]
    assert [h["size"] for h in res.history] == [4, 8, 8, 16, 16]
    assert [s for s, _ in res.snapshots] == [1, 2, 3, 4, 5]
    assert [tuple(img.shape[-2:]) for _, img in res.snapshots] == sizes
    # controls' weights act at run step 4 on: total = 1.0 * tv there, not before
    for h in res.history:
        assert (h["total"] == pytest.approx(h["tv"], rel=1e-5)) == (h["step"] >= 4), h
    secs = [h["seconds"] for h in res.history]
    assert secs == sorted(secs) and 0 < secs[0] and secs[-1] <= elapsed
    # the best step of the last stage, counted from the run's start
    last = res.history[3:]
    assert res.best_step == min(last, key=lambda h: h["total"])["step"]
    assert res.params["scales"] == [4, 8, 16] and res.params["steps"] == [1, 2, 2]
    assert res.params["init"] == "noise" and tuple(res.image.shape) == (1, 3, 8, 16)


def test_multiscale_a_stage_that_stops_ends_the_run(relu1_vgg):
    res = _three_stages(relu1_vgg, callback=lambda step, img, losses: step < 2)  # False at step 2: in stage 2
    assert [h["step"] for h in res.history] == [1, 2] and [h["size"] for h in res.history] == [4, 8]
    assert res.stopped == "callback" and tuple(res.image.shape) == (1, 3, 4, 8)


def test_multiscale_uses_the_given_network_or_builds_one_for_every_stage(relu1_vgg, monkeypatch):
    res = _three_stages(relu1_vgg)  # no callback: all 5 steps run
    assert res.stopped == "done" and [h["step"] for h in res.history] == [1, 2, 3, 4, 5]
    assert res.params["weights"] == "random (seed 5)"  # the given extractor's, not one built from the spec
    from nstlib import multiscale, stage
    built, loaded = [], []
    real_vgg, real_load = stage.VGGFeatures, multiscale.load_inputs

    def counting(*a, **k):
        built.append(k.get("device"))
        return real_vgg(*a, **k)

    def loading(spec, device):
        loaded.append((spec.size, device))
        return real_load(spec, device)

    monkeypatch.setattr(stage, "VGGFeatures", counting)
    monkeypatch.setattr(multiscale, "load_inputs", loading)
    with pytest.warns(nstlib.RandomWeightsWarning) as w:
        res = _three_stages(None, weights=None, device="cpu")
    cpu = torch.device("cpu")
    assert built == [cpu]  # one network for the three stages, on the spec's device
    assert loaded == [(4, cpu), (8, cpu), (16, cpu)]  # each stage's images at its side, on that device
    assert res.params["weights"] == "random (seed 0)"
    import sys
    if "mutmut.mutation.trampoline" not in sys.modules:  # mutmut's trampolines add a frame to every call
        # the warning points at the line that called nstlib.run (in _three_stages), as a single-scale run's does
        assert [r.filename for r in w if r.category is nstlib.RandomWeightsWarning] == [__file__]
