"""nstlib.course.anatomy (shapes, receptive fields, feature images), nstlib.course.report and the 00-02 exercise checks."""
from __future__ import annotations

import pytest
import torch

import nstlib
from nstlib.course import checks
from nstlib.course.anatomy import feature_images, format_layer_table, layer_ops, layer_table, receptive_field
from nstlib.course.report import environment_report, weights_status


def test_receptive_fields_of_vgg19():
    rf = {r.name: r.receptive_field for r in layer_table("vgg19")}
    # hand-computed with r += (k - 1) * j, j *= s
    assert (rf["relu1_1"], rf["relu1_2"], rf["pool1"], rf["relu2_1"]) == (3, 5, 6, 10)
    assert (rf["relu4_2"], rf["relu5_1"], rf["relu5_4"], rf["pool5"]) == (84, 156, 252, 268)
    assert receptive_field(layer_ops("vgg19", "relu4_2")) == 84
    assert receptive_field([]) == 1
    assert receptive_field([(7, 2), (3, 2), (3, 1)]) == 19


def test_layer_table_matches_a_forward_pass():
    ext = nstlib.VGGFeatures("vgg16", layers=["pool5"], weights="random", device="cpu")
    img = torch.rand(1, 3, 70, 45)
    with torch.no_grad():
        feats = ext(img, nstlib.layer_names("vgg16"))
    rows = layer_table("vgg16", (70, 45))
    assert [r.name for r in rows] == nstlib.layer_names("vgg16")
    for row in rows:
        assert tuple(feats[row.name].shape[1:]) == row.shape, row.name
    assert {r.stride for r in rows if r.name.startswith("relu5")} == {16}


def test_layer_table_selection_and_format():
    rows = layer_table("vgg19", 224, layers=["relu4_2", "relu1_1"])
    assert [r.name for r in rows] == ["relu1_1", "relu4_2"]  # network order
    text = format_layer_table(rows)
    assert "512 x 28 x 28" in text and "84 x 84" in text and len(text.splitlines()) == 3
    with pytest.raises(nstlib.LayerError):
        layer_table("vgg19", 224, layers=["relu9_9"])
    with pytest.raises(nstlib.LayerError):
        layer_ops("vgg19", "conv6_1")


def test_feature_images():
    f = torch.zeros(1, 4, 5, 6)
    f[0, 2] = torch.arange(30.0).view(5, 6)
    f[0, 1] = 0.5
    maps = feature_images(f, n=2)
    assert len(maps) == 2 and maps[0].shape == (5, 6)
    assert maps[0].min() == 0 and maps[0].max() == 1  # channel 2, the most active, rescaled
    assert torch.all(maps[1] == 0)  # channel 1 is constant: shown black, no division by zero
    assert len(feature_images(f[0], channels=[0, 3])) == 2
    with pytest.raises(ValueError, match="4 channels"):
        feature_images(f, channels=[7])
    with pytest.raises(ValueError, match="batch"):
        feature_images(torch.zeros(2, 4, 5, 6))


def test_environment_report(monkeypatch, tmp_path):
    rep = environment_report(device="cpu")
    assert list(rep) == ["python", "torch", "torchvision", "device", "colab", "mode", "offline", "weights"]
    assert rep["torch"] == torch.__version__ and rep["device"].startswith("cpu")
    monkeypatch.setenv("NSTLIB_WEIGHTS", str(tmp_path / "nope.pth"))
    assert "not a file" in weights_status()
    (tmp_path / "w.pth").write_bytes(b"x")
    monkeypatch.setenv("NSTLIB_WEIGHTS", str(tmp_path / "w.pth"))
    assert weights_status().startswith("pretrained")


def _nie(*args):
    raise NotImplementedError


@pytest.mark.parametrize("check", [checks.check_receptive_field, checks.check_content_loss, checks.check_gram_matrix])
def test_checks_fail_unsolved(check, capsys):
    # passing a correct solution (written from the formula, not the library's own function) and
    # failing it for a wrong library reference: tests/test_exercise_checks.py
    assert check(_nie) is False
    out = capsys.readouterr().out
    assert out.startswith("FAIL") and "not implemented yet" in out and "Hint:" in out


def _gram_unnormalized(f):
    b, c, h, w = f.shape
    x = f.reshape(b, c, h * w)
    return x @ x.transpose(1, 2)


@pytest.mark.parametrize("check, wrong, diagnosis", [
    (checks.check_receptive_field, lambda ops: 1 + sum(k - 1 for k, _ in ops), "expected 8"),
    (checks.check_content_loss, lambda f, t: ((f - t) ** 2).sum(), "summed instead of averaging"),
    pytest.param(checks.check_content_loss, lambda f, t: float(((f - t) ** 2).mean()), "not a torch tensor",
                 marks=pytest.mark.filterwarnings("ignore:Converting a tensor")),  # the mistake warns itself
    (checks.check_content_loss, lambda f, t: ((f - t) ** 2).mean().detach(), "no gradient"),
    (checks.check_gram_matrix, _gram_unnormalized, "did not divide by C*H*W"),
    (checks.check_gram_matrix, lambda f: 1 / 0, "ZeroDivisionError"),
])
def test_checks_diagnose_common_mistakes(check, wrong, diagnosis, capsys):
    assert check(wrong) is False
    out = capsys.readouterr().out
    assert out.startswith("FAIL") and diagnosis in out and "Hint:" in out and "Traceback" not in out
