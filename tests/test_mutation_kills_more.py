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
        import linecache
        at = [(r.filename, linecache.getline(r.filename, r.lineno).strip()) for r in w
              if r.category is nstlib.RandomWeightsWarning]
        assert len(at) == 1 and at[0][0] == __file__ and at[0][1].startswith("return nstlib.run("), at


# ---------------------------------------------------------------- objective: a fake extractor, by hand
class _Identity:
    """An extractor whose every layer is the image itself ([B, 3, H, W] features), on ``device``."""

    def __init__(self, device: str = "cpu") -> None:
        self.device = torch.device(device)

    def __call__(self, img: torch.Tensor, layers) -> dict:
        return {n: img for n in layers}


def test_objective_a_term_without_weight_or_image_is_left_out():
    ones, zeros = torch.ones(1, 3, 2, 2), torch.zeros(1, 3, 2, 2)
    # content given, content weight 0 (TV only): the content term is neither computed nor reported.
    # Computed, it would be mean((1 - 0)^2) = 1.
    obj = nstlib.Objective(_Identity(), zeros, None, ["a"], [], 0.0, 0.0, 1.0)  # type: ignore[arg-type]
    assert float(obj(ones)["content"]) == 0.0
    # a content weight but no content image (None): no content term (and no error)
    obj = nstlib.Objective(_Identity(), None, None, ["a"], [], 1.0, 0.0, 1.0)  # type: ignore[arg-type]
    assert float(obj(ones)["content"]) == 0.0 and float(obj(ones)["total"]) == 0.0  # TV of a flat image
    # style given, style weight 0: no style term. Computed: G(ones) = 4/(3 * 4) = 1/3 in all 9 entries,
    # G(zeros) = 0: mean of squares 1/9.
    obj = nstlib.Objective(_Identity(), None, zeros, [], ["a"], 0.0, 0.0, 1.0)  # type: ignore[arg-type]
    assert float(obj(ones)["style"]) == 0.0
    # a style weight but no style image: no style term
    obj = nstlib.Objective(_Identity(), None, None, [], ["a"], 0.0, 1.0, 1.0)  # type: ignore[arg-type]
    assert float(obj(ones)["style"]) == 0.0
    # switched on later, the style term gets its targets then: 1/9 as worked out above
    obj = nstlib.Objective(_Identity(), None, zeros, [], ["a"], 0.0, 0.0, 1.0)  # type: ignore[arg-type]
    obj.set_weights(style_weight=2.0)
    assert float(obj(ones)["style"]) == pytest.approx(1 / 9) and float(obj(ones)["total"]) == pytest.approx(2 / 9)


def test_objective_per_image_weights_stay_float32():
    import numpy as np
    # float64 weights (a numpy array) do not turn the losses into float64 (MPS has none)
    obj = nstlib.Objective(_Identity(), None, None, [], [], 0.0, 0.0, np.array([1.0, 2.0]))  # type: ignore[arg-type]
    img = torch.zeros(2, 3, 2, 2)
    img[1, :, :, 1] = 1.0  # image 1: a ramp 0, 1 along the width: TV 0.5 (as in test_mutation_kills); image 0 flat
    out = obj(img)
    assert out["per_image"].dtype == torch.float32 and out["per_image"].tolist() == [0.0, 2.0 * 0.5]


def test_objective_per_image_weights_refuse_a_mask():
    with pytest.raises(ValueError, match=r"^per-image weights do not support a mask; run masked transfers one at "
                                         r"a time$"):
        nstlib.Objective(_Identity(), None, torch.zeros(1, 3, 1, 2), [], ["a"], 0.0, [1.0, 2.0], 0.0,  # type: ignore[arg-type]
                         mask=torch.ones(1, 1, 1, 2))


