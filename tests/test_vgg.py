"""VGGFeatures: every tap equals torchvision's own modules run by hand; frozen, cut, named, seeded."""
from __future__ import annotations

import copy

import pytest
import torch
import torchvision
from torch import nn

import nstlib
from nstlib import LayerError, NSTError, VGGFeatures, layer_names

pytestmark = pytest.mark.usefixtures("one_thread")

MEAN = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
STD = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)


def _torchvision_features(features: nn.Sequential, pooling: str) -> nn.Sequential:
    """A copy of torchvision's ``vgg.features`` with out-of-place ReLUs (and avg pools if asked)."""
    feats = copy.deepcopy(features)
    for i, m in enumerate(feats):
        if isinstance(m, nn.ReLU):
            feats[i] = nn.ReLU(inplace=False)
        elif isinstance(m, nn.MaxPool2d) and pooling == "avg":
            feats[i] = nn.AvgPool2d(kernel_size=2, stride=2)
    return feats.eval()


def _assert_close(got: torch.Tensor, want: torch.Tensor, name: str) -> None:
    assert got.shape == want.shape, name
    scale = float(want.abs().max()) + 1e-12
    assert torch.allclose(got, want, rtol=1e-4, atol=1e-5 * scale), (name, float((got - want).abs().max()), scale)


