"""Kill tests for vgg's mutants (a file of their own: ``tools/mutation.py`` runs it for vgg only, since
the networks it builds would slow every other module's mutants). Expected values by hand, from the
normalization's definition, or published constants (ImageNet mean/std).
"""
from __future__ import annotations

import warnings

import pytest
import torch

import nstlib

pytestmark = pytest.mark.usefixtures("one_thread")


def _noise(h, w, lo=0.3, hi=0.7, seed=0):
    g = torch.Generator().manual_seed(seed)
    return lo + (hi - lo) * torch.rand(1, 3, h, w, generator=g)


# ---------------------------------------------------------------- vgg
def test_vgg_layer_checks_and_min_side_by_hand():
    from nstlib.vgg import check_layers, min_side
    assert check_layers("relu1_1", "vgg16") == ["relu1_1"] and check_layers(("pool5", "conv1_1"), "vgg19") == \
        ["pool5", "conv1_1"]
    # one halving per pooling before the deepest tap
    sides = {"conv1_1": 1, "relu1_2": 1, "pool1": 2, "relu2_1": 2, "pool2": 4, "relu3_1": 4, "relu3_4": 4,
             "relu4_1": 8, "relu4_2": 8, "relu5_1": 16, "pool5": 32}
    for name, side in sides.items():
        assert min_side([name]) == side, name
    assert min_side(["relu1_1", "relu4_2"]) == 8 and min_side(["relu5_3"], "vgg16") == 16
    with pytest.raises(nstlib.LayerError, match=r"^unknown vgg16 layer 'x'; closest valid names: conv1_1, relu1_1, "
                                                r"conv1_2, relu1_2 \(all names: nstlib\.layer_names\('vgg16'\)\)$"):
        check_layers(["relu1_1", "x"], "vgg16")
    with pytest.raises(nstlib.LayerError, match=r"^unknown vgg19 layer 'relu4_9'; closest valid names: ") as err:
        check_layers("relu4_9", "vgg19")
    listed = str(err.value).split("names: ")[1].split(" (all")[0].split(", ")
    assert len(listed) == 4 and "relu4_1" in listed and set(listed) <= set(nstlib.layer_names("vgg19"))
    with pytest.raises(nstlib.LayerError, match=r"^no layers requested; name at least one, e\.g\. 'relu4_2'$"):
        check_layers([], "vgg19")


@pytest.fixture(scope="module")
def conv_vgg() -> nstlib.VGGFeatures:
    return nstlib.VGGFeatures(layers=["conv1_1", "relu1_1", "relu1_2"], weights=None, device="cpu", seed=3)


def test_vgg_forward_taps_errors_and_repr(conv_vgg):
    img = _noise(4, 4)
    out = conv_vgg(img)
    assert sorted(out) == ["conv1_1", "relu1_1", "relu1_2"]
    # relu1_1 = max(conv1_1, 0) (the conv tap kept before the ReLU); conv1_1 by hand from its weights
    mean, std = torch.tensor([0.485, 0.456, 0.406]), torch.tensor([0.229, 0.224, 0.225])  # ImageNet's
    x = (img - mean.view(1, 3, 1, 1)) / std.view(1, 3, 1, 1)
    conv = conv_vgg.body.conv1_1
    assert torch.allclose(out["conv1_1"], torch.nn.functional.conv2d(x, conv.weight, conv.bias, padding=1), atol=1e-5)
    assert float(out["conv1_1"].min()) < 0 and torch.equal(out["relu1_1"], out["conv1_1"].clamp_min(0))
    only = conv_vgg(img, ["relu1_1"])
    assert list(only) == ["relu1_1"] and torch.equal(only["relu1_1"], out["relu1_1"])
    assert conv_vgg.min_size() == 1 and conv_vgg.device == torch.device("cpu")
    assert conv_vgg.layers_in_body == ["conv1_1", "relu1_1", "conv1_2", "relu1_2"]
    assert conv_vgg.extra_repr() == ("arch=vgg19, pooling=max, layers=['conv1_1', 'relu1_1', 'relu1_2'], "
                                     "weights=random (seed 3)")
    with pytest.raises(nstlib.LayerError, match=r"^layer\(s\) \['pool1', 'relu2_1'\] are deeper than this "
                                                r"extractor, which stops at relu1_2; build it with those layers$"):
        conv_vgg(img, ["relu2_1", "pool1", "relu1_1"])
    for bad in (torch.zeros(1, 1, 4, 4), torch.zeros(3, 4, 4)):
        with pytest.raises(nstlib.ImageError, match=r"^the extractor takes images of shape \[B, 3, H, W\], got "
                                                    + str(tuple(bad.shape)).replace("(", r"\(").replace(")", r"\)")
                                                    + "$"):
            conv_vgg(bad)