# ---------------------------------------------------------------- transfer: options reach the run's spec
def test_transfer_stylize_passes_every_option_to_the_spec(relu1_vgg):
    content, mask = _noise(4, 8, seed=7), torch.ones(4, 8)
    res = nstlib.stylize(content, [_noise(8, 8, seed=6), _noise(8, 8, seed=8)], content_weight=2.0, style_weight=3.0,
                         tv_weight=0.5, content_layers="relu1_1", style_layers=["relu1_1"],
                         style_layer_weights={"relu1_1": 0.5}, optimizer="adam", steps=2, lr=0.01, init="noise",
                         weights=None, extractor=relu1_vgg, size=8, seed=7, every=1, device="cpu",
                         preserve_color="histogram", style_blend=[1, 3], style_scale=0.5, mask=mask,
                         style_outside=_noise(8, 8, seed=9), checkpoint=True, lbfgs_history=7)
    s = res.spec
    assert (s.content_weight, s.style_weight, s.tv_weight) == (2.0, 3.0, 0.5)
    assert s.content_layers == ("relu1_1",) and s.style_layers == ("relu1_1",)
    assert dict(s.style_layer_weights) == {"relu1_1": 0.5}
    assert (s.optimizer, s.steps, s.lr, s.init, s.weights, s.size, s.seed, s.every) == \
        ("adam", 2, 0.01, "noise", None, 8, 7, 1)
    assert s.device == torch.device("cpu") and s.preserve_color == "histogram"
    assert s.style_blend == (0.25, 0.75) and s.style_scale == 0.5 and s.mask is mask
    assert s.style_outside is not None and s.checkpoint is True and s.lbfgs_history == 7
    assert len(res.history) == 2 and tuple(res.image.shape) == (1, 3, 4, 8)
    res = nstlib.stylize(content, _noise(8, 8, seed=6), content_layers="relu1_1", style_layers="relu1_1",
                         extractor=relu1_vgg, optimizer="adam", steps=1, size=8, scales=[4, 8],
                         tile="auto", max_memory=123456789)
    assert (res.spec.scales, res.spec.tile, res.spec.max_memory) == ((4, 8), "auto", 123456789)
    assert [h["size"] for h in res.history] == [4, 8]


def test_transfer_stylize_defaults_and_the_extractors_settings():
    # a VGG16 with average pooling: stylize takes arch, pooling, precision and device from it, so
    # a device this machine lacks (cuda:3) is overridden rather than refused
    ext = nstlib.VGGFeatures("vgg16", ["relu1_1"], pooling="avg", weights=None, device="cpu")
    res = nstlib.stylize(_noise(4, 8, seed=7), _noise(8, 8, seed=6), content_layers="relu1_1",
                         style_layers="relu1_1", extractor=ext, steps=1, size=8, device="cuda:3")
    s = res.spec
    assert (s.arch, s.pooling, s.precision, s.device) == ("vgg16", "avg", "fp32", torch.device("cpu"))
    # docs/defaults.md: alpha 1, beta 1e4, gamma 44; L-BFGS from the content image, seed 0
    assert (s.content_weight, s.style_weight, s.tv_weight) == (1.0, 1e4, 44.0)
    assert (s.optimizer, s.init, s.seed, s.style_scale, s.weights) == ("lbfgs", "content", 0, 1.0, "imagenet")
    assert (s.checkpoint, s.lbfgs_history, s.preserve_color, s.style_blend, s.scales, s.tile, s.max_memory) == \
        (False, None, None, None, None, None, None)
    assert s.style_layer_weights is None and s.mask is None and s.style_outside is None and s.every is None
    # no extractor: stylize builds VGG19 with max pooling in float32 (a small one: relu1_1 only)
    s = nstlib.stylize(_noise(4, 8, seed=7), _noise(8, 8, seed=6), content_layers="relu1_1",
                       style_layers="relu1_1", weights=None, steps=1, size=8).spec
    assert (s.arch, s.pooling, s.precision) == ("vgg19", "max", "fp32")
    # ... or the network asked for, and live weights reach the run (polled at steps 1 and 2)
    polled = []
    res = nstlib.stylize(_noise(4, 8, seed=7), _noise(8, 8, seed=6), content_layers="relu1_1",
                         style_layers="relu1_1", weights=None, steps=2, size=8, optimizer="adam", arch="vgg16",
                         pooling="avg", precision="bf16", controls=lambda step: polled.append(step))
    assert (res.spec.arch, res.spec.pooling, res.spec.precision, polled) == ("vgg16", "avg", "bf16", [1, 2])