@pytest.mark.parametrize("arch", ["vgg19", "vgg16"])
@pytest.mark.parametrize("pooling", ["max", "avg"])
def test_every_tap_equals_torchvision_run_by_hand(arch, pooling, torchvision_vgg, features_file):
    names = layer_names(arch)
    ext = VGGFeatures(arch, names, pooling=pooling, weights=features_file(arch), device="cpu")
    assert ext.pretrained and "file" in ext.weights_source
    tv = _torchvision_features(torchvision_vgg(arch), pooling)
    with torch.device("meta"):  # the fixture's modules are exactly torchvision.models.<arch>().features
        assert str(getattr(torchvision.models, arch)(weights=None).features) == str(torchvision_vgg(arch))
    assert len(tv) == len(names)
    img = torch.rand(1, 3, 32, 48, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        ours = ext(img)
        assert set(ours) == set(names) and ext.layers_in_body == names
        x = (img - MEAN) / STD
        for i, name in enumerate(names):  # torchvision's modules one by one: features[i] after features[i-1]
            x = tv[i](x)
            _assert_close(ours[name], x, name)
        x0 = (img - MEAN) / STD
        for name in ("conv1_1", "conv3_2", "relu4_2", names[-1]):  # and features[:i+1] in one go
            i = names.index(name)
            _assert_close(ours[name], tv[: i + 1](x0.clone()), name)
    # the taps behave as their names say
    assert float(ours["conv1_1"].min()) < 0 and float(ours["conv4_2"].min()) < 0  # pre-activation
    for name in names:
        if name.startswith(("relu", "pool")):
            assert float(ours[name].min()) >= 0, name
    assert torch.equal(ours["relu3_1"], ours["conv3_1"].clamp_min(0))
    pooled = nn.functional.max_pool2d if pooling == "max" else nn.functional.avg_pool2d
    assert torch.allclose(ours["pool1"], pooled(ours["relu1_2"], 2))


def test_conv_tap_is_pre_activation_with_random_weights(random_vgg, tiny_content):
    with torch.no_grad():
        f = random_vgg(tiny_content, ["conv1_1", "relu1_1"])
    assert float(f["conv1_1"].min()) < 0 < float(f["conv1_1"].max())
    assert float(f["relu1_1"].min()) == 0.0
    assert torch.equal(f["relu1_1"], torch.relu(f["conv1_1"]))


def test_normalization_happens_inside(random_vgg, tiny_content):
    """ext(img) runs on (img - ImageNet mean) / std: the first conv by hand gives the same."""
    conv = random_vgg.body.conv1_1
    with torch.no_grad():
        want = conv((tiny_content - MEAN) / STD)
        got = random_vgg(tiny_content, ["conv1_1"])["conv1_1"]
    assert torch.allclose(got, want, atol=1e-5)


def test_frozen_and_always_in_eval_mode():
    ext = VGGFeatures("vgg16", ["relu1_1"], weights=None, device="cpu")
    params = list(ext.parameters())
    assert params and not any(p.requires_grad for p in params)
    assert not ext.training and not any(m.training for m in ext.modules())
    ext.train()
    assert not ext.training and not any(m.training for m in ext.modules())
    # gradients flow to the image, not to the weights
    img = torch.rand(1, 3, 8, 8, requires_grad=True)
    ext(img)["relu1_1"].sum().backward()
    assert img.grad is not None and float(img.grad.abs().sum()) > 0
    assert all(p.grad is None for p in params)


def test_network_is_cut_after_the_deepest_requested_layer():
    ext = VGGFeatures("vgg19", ["relu2_1", "conv1_2"], weights=None, device="cpu")
    assert ext.layers_in_body == ["conv1_1", "relu1_1", "conv1_2", "relu1_2", "pool1",
                                  "conv2_1", "relu2_1"]
    assert sum(isinstance(m, nn.Conv2d) for m in ext.modules()) == 3
    out = ext(torch.rand(1, 3, 16, 16))
    assert set(out) == {"relu2_1", "conv1_2"}
    assert out["relu2_1"].shape == (1, 128, 8, 8)
    with pytest.raises(LayerError, match="relu3_1"):
        ext(torch.rand(1, 3, 16, 16), ["relu3_1"])  # deeper than the cut


def test_layer_names_of_both_archs():
    for arch, convs, per_block in (("vgg19", 16, (2, 2, 4, 4, 4)), ("vgg16", 13, (2, 2, 3, 3, 3))):
        names = layer_names(arch)
        assert len(names) == 2 * convs + 5
        assert sum(n.startswith("conv") for n in names) == convs
        assert sum(n.startswith("relu") for n in names) == convs
        assert [n for n in names if n.startswith("pool")] == [f"pool{b}" for b in range(1, 6)]
        for b, n in enumerate(per_block, start=1):
            assert f"conv{b}_{n}" in names and f"conv{b}_{n + 1}" not in names
        assert names[:5] == ["conv1_1", "relu1_1", "conv1_2", "relu1_2", "pool1"]
        assert len(set(names)) == len(names)
    ext = VGGFeatures("vgg16", ["relu1_1"], weights=None, device="cpu")
    assert ext.layer_names == layer_names("vgg16")
    assert ext.layers == ["relu1_1"]
    with pytest.raises(ValueError, match="vgg19"):
        layer_names("vgg11")


def test_unknown_layer_lists_close_names():
    with pytest.raises(LayerError) as info:
        VGGFeatures("vgg19", ["relu4_5"], weights=None, device="cpu")
    msg = str(info.value)
    assert isinstance(info.value, NSTError)
    assert "relu4_5" in msg
    assert any(f"relu4_{i}" in msg for i in range(1, 5)), msg
    with pytest.raises(LayerError) as info:  # vgg16 has no conv5_4: offers vgg16's conv5_3
        VGGFeatures("vgg16", ["conv5_4"], weights=None, device="cpu")
    assert "conv5_4" in str(info.value) and "conv5_3" in str(info.value)
    with pytest.raises(KeyError):  # LayerError is also a KeyError
        VGGFeatures("vgg19", ["bogus"], weights=None, device="cpu")


def test_bad_arch_and_pooling_list_the_choices():
    with pytest.raises(ValueError, match="vgg16"):
        VGGFeatures("resnet50", ["relu1_1"], weights=None)
    with pytest.raises(ValueError, match="avg"):
        VGGFeatures("vgg19", ["relu1_1"], pooling="mean", weights=None)


def test_random_weights_are_seeded():
    a = VGGFeatures("vgg16", ["relu2_1"], weights=None, device="cpu", seed=3)
    b = VGGFeatures("vgg16", ["relu2_1"], weights="random", device="cpu", seed=3)
    c = VGGFeatures("vgg16", ["relu2_1"], weights=None, device="cpu", seed=4)
    sa, sb, sc = a.state_dict(), b.state_dict(), c.state_dict()
    assert all(torch.equal(sa[k], sb[k]) for k in sa)
    assert not torch.equal(sa["body.conv1_1.weight"], sc["body.conv1_1.weight"])
    assert not a.pretrained and a.weights_source.startswith("random")
    img = torch.rand(1, 3, 16, 16)
    assert torch.equal(a(img)["relu2_1"], b(img)["relu2_1"])


def test_random_weights_give_activations_near_one(random_vgg):
    """The paper's normalization: every ReLU tap's mean activation on a photo is of order 1."""
    relu_taps = [n for n in random_vgg.layers_in_body if n.startswith("relu")]
    assert len(relu_taps) == 13  # relu1_1 ... relu5_1 in vgg19
    for name in ("tower_bridge", "starry_night"):
        img = nstlib.example(name, size=64, device="cpu")
        with torch.no_grad():
            feats = random_vgg(img, relu_taps)
        for tap, f in feats.items():
            assert torch.isfinite(f).all()
            assert 0.2 < float(f.mean()) < 5.0, (name, tap, float(f.mean()))


def test_min_size_and_too_small_images(random_vgg):
    assert random_vgg.min_size() == 16  # four poolings before relu5_1
    with pytest.raises(nstlib.ImageError, match="16"):
        random_vgg(torch.rand(1, 3, 8, 32))
    assert random_vgg(torch.rand(1, 3, 8, 8), ["relu2_1"])["relu2_1"].shape == (1, 128, 4, 4)
