"""Issue 6, hardening: broken weight files (never run their code), the download's hash check,
unknown layer names and bad parameter values. Every bad file is made by the test itself.
"""
from __future__ import annotations

import os
import pickle
from pathlib import Path

import numpy as np
import pytest
import torch

import nstlib
from nstlib import LayerError, WeightsError


@pytest.fixture(scope="module")
def ext():
    """A random-weights VGG19 with stylize's default layers, built once."""
    layers = list(nstlib.transfer.CONTENT_LAYERS) + list(nstlib.transfer.STYLE_LAYERS)
    return nstlib.VGGFeatures("vgg19", layers, weights="random", device="cpu")


def _write(tmp: Path, name: str, data: bytes) -> Path:
    (tmp / name).write_bytes(data)
    return tmp / name


# ---------------------------------------------------------------- weights
def _vgg_state(arch: str) -> dict:
    """A torchvision-format state dict with the right keys for ``arch`` and tiny tensors."""
    return {f"features.{i}.{p}": torch.zeros(1) for i in nstlib.weights.conv_indices(arch)
            for p in ("weight", "bias")}


class _RunsCode:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.mkdir, (str(self.marker),))  # what a malicious "weight file" would do


def _evil_zip(t: Path) -> Path:
    torch.save({"features.0.weight": _RunsCode(t / "PWNED")}, t / "evil.pth")
    return t / "evil.pth"


def _evil_pickle(t: Path) -> Path:
    return _write(t, "evil_old.pth", pickle.dumps({"state_dict": _RunsCode(t / "PWNED")}, protocol=2))


def _shape_mismatch(t: Path) -> Path:
    torch.save(_vgg_state("vgg19"), t / "tiny.pth")
    return t / "tiny.pth"


def _vgg16(t: Path) -> Path:
    torch.save(_vgg_state("vgg16"), t / "vgg16-397923af.pth")
    return t / "vgg16-397923af.pth"


BAD_WEIGHTS = {  # name -> (make the file, words the message must contain besides the file name)
    "text": (lambda t: _write(t, "vgg19.pth", b"404 Not Found"), ["corrupt", "re-download"]),
    "empty": (lambda t: _write(t, "vgg19.pth", b""), ["corrupt", "re-download"]),
    "random bytes": (lambda t: _write(t, "vgg19.pth", bytes(range(256)) * 8), ["corrupt", "re-download"]),
    "pickle with code (zip)": (_evil_zip, ["code", "state_dict()"]),
    "pickle with code (legacy)": (_evil_pickle, ["code", "state_dict()"]),
    "other architecture": (_vgg16, ["vgg16", "arch='vgg16'"]),
    "wrong shapes": (_shape_mismatch, ["(64, 3, 3, 3)", "torchvision vgg19"]),
    "not a state dict": (lambda t: torch.save([1, 2], t / "list.pth") or t / "list.pth", ["state dict"]),
}


@pytest.mark.parametrize("case", list(BAD_WEIGHTS))
def test_bad_weight_file_raises_weights_error_naming_it(case, tmp_path, monkeypatch):
    real_load, calls = torch.load, []
    monkeypatch.setattr(torch, "load", lambda *a, **k: calls.append(k) or real_load(*a, **k))
    make, words = BAD_WEIGHTS[case]
    path = make(tmp_path)
    with pytest.raises(WeightsError) as err:
        nstlib.VGGFeatures("vgg19", ["relu1_1"], weights=str(path), device="cpu")
    msg = str(err.value)
    assert path.name in msg and all(w in msg for w in words), msg
    assert calls and all(k.get("weights_only") is True for k in calls)
    assert not (tmp_path / "PWNED").exists(), "the pickle's code ran"