def test_transfer_run_takes_the_extractors_network_and_warns_at_the_callers_line(monkeypatch):
    import linecache
    import sys

    from nstlib import transfer
    ext = nstlib.VGGFeatures("vgg16", ["relu1_1"], pooling="avg", weights=None, device="cpu")
    spec = nstlib.Transfer(_noise(4, 8, seed=7), _noise(8, 8, seed=6), content_layers="relu1_1",
                           style_layers="relu1_1", steps=1, size=8, optimizer="adam")
    loaded = []
    real = transfer.load_inputs
    monkeypatch.setattr(transfer, "load_inputs", lambda sp, device: loaded.append(device) or real(sp, device))
    with pytest.warns(nstlib.RandomWeightsWarning) as w:
        res = nstlib.run(spec, extractor=ext)  # the warning points here
    assert (res.spec.arch, res.spec.pooling, res.params["weights"]) == ("vgg16", "avg", "random (seed 0)")
    assert loaded == [torch.device("cpu")]
    if "mutmut.mutation.trampoline" not in sys.modules:  # mutmut's trampolines add a frame to every call
        at = [(r.filename, linecache.getline(r.filename, r.lineno).strip()) for r in w
              if r.category is nstlib.RandomWeightsWarning]
        assert len(at) == 1 and at[0][0] == __file__ and at[0][1].startswith("res = nstlib.run(spec"), at


def test_transfer_reconstruct_content_or_style_alone(relu1_vgg):
    target = _noise(4, 8, seed=7)
    kw = dict(extractor=relu1_vgg, size=8, seed=3, steps=2)
    s = nstlib.reconstruct(target, "relu1_1", **kw).spec  # kind="content", L-BFGS from noise by default
    assert (s.content_weight, s.style_weight, s.tv_weight, s.style) == (1.0, 0.0, 0.0, None)
    assert (s.content_layers, s.style_layers, s.optimizer, s.init, s.seed, s.size, s.steps) == \
        (("relu1_1",), (), "lbfgs", "noise", 3, 8, 2)
    s = nstlib.reconstruct(target, "relu1_1", optimizer="adam", lr=0.03, **kw).spec
    assert (s.optimizer, s.lr) == ("adam", 0.03)
    res = nstlib.reconstruct(target, ["relu1_1"], "style", optimizer="adam", lr=0.02, init="content",
                             style_layer_weights={"relu1_1": 2.0}, **kw)
    s = res.spec
    assert (s.content_weight, s.style_weight, s.tv_weight, s.style is target) == (0.0, 1e4, 0.0, True)
    assert (s.content_layers, s.style_layers, s.optimizer, s.lr, s.init) == ((), ("relu1_1",), "adam", 0.02, "content")
    assert dict(s.style_layer_weights) == {"relu1_1": 2.0}
    assert (s.seed, s.size, s.steps, res.params["weights"]) == (3, 8, 2, "random (seed 5)")
    with pytest.raises(ValueError, match=r"^unknown kind 'texture'; choose 'content' or 'style'$"):
        nstlib.reconstruct(target, "relu1_1", "texture", **kw)


def _pair(p0, p1) -> torch.Tensor:
    """[1, 3, 1, 2]: two pixels."""
    return torch.tensor([p0, p1], dtype=torch.float32).T.reshape(1, 3, 1, 2)


