"""Weight sources: files (whole model / features only), NSTLIB_WEIGHTS, torchvision's cache,
a failed download (with and without NSTLIB_OFFLINE), and files that must be refused.

No test touches the network or the real torch cache: TORCH_HOME points into tmp_path and
``torch.hub.download_url_to_file`` is replaced wherever a download could be attempted.
"""
from __future__ import annotations

import os
import urllib.error

import pytest
import torch

import nstlib
from nstlib import NSTError, RandomWeightsWarning, VGGFeatures, WeightsError, WeightsUnavailableError
from nstlib import weights as W

pytestmark = pytest.mark.usefixtures("one_thread")

VGG19_URL = "https://download.pytorch.org/models/vgg19-dcbb9e9d.pth"


@pytest.fixture
def torch_home(tmp_path, monkeypatch):
    """An empty TORCH_HOME, no NSTLIB_WEIGHTS/NSTLIB_OFFLINE, and downloads that fail the test."""
    home = tmp_path / "torch_home"
    monkeypatch.setenv("TORCH_HOME", str(home))
    monkeypatch.setattr(torch.hub, "_hub_dir", None)  # in case something called torch.hub.set_dir
    monkeypatch.delenv("NSTLIB_WEIGHTS", raising=False)
    monkeypatch.delenv("NSTLIB_OFFLINE", raising=False)

    def no_download(url, dst, *args, **kwargs):
        raise AssertionError(f"the test tried to download {url}")
    monkeypatch.setattr(torch.hub, "download_url_to_file", no_download)
    return home


def _failing_download(calls: list):
    def fail(url, dst, *args, **kwargs):
        calls.append((url, dst))
        raise urllib.error.URLError("[Errno -2] Name or service not known")
    return fail


def _assert_weights_equal(ext: VGGFeatures, features: torch.nn.Sequential) -> None:
    convs = [m for m in ext.body if isinstance(m, torch.nn.Conv2d)]
    theirs = [m for m in features if isinstance(m, torch.nn.Conv2d)][: len(convs)]
    assert convs and len(convs) == len(theirs)
    for ours, tv in zip(convs, theirs):
        assert torch.equal(ours.weight, tv.weight) and torch.equal(ours.bias, tv.bias)


def test_file_with_the_whole_model_state_dict(tmp_path, torch_home, whole_model_state, torchvision_vgg):
    state = whole_model_state("vgg16")
    assert any(k.startswith("classifier.") for k in state)
    path = tmp_path / "vgg16_whole.pth"
    torch.save(state, path)
    ext = VGGFeatures("vgg16", ["relu5_3"], weights=path, device="cpu")
    assert ext.pretrained and str(path) in ext.weights_source
    _assert_weights_equal(ext, torchvision_vgg("vgg16"))
    ext2 = VGGFeatures("vgg16", ["relu1_1"], weights=str(path), device="cpu")  # str paths too
    _assert_weights_equal(ext2, torchvision_vgg("vgg16"))


def test_file_with_features_keys_only(tmp_path, torch_home, features_file, torchvision_vgg):
    keys = torch.load(features_file("vgg19"), weights_only=True).keys()
    assert all(k.startswith("features.") for k in keys)
    ext = VGGFeatures("vgg19", ["relu5_1"], weights=features_file("vgg19"), device="cpu")
    assert ext.pretrained
    _assert_weights_equal(ext, torchvision_vgg("vgg19"))
    # the features module's own state dict ("0.weight", ...) and an in-memory state dict work too
    bare = tmp_path / "bare.pth"
    torch.save(torchvision_vgg("vgg19").state_dict(), bare)
    _assert_weights_equal(VGGFeatures("vgg19", ["relu2_1"], weights=bare, device="cpu"), torchvision_vgg("vgg19"))
    from_dict = VGGFeatures("vgg19", ["relu2_1"], weights=torchvision_vgg("vgg19").state_dict(), device="cpu")
    _assert_weights_equal(from_dict, torchvision_vgg("vgg19"))


def test_nstlib_weights_env_var(monkeypatch, torch_home, features_file, torchvision_vgg):
    monkeypatch.setenv("NSTLIB_WEIGHTS", str(features_file("vgg19")))
    ext = VGGFeatures("vgg19", ["relu3_1"], weights="imagenet", device="cpu")  # no download attempted
    assert ext.pretrained and "NSTLIB_WEIGHTS" in ext.weights_source
    _assert_weights_equal(ext, torchvision_vgg("vgg19"))
    monkeypatch.setenv("NSTLIB_WEIGHTS", str(torch_home / "missing.pth"))
    with pytest.raises(WeightsError, match="missing.pth"):
        VGGFeatures("vgg19", ["relu3_1"], weights="imagenet", device="cpu")


def test_imagenet_found_in_torchvision_cache(torch_home, torchvision_vgg, whole_model_state):
    from torchvision.models import VGG19_Weights
    assert VGG19_Weights.IMAGENET1K_V1.url == VGG19_URL
    dest = torch_home / "hub" / "checkpoints" / "vgg19-dcbb9e9d.pth"
    assert W.cache_path("vgg19") == dest
    dest.parent.mkdir(parents=True)
    torch.save(whole_model_state("vgg19"), dest)  # what torchvision's download leaves there
    ext = VGGFeatures("vgg19", ["relu4_2"], weights="imagenet", device="cpu")
    assert ext.pretrained and "imagenet" in ext.weights_source
    _assert_weights_equal(ext, torchvision_vgg("vgg19"))