def test_partial_download_in_the_cache_says_delete_it(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    monkeypatch.delenv("NSTLIB_WEIGHTS", raising=False)
    monkeypatch.setattr(torch.hub, "download_url_to_file", lambda *a, **k: pytest.fail("re-downloaded"))
    cached = tmp_path / "hub" / "checkpoints" / "vgg19-dcbb9e9d.pth"
    cached.parent.mkdir(parents=True)
    torch.save(_vgg_state("vgg19"), cached)
    cached.write_bytes(cached.read_bytes()[: cached.stat().st_size // 2])  # the download stopped halfway
    for offline in ("1", "0"):
        monkeypatch.setenv("NSTLIB_OFFLINE", offline)
        with pytest.raises(WeightsError) as err:
            nstlib.VGGFeatures("vgg19", ["relu1_1"], weights="imagenet", device="cpu")
        assert str(cached) in str(err.value) and "delete" in str(err.value)


def test_download_keeps_torchvisions_hash_check(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    monkeypatch.delenv("NSTLIB_WEIGHTS", raising=False)
    calls = []

    def fake_download(url, dst, hash_prefix=None, progress=True):
        calls.append((url, hash_prefix))
        raise RuntimeError(f'invalid hash value (expected "{hash_prefix}", got "0badc0de")')
    monkeypatch.setattr(torch.hub, "download_url_to_file", fake_download)
    monkeypatch.setenv("NSTLIB_OFFLINE", "0")
    with pytest.raises(nstlib.WeightsUnavailableError, match="NSTLIB_OFFLINE=1"):
        nstlib.VGGFeatures("vgg19", ["relu1_1"], weights="imagenet", device="cpu")
    monkeypatch.setenv("NSTLIB_OFFLINE", "1")
    with pytest.warns(nstlib.RandomWeightsWarning):
        ext = nstlib.VGGFeatures("vgg19", ["relu1_1"], weights="imagenet", device="cpu")
    assert not ext.pretrained
    assert calls[0] == ("https://download.pytorch.org/models/vgg19-dcbb9e9d.pth", "dcbb9e9d")
    assert not list(tmp_path.rglob("*.pth")), "a file that failed its hash check was kept"


# ---------------------------------------------------------------- layers and parameters
def test_unknown_layer_names_raise_layer_error_with_the_closest_names(ext):
    with pytest.raises(LayerError, match="relu4_2"):
        nstlib.VGGFeatures("vgg19", ["relu4_2", "rleu4_2"], weights="random", device="cpu")
    with pytest.raises(LayerError, match="conv5_4"):
        nstlib.VGGFeatures("vgg16", ["conv5_4"], weights="random", device="cpu")  # vgg16 has 3 per block
    with pytest.raises(LayerError, match="relu5_1"):
        nstlib.stylize(torch.rand(3, 32, 32), None, content_layers="relu5_l", extractor=ext, steps=1)
    with pytest.raises(LayerError, match="style_layers"):
        nstlib.stylize(torch.rand(3, 32, 32), torch.rand(3, 32, 32), extractor=ext, steps=1,
                       style_layer_weights={"relu4_2": 1.0})


BAD_PARAMS = {  # stylize keyword -> (value, words the ValueError must contain)
    "content_weight": (-1.0, ["content_weight", ">= 0"]),
    "style_weight": (float("nan"), ["style_weight", ">= 0"]),
    "tv_weight": (-0.5, ["tv_weight"]),
    "style_layer_weights": ({"relu1_1": -1.0}, ["style_layer_weights['relu1_1']", ">= 0"]),
    "steps": (0, ["steps", "positive"]),
    "optimizer": ("sgd", ["lbfgs", "adam"]),
    "init": ("zeros", ["content", "noise", "style"]),
    "pooling": ("mean", ["'max'", "'avg'"]),
    "arch": ("vgg11", ["'vgg19'", "'vgg16'"]),
}


@pytest.mark.parametrize("key", list(BAD_PARAMS))
def test_bad_parameter_raises_value_error_listing_the_choices(key, monkeypatch):
    monkeypatch.setattr(nstlib.stage, "load_image", lambda *a, **k: pytest.fail("loaded an image"))
    value, words = BAD_PARAMS[key]
    with pytest.raises(ValueError) as err:
        nstlib.stylize("tower_bridge", "starry_night", **{key: value}, weights="random", device="cpu")
    assert all(w in str(err.value) for w in words), str(err.value)


@pytest.mark.parametrize("steps", [0, -3, 2.5, "10", True, None])
def test_steps_must_be_a_positive_whole_number(steps):
    for call in (lambda: nstlib.optimize(torch.rand(1, 3, 8, 8), lambda x: {"total": x.sum()}, steps=steps),
                 lambda: nstlib.stylize(torch.rand(3, 8, 8), None, steps=steps or 0, weights="random")):
        with pytest.raises(ValueError, match="steps must be a positive whole number"):
            call()
    assert len(nstlib.optimize(torch.rand(1, 3, 8, 8), lambda x: {"total": x.sum()}, steps=np.int64(3)).history) == 3