def test_objective_masked_style_uses_the_layer_weights_and_switches_off():
    img = _pair((1.0, 0.0, 0.0), (0.0, 1.0, 0.0))
    zero_style, mask = torch.zeros(1, 3, 1, 2), torch.tensor([1.0, 0.0]).reshape(1, 1, 1, 2)
    # as in test_mutation_kills_core: inside the mask 1/81 per layer, outside (1 - mask) 1/81 too;
    # layer "a" weighted 2, layer "b" 1 (the default): 2/81 + 1/81 inside, the same outside
    obj = nstlib.Objective(_Identity(), None, zero_style, [], ["a", "b"], 0.0, 1.0, 0.0, {"a": 2.0},  # type: ignore[arg-type]
                           mask=mask)
    assert float(obj(img)["style"]) == pytest.approx(3 / 81)
    obj = nstlib.Objective(_Identity(), None, zero_style, [], ["a", "b"], 0.0, 1.0, 0.0, {"a": 2.0},  # type: ignore[arg-type]
                           mask=mask, style_outside=zero_style)
    assert float(obj(img)["style"]) == pytest.approx(6 / 81)
    # the style weight set to 0 later: no style term (its targets kept, not used)
    obj.set_weights(content_weight=1.0, style_weight=0.0)
    assert float(obj(img)["style"]) == 0.0 and float(obj(img)["total"]) == 0.0  # no content image either


def test_objective_per_image_terms_are_sums_over_the_batch():
    # per-image weights [1, 2] on TV only, no content or style: per image [alpha_b * 0 + ... + gamma_b * tv_b]
    img = torch.zeros(2, 3, 2, 2)
    img[0, :, :, 1] = 1.0  # a step of 1 along the width: TV 0.5 * (0 + 1) = 0.5
    img[1, :, 1, :] = 2.0  # a step of 2 along the height: TV 0.5 * (2 + 0) = 1, weighted 2
    out = nstlib.Objective(_Identity(), None, None, [], [], 0.0, 0.0, [1.0, 2.0])(img)  # type: ignore[arg-type]
    assert sorted(out) == ["content", "per_image", "style", "total", "tv"]
    assert out["per_image"].tolist() == [0.5, 2.0] and float(out["total"]) == 2.5
    assert float(out["tv"]) == 1.5 and float(out["content"]) == 0.0 and float(out["style"]) == 0.0
    # content term per image against a shared target of zeros: half the values 1 (image 0) or 2 (image 1),
    # mean squares 1/2 and 4/2
    obj = nstlib.Objective(_Identity(), torch.zeros(1, 3, 2, 2), None, ["a"], [], [1.0, 1.0], 0.0, 0.0)  # type: ignore[arg-type]
    out = obj(img)
    assert out["per_image"].tolist() == [0.5, 2.0] and float(out["content"]) == 2.5
    # weights per image but no term in use at all: still one total per image
    out = nstlib.Objective(_Identity(), None, None, [], [], [1.0, 1.0], 0.0, 0.0)(img)  # type: ignore[arg-type]
    assert out["per_image"].tolist() == [0.0, 0.0]


# ---------------------------------------------------------------- image
def test_image_check_size_by_hand():
    import numpy as np

    from nstlib.image import check_size
    assert check_size(None) is None and check_size(1) == 1 and check_size((1, 1)) == (1, 1)
    got = check_size(np.int64(7))
    assert got == 7 and type(got) is int
    assert check_size([3.0, 5]) == (3, 5)
    assert check_size(20000) == 20000 and check_size((20000, 20000)) == (20000, 20000)  # exactly 20000^2 px
    bad = {
        0: r"^size must be a positive int \(the longest side in px\) or \(H, W\), got 0$",
        20001: r"^size=20001 is larger than nstlib handles \(at most 20000 px on a side\); use a smaller size$",
        True: r"^size must be an int \(longest side\) or \(H, W\), got True$",
        "12": r"^size must be an int \(longest side\) or \(H, W\), got '12'$",
        (1, 2, 3): r"^size must be an int \(longest side\) or \(H, W\), got \(1, 2, 3\)$",
        (1.5, 2): r"^size must be an int \(longest side\) or \(H, W\), got \(1\.5, 2\)$",
        (5,): r"^size must be an int \(longest side\) or \(H, W\), got \(5,\)$",
        (0, 5): r"^size must be positive, got \(0, 5\)$",
        (5, 0): r"^size must be positive, got \(5, 0\)$",
        (20000, 20001): r"^size=\(20000, 20001\) is larger than nstlib handles \(at most 400,000,000 pixels\); "
                        r"use a smaller size$",
        (40000, 20000): r"^size=\(40000, 20000\) is larger than nstlib handles",  # H * W, not W * W
    }
    for size, message in bad.items():
        with pytest.raises(ValueError, match=message):
            check_size(size)