def test_vgg_random_weights_sources_biases_and_memory_format(monkeypatch):
    ext = nstlib.VGGFeatures(layers=["relu1_1"], weights=None, device="cpu", seed=2, channels_last=False)
    assert ext.weights_source == "random (seed 2)" and ext.pretrained is False and ext.announced is False
    assert ext.body.conv1_1.bias.eq(0).all()  # He init zeroes the bias; the rescaling keeps it 0
    assert ext.body.conv1_1.weight.is_contiguous() and not ext.channels_last
    ext = nstlib.VGGFeatures(layers=["relu1_1"], weights=None, device="cpu", channels_last=True)
    assert ext.channels_last and ext.body.conv1_1.weight.is_contiguous(memory_format=torch.channels_last)
    assert nstlib.VGGFeatures(layers=["relu1_1"], weights=None, device="cpu").channels_last  # auto: on for the CPU
    monkeypatch.setenv("NSTLIB_OFFLINE", "1")
    monkeypatch.delenv("NSTLIB_WEIGHTS", raising=False)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ext = nstlib.VGGFeatures(layers=["relu1_1"], device="cpu")  # weights="imagenet", the default
    if not ext.pretrained:  # no ImageNet weights in torch's cache: the offline fallback
        assert ext.weights_source == "random (seed 0, offline fallback)"


def test_vgg_too_small_images_and_the_random_weights_warning():
    import linecache
    import sys

    from nstlib.vgg import warn_if_random
    ext = nstlib.VGGFeatures(layers=["relu2_1"], weights=None, device="cpu", seed=4)
    with pytest.raises(nstlib.ImageError, match=r"^the image for layer\(s\) \['relu2_1'\] is \(1, 4\) px: too small "
                                                r"for the layers in use, which need at least 2 px on each side "
                                                r"\(one halving per pooling before the deepest layer\); use a larger "
                                                r"size$"):
        ext(torch.zeros(1, 3, 1, 4))
    assert tuple(ext(torch.zeros(1, 3, 2, 2))["relu2_1"].shape) == (1, 128, 1, 1)

    def caller():
        warn_if_random(ext)  # stacklevel 3: the warning points at the line that called caller()

    with pytest.warns(nstlib.RandomWeightsWarning, match=r"^the VGG network has random \(seed 4\) weights: this "
                                                         r"image shows the algorithm running, not a real style "
                                                         r"transfer$") as w:
        caller()  # here
    if "mutmut.mutation.trampoline" not in sys.modules:  # mutmut's trampolines add a frame to every call
        assert linecache.getline(w[0].filename, w[0].lineno).strip() == "caller()  # here"
    ext.announced = True
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        warn_if_random(ext)  # announced: quiet