def test_failed_download_raises_with_instructions(monkeypatch, torch_home):
    calls: list = []
    monkeypatch.setattr(torch.hub, "download_url_to_file", _failing_download(calls))
    with pytest.raises(WeightsUnavailableError) as info:
        VGGFeatures("vgg19", ["relu1_1"], weights="imagenet", device="cpu")
    assert calls and calls[0][0] == VGG19_URL  # torchvision's own URL was tried
    msg = str(info.value)
    dest = torch_home / "hub" / "checkpoints" / "vgg19-dcbb9e9d.pth"
    assert VGG19_URL in msg  # what to fetch on a connected machine
    assert str(dest) in msg  # where to put it
    assert "NSTLIB_WEIGHTS" in msg and "NSTLIB_OFFLINE" in msg
    assert isinstance(info.value, WeightsError) and isinstance(info.value, NSTError)
    assert not dest.exists()
    # vgg16 names its own file
    with pytest.raises(WeightsUnavailableError, match="vgg16-397923af.pth"):
        VGGFeatures("vgg16", ["relu1_1"], device="cpu")


def test_failed_download_offline_falls_back_to_random(monkeypatch, torch_home):
    calls: list = []
    monkeypatch.setattr(torch.hub, "download_url_to_file", _failing_download(calls))
    monkeypatch.setenv("NSTLIB_OFFLINE", "1")
    with pytest.warns(RandomWeightsWarning, match="NOT meaningful"):
        ext = VGGFeatures("vgg19", ["relu2_1"], weights="imagenet", device="cpu", seed=5)
    assert calls
    assert not ext.pretrained
    assert "random" in ext.weights_source and "offline" in ext.weights_source
    same = VGGFeatures("vgg19", ["relu2_1"], weights=None, device="cpu", seed=5)  # the seeded random weights
    assert all(torch.equal(a, b) for a, b in zip(ext.state_dict().values(), same.state_dict().values()))


def test_corrupt_file_names_the_file(tmp_path, torch_home, features_file):
    garbage = tmp_path / "garbage.pth"
    garbage.write_bytes(b"this is not a pytorch file\n" * 10)
    with pytest.raises(WeightsError, match="garbage.pth"):
        VGGFeatures("vgg19", ["relu1_1"], weights=garbage, device="cpu")
    truncated = tmp_path / "truncated.pth"
    truncated.write_bytes(features_file("vgg19").read_bytes()[:100_000])
    with pytest.raises(WeightsError, match="truncated.pth"):
        VGGFeatures("vgg19", ["relu1_1"], weights=truncated, device="cpu")
    not_a_dict = tmp_path / "list.pth"
    torch.save([torch.zeros(3)], not_a_dict)
    with pytest.raises(WeightsError, match="list.pth"):
        VGGFeatures("vgg19", ["relu1_1"], weights=not_a_dict, device="cpu")
    with pytest.raises(WeightsError, match="nowhere.pth"):
        VGGFeatures("vgg19", ["relu1_1"], weights=tmp_path / "nowhere.pth", device="cpu")


class _Payload:
    """Unpickling this would run a shell command (it never must)."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_pickle_carrying_code_is_refused_and_not_run(tmp_path, torch_home):
    marker = tmp_path / "PWNED"
    evil = tmp_path / "evil.pth"
    torch.save({"features.0.weight": _Payload(marker), "features.0.bias": torch.zeros(64)}, evil)
    assert b"system" in evil.read_bytes()  # the file really carries the call
    with pytest.raises(WeightsError) as info:
        VGGFeatures("vgg19", ["relu1_1"], weights=evil, device="cpu")
    assert "evil.pth" in str(info.value)
    assert not marker.exists()  # the code did not run


def test_other_arch_file_says_which_arch(torch_home, features_file):
    with pytest.raises(WeightsError) as info:
        VGGFeatures("vgg19", ["relu1_1"], weights=features_file("vgg16"), device="cpu")
    msg = str(info.value)
    assert "vgg16" in msg and "vgg19" in msg and "vgg16_features.pth" in msg
    with pytest.raises(WeightsError, match="holds vgg19"):
        VGGFeatures("vgg16", ["relu1_1"], weights=features_file("vgg19"), device="cpu")


def test_files_are_read_with_weights_only(monkeypatch, torch_home, features_file):
    seen = []
    real_load = torch.load

    def spy(*args, **kwargs):
        seen.append(kwargs.get("weights_only"))
        return real_load(*args, **kwargs)
    monkeypatch.setattr(torch, "load", spy)
    VGGFeatures("vgg19", ["relu1_1"], weights=features_file("vgg19"), device="cpu")
    monkeypatch.setenv("NSTLIB_WEIGHTS", str(features_file("vgg19")))
    VGGFeatures("vgg19", ["relu1_1"], device="cpu")
    assert seen == [True, True]


def test_random_and_none_never_touch_files_or_network(torch_home):
    for spec in (None, "random"):
        ext = VGGFeatures("vgg19", ["relu1_1"], weights=spec, device="cpu")
        assert not ext.pretrained and ext.weights_source == "random (seed 0)"
    assert not torch_home.exists()
    with pytest.raises(WeightsError, match="imagenet"):
        VGGFeatures("vgg19", ["relu1_1"], weights="imagnet", device="cpu")  # a typo, not a file


def test_random_weights_warning_for_stylize(random_vgg, tiny_content):
    """Work done with random weights warns that the images are not meaningful (when no banner has
    said so: nstlib.course.notice silences it, tests/test_teach.py)."""
    with pytest.warns(RandomWeightsWarning):
        nstlib.stylize(tiny_content, tiny_content, extractor=random_vgg, steps=1, size=32)