def _pil_bilinear(img: torch.Tensor, h: int, w: int) -> torch.Tensor:
    """A second resize: PIL's antialiased bilinear filter on each channel (float mode "F")."""
    import numpy as np
    from PIL import Image
    chans = [np.asarray(Image.fromarray(c.numpy(), mode="F").resize((w, h), Image.BILINEAR)) for c in img[0]]
    return torch.from_numpy(np.stack(chans))[None]


def test_image_resize_by_hand_and_against_pil():
    img = _noise(6, 12, 0.0, 1.0, seed=11)
    # longest side 4: 6 x 12 -> 2 x 4; (3, 5) exactly; PIL's antialiased bilinear gives the same pixels
    for size, hw in ((4, (2, 4)), ((3, 5), (3, 5))):
        out = nstlib.resize(img, size)
        assert tuple(out.shape[-2:]) == hw
        assert torch.allclose(out, _pil_bilinear(img, *hw), atol=1e-5)
    # the same size: the tensor itself; no size: the tensor itself
    assert nstlib.resize(img, 12) is img and nstlib.resize(img, None) is img and nstlib.resize(img, (6, 12)) is img
    # a side that rounds to 0 is 1 px: 1 x 12 to longest side 4 -> 1 x 4 (round(1/3) = 0)
    assert tuple(nstlib.resize(_noise(1, 12), 4).shape[-2:]) == (1, 4)
    # 3 x 8 to 4: scale 0.5, 1.5 rounds to 2 (Python's round): 2 x 4
    assert tuple(nstlib.resize(_noise(3, 8), 4).shape[-2:]) == (2, 4)
    # values stay as they are: a flat 0.25 image resized up and down stays 0.25; 1.0 stays 1.0
    for v in (0.25, 1.0):
        flat = torch.full((1, 3, 4, 6), v)
        assert nstlib.resize(flat, 9).eq(v).all() and nstlib.resize(flat, 3).eq(v).all()
    with pytest.raises(ValueError, match=r"^size must be positive, got \(0, 2\)$"):
        nstlib.resize(img, (0, 2))


def _png_bytes(h: int = 2, w: int = 3) -> bytes:
    import io

    from PIL import Image
    buf = io.BytesIO()
    Image.new("RGB", (w, h), (255, 0, 0)).save(buf, format="PNG")
    return buf.getvalue()


def _png_header(w: int, h: int) -> bytes:
    """A PNG declaring w x h pixels, RGB 8 bit, with an empty IDAT chunk (Pillow reads the header only)."""
    import struct
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0))
            + chunk(b"IDAT", b"") + chunk(b"IEND", b""))


def test_image_sources_sizes_and_devices():
    import io
    png = _png_bytes()  # 2 x 3, pure red
    red = torch.tensor([1.0, 0.0, 0.0]).view(1, 3, 1, 1).expand(1, 3, 2, 3)
    for src in (png, bytearray(png), memoryview(png), io.BytesIO(png)):
        assert torch.equal(nstlib.load_image(src, device="cpu"), red), type(src)
    # size reaches every kind of source: longest side 6 -> 4 x 6, still red
    from PIL import Image
    for src in (png, Image.new("RGB", (3, 2), (255, 0, 0)), red.clone(), red[0].permute(1, 2, 0).numpy()):
        out = nstlib.load_image(src, size=6, device="cpu")
        assert tuple(out.shape) == (1, 3, 4, 6) and torch.allclose(out, red[..., :1, :1].expand(1, 3, 4, 6)), type(src)
    # the device asked for ("meta" is never the default)
    assert nstlib.load_image(png, device="meta").device.type == "meta"
    out = nstlib.example("starry_night", 8, device="meta")
    assert out.device.type == "meta" and max(out.shape[-2:]) == 8
    with pytest.raises(nstlib.ImageError, match=r"^cannot load an image from a float; pass a path, a URL, an example "
                                                r"name, bytes, a PIL image, a numpy array or a tensor$"):
        nstlib.load_image(3.5)  # type: ignore[arg-type]