def test_vgg_calibration_images_and_the_normalized_random_init(monkeypatch):
    import importlib
    examples = importlib.import_module("nstlib.examples")  # the module (nstlib.examples is also a function)
    from nstlib.vgg import IMAGENET_MEAN, IMAGENET_STD, _calibration_images
    photos = _calibration_images(0)
    assert tuple(photos.shape) == (8, 3, 96, 96) and 0 <= float(photos.min()) and float(photos.max()) <= 1
    # no bundled images: seeded 1/f noise, each image stretched to [0, 1] exactly
    monkeypatch.setattr(examples, "example_path", lambda name: None)
    a, b, c = _calibration_images(0, 24), _calibration_images(0, 24), _calibration_images(1, 24)
    assert tuple(a.shape) == (8, 3, 24, 24) and torch.equal(a, b) and not torch.allclose(a, c)
    assert a.amin(dim=(1, 2, 3)).tolist() == [0.0] * 8 and a.amax(dim=(1, 2, 3)).tolist() == pytest.approx([1.0] * 8)
    # image-like: octaves from 3 px up, so neighbouring pixels are correlated (white noise: about 0)
    d = a - a.mean(dim=(2, 3), keepdim=True)
    corr = (d[..., 1:] * d[..., :-1]).mean() / (d ** 2).mean()
    assert float(corr) > 0.2  # 0.36 here; seeded white noise of that size: 0.01
    monkeypatch.undo()
    # every channel's mean ReLU activation on the calibration images is 1, except channels below half
    # the layer's median, which are scaled as if at half the median (so below 1): the median is 1
    ext = nstlib.VGGFeatures(layers=["relu1_2"], weights=None, device="cpu", seed=0, channels_last=False)
    x = (photos - torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1)) / torch.tensor(IMAGENET_STD).view(1, 3, 1, 1)
    for name in ("conv1_1", "conv1_2"):
        conv = getattr(ext.body, name)
        act = torch.relu(conv(x))
        mean = act.mean(dim=(0, 2, 3))
        assert float(mean.max()) == pytest.approx(1.0, abs=1e-4)
        assert float(mean.median()) == pytest.approx(1.0, abs=1e-4)
        assert int((mean - 1).abs().lt(1e-4).sum()) >= 33  # at least the channels at or above the median
        x = act


def test_vgg_reduced_precision_gives_float32_features_and_the_float32_gradient():
    outs = {}
    for precision in ("fp32", "bf16", "fp16"):
        ext = nstlib.VGGFeatures(layers=["relu1_1"], weights=None, device="cpu", precision=precision)
        x = _noise(4, 4).requires_grad_(True)
        f = ext(x)["relu1_1"]
        f.mean().backward()  # a loss-sized gradient (a sum of ones, times fp16's loss scale, would overflow)
        outs[precision] = (f.detach(), x.grad)
    f32, g32 = outs["fp32"]
    for precision in ("bf16", "fp16"):
        f, g = outs[precision]
        assert f.dtype == torch.float32 and not torch.equal(f, f32)  # computed in reduced precision, returned in fp32
        assert torch.allclose(f, f32, rtol=0.05, atol=0.05)
        # the same gradient up to rounding (fp16: the loss scale of 2^k is undone)
        assert float((g - g32).norm() / g32.norm()) < 0.1


def test_vgg_bad_arch_and_pooling_word_for_word():
    with pytest.raises(ValueError, match=r"^unknown arch 'vgg11'; choose one of 'vgg16', 'vgg19'$"):
        nstlib.VGGFeatures("vgg11", ["relu1_1"], weights=None)
    with pytest.raises(ValueError, match=r"^unknown pooling 'min'; choose one of 'max', 'avg'$"):
        nstlib.VGGFeatures(layers=["relu1_1"], pooling="min", weights=None)


def test_vgg_names_close_matches_precision_auto_and_mismatched_weights():
    from torchvision.models import vgg as tv

    from nstlib.vgg import check_layers
    names = nstlib.layer_names()  # vgg19: 16 convolutions (conv and relu taps) and 5 poolings
    assert len(names) == 2 * 16 + 5 and names[-1] == "pool5" and "relu5_4" in names
    with pytest.raises(ValueError, match=r"^unknown arch 'vgg11'; choose one of 'vgg16', 'vgg19'$"):
        nstlib.layer_names("vgg11")
    # 'xlu4x' is only 0.5 like 'relu4_*' (difflib's ratio 2 * 3 / 12): listed with a cutoff of 0.4
    with pytest.raises(nstlib.LayerError, match=r"^unknown vgg19 layer 'xlu4x'; closest valid names: relu"):
        check_layers(["xlu4x"], "vgg19")
    assert nstlib.VGGFeatures(layers=["relu1_1"], weights=None, device="cpu", precision="auto").amp_dtype is None
    state = tv.make_layers(tv.cfgs["E"]).state_dict()
    state["0.weight"] = torch.zeros(64, 3, 5, 5)
    with pytest.raises(nstlib.WeightsError, match=r"^weights from state dict do not fit vgg19: conv1_1 needs "
                                                  r"\(64, 3, 3, 3\), the file has \(64, 3, 5, 5\) at features\.0; use "
                                                  r"a torchvision vgg19 state dict$"):
        nstlib.VGGFeatures(layers=["relu1_1"], weights=state, device="cpu")
