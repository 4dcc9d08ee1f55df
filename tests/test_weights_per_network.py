"""Weights per network (issue 12): NSTLIB_WEIGHTS keeps naming the VGG19 file, VGG16 has its own
NSTLIB_WEIGHTS_VGG16 (one variable cannot serve both networks), the download size is announced before a
download starts, and every extractor a notebook builds shows the random-weights banner."""
from __future__ import annotations

import json
import re
import urllib.error
from pathlib import Path

import pytest
import torch

from nstlib import VGGFeatures
from nstlib.course.report import weights_status
from nstlib.weights import announce_download, download_size_mb, weights_env

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))
VARS = ("NSTLIB_WEIGHTS", "NSTLIB_WEIGHTS_VGG19", "NSTLIB_WEIGHTS_VGG16", "NSTLIB_OFFLINE")


@pytest.fixture
def clean_env(tmp_path, monkeypatch):
    """An empty TORCH_HOME, none of the weight variables, and downloads that fail (recorded)."""
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch_home"))
    monkeypatch.setattr(torch.hub, "_hub_dir", None)
    for v in VARS:
        monkeypatch.delenv(v, raising=False)
    calls = []

    def fail(url, dst, *args, **kwargs):
        calls.append(url)
        raise urllib.error.URLError("no network in this test")
    monkeypatch.setattr(torch.hub, "download_url_to_file", fail)
    return calls


def test_each_network_reads_its_own_variable(monkeypatch, clean_env):
    assert weights_env("vgg19") == ("NSTLIB_WEIGHTS", None)
    assert weights_env("vgg16") == ("NSTLIB_WEIGHTS_VGG16", None)
    monkeypatch.setenv("NSTLIB_WEIGHTS", "/a/vgg19.pth")
    assert weights_env("vgg19") == ("NSTLIB_WEIGHTS", "/a/vgg19.pth")
    assert weights_env("vgg16") == ("NSTLIB_WEIGHTS_VGG16", None)  # the VGG19 file never reaches VGG16
    monkeypatch.setenv("NSTLIB_WEIGHTS_VGG19", "/b/vgg19.pth")  # the explicit name wins
    monkeypatch.setenv("NSTLIB_WEIGHTS_VGG16", "/b/vgg16.pth")
    assert weights_env("vgg19") == ("NSTLIB_WEIGHTS_VGG19", "/b/vgg19.pth")
    assert weights_env("vgg16") == ("NSTLIB_WEIGHTS_VGG16", "/b/vgg16.pth")


def test_vgg19_file_in_NSTLIB_WEIGHTS_does_not_break_vgg16(monkeypatch, clean_env, features_file):
    monkeypatch.setenv("NSTLIB_WEIGHTS", str(features_file("vgg19")))
    monkeypatch.setenv("NSTLIB_OFFLINE", "1")
    assert VGGFeatures("vgg19", ["relu1_1"], device="cpu").pretrained
    with pytest.warns(UserWarning, match="RANDOM"):
        ext16 = VGGFeatures("vgg16", ["relu1_1"], device="cpu")  # offline: random, not a WeightsError
    assert not ext16.pretrained and clean_env == [
        "https://download.pytorch.org/models/vgg16-397923af.pth"]
    monkeypatch.setenv("NSTLIB_WEIGHTS_VGG16", str(features_file("vgg16")))
    ext16 = VGGFeatures("vgg16", ["relu1_1"], device="cpu")
    assert ext16.pretrained and "NSTLIB_WEIGHTS_VGG16" in ext16.weights_source
    assert weights_status("vgg16").startswith("pretrained: NSTLIB_WEIGHTS_VGG16=")


def test_download_size_is_announced_before_the_download_starts(monkeypatch, clean_env, capsys):
    seen = []

    def record(url, dst, *args, **kwargs):
        seen.append(capsys.readouterr().err)  # what the user saw when the download began
        raise urllib.error.URLError("no network in this test")
    monkeypatch.setattr(torch.hub, "download_url_to_file", record)
    monkeypatch.setenv("NSTLIB_OFFLINE", "1")
    for arch, mb in (("vgg19", "548 MB"), ("vgg16", "528 MB")):  # torchvision's published file sizes
        with pytest.warns(UserWarning):
            VGGFeatures(arch, ["relu1_1"], device="cpu")
        assert mb in seen[-1] and arch.upper() in seen[-1], seen[-1]
    assert "NSTLIB_WEIGHTS_VGG16" in announce_download("vgg16")
    assert round(download_size_mb("vgg19")) == 548 and round(download_size_mb("vgg16")) == 528


def test_every_extractor_in_a_notebook_shows_the_banner():
    """A VGGFeatures built in a notebook without nstlib.course.notice(it) would run on random weights
    offline without saying so (notebook 06's VGG16 did)."""
    for path in NOTEBOOKS:
        code = "\n".join("".join(c["source"]) for c in json.loads(path.read_text())["cells"]
                         if c["cell_type"] == "code")
        for name in re.findall(r"^\s*(\w+)\s*=\s*nstlib\.VGGFeatures\(", code, re.M):
            assert re.search(rf"(?<![\w.])notice\({name}\)", code), \
                f"{path.name}: the extractor {name!r} never gets nstlib.course.notice({name})"