def test_image_file_objects_and_paths_name_what_is_wrong(tmp_path):
    import io
    import re
    path = tmp_path / "red.png"
    path.write_bytes(_png_bytes())
    f = open(path, "rb")
    f.close()
    with pytest.raises(nstlib.ImageError, match=r"^could not read " + re.escape(repr(str(path))) + r" \(.*closed "
                                                r"file\.?\); open the file again in binary mode \('rb'\)$"):
        nstlib.load_image(f)
    with pytest.raises(nstlib.ImageError, match=r"^the StringIO input gave str, not bytes; open the file in binary "
                                                r"mode \('rb'\)$"):
        nstlib.load_image(io.StringIO("abc"))  # type: ignore[arg-type]
    with pytest.raises(nstlib.ImageError, match=r"^the bytes input is empty \(0 bytes\); upload or read the image file "
                                                r"again$"):
        nstlib.load_image(b"")
    empty = tmp_path / "empty.png"
    empty.write_bytes(b"")
    with open(empty, "rb") as g, pytest.raises(nstlib.ImageError, match=r"^" + re.escape(repr(str(empty)))
                                               + r" is empty \(0 bytes\)"):
        nstlib.load_image(g)
    with pytest.raises(nstlib.ImageError, match=r"^image file " + re.escape(repr(str(empty))) + r" is empty \(0 "
                                                r"bytes\); re-copy or re-download it$"):
        nstlib.load_image(empty)
    with pytest.raises(nstlib.ImageError, match=r"^" + re.escape(repr(str(tmp_path))) + r" is a folder, not an image "
                                                r"file; pass the path of a \.jpg or \.png file inside it$"):
        nstlib.load_image(tmp_path)
    with pytest.raises(nstlib.ImageError, match=r"^'~nosuchuser_zz/a\.png' is not a usable file path \(.+\); check "
                                                r"the path$"):
        nstlib.load_image("~nosuchuser_zz/a.png")  # no such user's home
    assert nstlib.load_image(str(path), device="cpu").shape == (1, 3, 2, 3)  # a str path, as a Path


def test_image_missing_files_and_examples_suggest_names():
    with pytest.raises(nstlib.ImageError, match=r"^image file 'x/starry_night\.jpg' does not exist; check the path "
                                                r"\(the bundled example of that name is 'starry_night', without "
                                                r"folder or suffix\)$"):
        nstlib.load_image("x/starry_night.jpg")
    with pytest.raises(nstlib.ImageError, match=r"^image file 'starry_nite' does not exist; check the path, or use a "
                                                r"bundled example such as 'starry_night'"):
        nstlib.load_image("starry_nite")
    with pytest.raises(nstlib.ImageError, match=r"^there is no bundled image 'starry_nite'; try 'starry_night'.* "
                                                r"\(nstlib\.examples\(\) lists them all\)$"):
        nstlib.example("starry_nite")


