"""The exercise checks of notebooks 03 and 04: pass on a solution, FAIL with a hint (never a
traceback) on an unsolved exercise or on the usual mistakes."""
from __future__ import annotations

import contextlib
import functools

import pytest
import torch

import nstlib
from nstlib.course import checks
from nstlib.course.checks import optimization as checks_optimization


@pytest.fixture(scope="module")
def small_avg_vgg():
    return nstlib.VGGFeatures(layers=("relu1_2", "relu2_1"), pooling="avg", weights=None, device="cpu")


def norms(features, loss, square=False):
    names = list(features)
    grads = torch.autograd.grad(loss, [features[n] for n in names])
    return {n: float(g.norm() ** (2 if square else 1)) for n, g in zip(names, grads)}


def with_backward(features, loss):
    loss.backward()
    return {n: f.grad.norm().item() for n, f in features.items()}


def todo(*args, **kwargs):
    raise NotImplementedError


def adam(objective, init, steps, lr=0.02, betas=(0.9, 0.999), eps=1e-8, bias=True, clamp=True):
    x, (b1, b2) = init.clone(), betas
    m, v, losses = torch.zeros_like(x), torch.zeros_like(x), []
    for t in range(1, steps + 1):
        x.requires_grad_(True)
        loss = objective(x)["total"]
        (g,) = torch.autograd.grad(loss, x)
        losses.append(loss.item())
        with torch.no_grad():
            m, v = b1 * m + (1 - b1) * g, b2 * v + (1 - b2) * g * g
            mh, vh = (m / (1 - b1 ** t), v / (1 - b2 ** t)) if bias else (m, v)
            x = x - lr * mh / (vh.sqrt() + eps)
            x = x.clamp(0, 1) if clamp else x
    return x.detach(), losses


def test_gradient_norms_passes_a_solution(small_avg_vgg, capsys):
    assert checks.check_gradient_norms(norms, extractor=small_avg_vgg) is True
    assert capsys.readouterr().out.startswith("PASS: gradient_norms")


def test_gradient_norms_default_extractor(capsys):
    assert checks.check_gradient_norms(norms) is True
    assert "PASS" in capsys.readouterr().out


@pytest.mark.parametrize("fn, says", [
    (todo, "not implemented yet"),
    (functools.partial(norms, square=True), "squared norm"),
    (with_backward, "AttributeError"),
])
def test_gradient_norms_fails_with_hint(small_avg_vgg, capsys, fn, says):
    with pytest.warns(UserWarning) if fn is with_backward else contextlib.nullcontext():
        assert checks.check_gradient_norms(fn, extractor=small_avg_vgg) is False
    out = capsys.readouterr().out
    assert out.startswith("FAIL: gradient_norms") and says in out
    assert "Hint: call torch.autograd.grad" in out and "Traceback" not in out


def test_adam_loop_passes_a_solution(capsys):
    assert checks.check_adam_loop(adam) is True
    assert capsys.readouterr().out.startswith("PASS: adam_loop")


def test_adam_loop_on_a_vgg_objective(small_avg_vgg, tiny_content, tiny_style, capsys):
    obj = nstlib.Objective(small_avg_vgg, tiny_content, tiny_style, ["relu2_1"], ["relu1_2", "relu2_1"],
                           1.0, 1e4, 0.0)
    assert checks.check_adam_loop(adam, objective=obj, init=tiny_content, steps=4, lr=0.02) is True
    assert "PASS" in capsys.readouterr().out


def test_reference_is_torch_adam():
    obj, x0 = checks_optimization._pixel_objective()
    mine = checks_optimization._adam_mistake(obj, x0, 5, 0.05, bias_correction=True, clamp=True)
    assert mine == pytest.approx(checks_optimization._adam_torch(obj, x0, 5, 0.05), rel=1e-5)


@pytest.mark.parametrize("fn, says", [
    (todo, "not implemented yet"),
    (functools.partial(adam, bias=False), "bias correction"),
    (functools.partial(adam, clamp=False), "outside [0, 1]"),
    (lambda objective, init, steps, lr: adam(objective, init, steps, -lr), "did not go down"),
    (lambda objective, init, steps, lr: (init, [1 / (t + 1) for t in range(steps)]), "differ from torch.optim.Adam"),
    (lambda objective, init, steps, lr: (init, [1.0]), "should give 6 losses"),
    (lambda objective, init, steps, lr: init, "return a pair"),
])
def test_adam_loop_fails_with_hint(capsys, fn, says):
    assert checks.check_adam_loop(fn) is False
    out = capsys.readouterr().out
    assert out.startswith("FAIL: adam_loop") and says in out
    assert "Hint: each step" in out and "Traceback" not in out