def test_image_decode_errors_word_for_word(monkeypatch):
    from PIL import Image
    formats = "JPEG, MPO, PNG, GIF, BMP, DIB, TIFF, WEBP, PPM, TGA, ICO"
    with pytest.raises(nstlib.ImageError, match=r"^the bytes input is not an image nstlib reads \(it decodes only "
                       + formats + r"; is it really a \.jpg/\.png\? EPS/PDF files and iPhone \.heic photos must be "
                       r"exported as JPEG\); open it in an image viewer and re-save it as PNG or JPEG$"):
        nstlib.load_image(b"not an image at all")
    with pytest.raises(nstlib.ImageError, match=r"^image the bytes input could not be decoded \(OSError: .{1,100}\); "
                                                r"the file is probably truncated or damaged: re-download or re-export "
                                                r"it$"):
        nstlib.load_image(b"\x89PNG\r\n\x1a\n" + b"0" * 50)  # a PNG signature, then garbage
    # 15000 x 15000 = 225 Mpx: over twice Pillow's bomb limit (about 89 Mpx)
    with pytest.raises(nstlib.ImageError, match=r"^image the bytes input declares an enormous size \(a decompression "
                                                r"bomb\?\); refusing to decode it\. Use a normal photo or shrink it "
                                                r"first$"):
        nstlib.load_image(_png_header(15000, 15000))
    # 10000 x 10000 = 100 Mpx: only Pillow's warning, which nstlib turns into the same error
    with pytest.raises(nstlib.ImageError, match=r"declares an enormous size"):
        nstlib.load_image(_png_header(10000, 10000))
    # Pillow's limit off: nstlib's own (20000^2 px) still refuses 20001 x 20000 before decoding
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", None)
    with pytest.raises(nstlib.ImageError, match=r"^image the bytes input is 20001x20000 pixels, too large to load "
                                                r"safely; shrink it with an image editor first$"):
        nstlib.load_image(_png_header(20001, 20000))


def _jpeg_bytes(fmt: str = "JPEG", side: int = 64) -> bytes:
    import io

    import numpy as np
    from PIL import Image
    im = Image.fromarray((np.random.RandomState(0).rand(side, side, 3) * 255).astype("uint8"))
    buf = io.BytesIO()
    if fmt == "MPO":  # a two-frame MPO (a camera's multi-picture JPEG)
        im.save(buf, format="MPO", save_all=True, append_images=[im.copy()])
    else:
        im.save(buf, format=fmt)
    return buf.getvalue()


@pytest.mark.parametrize("fmt", ["JPEG", "MPO", "PNG"])
def test_image_a_large_jpeg_is_decoded_at_reduced_scale(fmt, monkeypatch, tmp_path):
    # size 8: Pillow's JPEG draft mode decodes the 64 x 64 image at 1/8 scale, 8 x 8 (the smallest DCT
    # scale that still covers the (8, 8) box); other formats reach pil_to_array at full size
    from nstlib import image
    seen = []
    real = image.pil_to_array

    def spy(pil, name, size):
        seen.append((pil.format, pil.size))
        return real(pil, name, size)

    monkeypatch.setattr(image, "pil_to_array", spy)
    data = _jpeg_bytes(fmt)
    out = nstlib.load_image(data, size=8, device="cpu")
    assert tuple(out.shape) == (1, 3, 8, 8)
    assert seen == [(fmt, (8, 8) if fmt != "PNG" else (64, 64))]
    seen.clear()
    path = tmp_path / "a.img"
    path.write_bytes(data)
    nstlib.load_image(path, size=8, device="cpu")  # from a file as from bytes
    nstlib.load_image(data, device="cpu")  # no size: full scale
    assert seen == [(fmt, (8, 8) if fmt != "PNG" else (64, 64)), (fmt, (64, 64))]


def test_image_formats_outside_the_list_are_refused_and_the_pixel_limit_is_inclusive(monkeypatch):
    from nstlib import image
    # PCX: Pillow decodes it, nstlib does not (only FORMATS)
    with pytest.raises(nstlib.ImageError, match=r"^the bytes input is not an image nstlib reads \(it decodes "
                                                r"only JPEG"):
        nstlib.load_image(_jpeg_bytes("PCX", 4))
    monkeypatch.setattr(image, "MAX_PIXELS", 6)
    assert tuple(nstlib.load_image(_png_bytes(2, 3), device="cpu").shape) == (1, 3, 2, 3)  # 6 px: at the limit
    with pytest.raises(nstlib.ImageError, match=r"^image the bytes input is 4x2 pixels, too large to load safely"):
        nstlib.load_image(_png_bytes(2, 4))


@pytest.mark.parametrize("error, message", [
    (PermissionError, r"^image file {name} cannot be read \(permission denied\); copy it to a folder of yours or "
                      r"fix its permissions$"),
    (MemoryError, r"^image {name} is too large to decode in memory; pass a smaller size= or shrink it with an image "
                  r"editor first$"),
])
def test_image_permission_and_memory_errors_say_what_to_do(error, message, tmp_path, monkeypatch):
    import re

    from PIL import Image
    path = tmp_path / "red.png"
    path.write_bytes(_png_bytes())

    def refuse(*a, **k):
        raise error("refused")

    monkeypatch.setattr(Image, "open", refuse)
    with pytest.raises(nstlib.ImageError, match=message.replace("{name}", re.escape(repr(str(path))))):
        nstlib.load_image(path)


def test_image_resize_clamps_to_the_unit_range():
    # values outside [0, 1] (a tensor from elsewhere) come out clamped: 1.5 -> 1, -0.5 -> 0
    assert nstlib.resize(torch.full((1, 3, 4, 6), 1.5), 3).eq(1.0).all()
    assert nstlib.resize(torch.full((1, 3, 4, 6), -0.5), 9).eq(0.0).all()


def test_image_sources_name_themselves_in_pixel_errors(tmp_path):
    import io
    import re

    import numpy as np
    from PIL import Image
    with pytest.raises(nstlib.ImageError, match=r"^the float64 array has float values in \[2, 2\]; float images "
                                                r"must lie in \[0, 1\]"):
        nstlib.load_image(np.full((2, 2), 2.0))
    hot = Image.fromarray(np.full((2, 2), 4e4, np.float32), mode="F")  # a float image far outside [0, 1]
    with pytest.raises(nstlib.ImageError, match=r"^image the PIL image holds float pixels in \[4e\+04, 4e\+04\]; "):
        nstlib.load_image(hot)
    buf = io.BytesIO()
    hot.save(buf, format="TIFF")
    path = tmp_path / "hot.tif"
    path.write_bytes(buf.getvalue())
    with pytest.raises(nstlib.ImageError, match=r"^image " + re.escape(repr(str(path))) + r" holds float pixels in "):
        nstlib.load_image(path)
    damaged = tmp_path / "damaged.png"
    damaged.write_bytes(b"\x89PNG\r\n\x1a\n" + b"0" * 50)
    with pytest.raises(nstlib.ImageError, match=r"^image " + re.escape(repr(str(damaged))) + r" could not be "
                                                r"decoded \(OSError: "):
        nstlib.load_image(damaged)


def test_image_decoder_errors_are_quoted_up_to_100_characters(monkeypatch):
    from PIL import Image

    def broken(*a, **k):
        raise ValueError("x" * 150)

    monkeypatch.setattr(Image, "open", broken)
    with pytest.raises(nstlib.ImageError, match=r"^image the bytes input could not be decoded "
                                                r"\(ValueError: x{100}\); "):
        nstlib.load_image(b"anything")


@pytest.mark.parametrize("kind", ["bytes", "path", "PIL"])
def test_image_a_large_image_is_box_reduced_before_resizing(kind, tmp_path):
    # 64 x 64 to longest side 8: first an integer box reduction to >= 2 x 8 = 16 px (factor 64 // 16 = 4),
    # then the antialiased bilinear resize 16 -> 8 (PIL's, on floats): not 64 -> 8 in one step
    import io

    import numpy as np
    from PIL import Image
    pil = Image.fromarray((np.random.RandomState(1).rand(64, 64, 3) * 255).astype("uint8"))
    buf = io.BytesIO()
    pil.save(buf, format="PNG")
    src = {"bytes": buf.getvalue(), "path": tmp_path / "a.png", "PIL": pil}[kind]
    if kind == "path":
        src.write_bytes(buf.getvalue())
    small = torch.from_numpy(np.asarray(pil.reduce(4), dtype=np.float32) / 255).permute(2, 0, 1)[None]
    want = _pil_bilinear(small, 8, 8)
    direct = _pil_bilinear(torch.from_numpy(np.asarray(pil, dtype=np.float32) / 255).permute(2, 0, 1)[None], 8, 8)
    assert float((want - direct).abs().max()) > 1e-3  # the two ways differ
    assert torch.allclose(nstlib.load_image(src, size=8, device="cpu"), want, atol=1e-5)
