"""Issue 14 (one run specification, one engine loop) and issue 15 (parameters that ended in a raw
traceback), plus the engine side of live weights (issue 16)."""
from __future__ import annotations

import dataclasses
import math

import pytest
import torch

import nstlib
from nstlib import Transfer, stylize

pytestmark = [pytest.mark.filterwarnings("ignore::nstlib.RandomWeightsWarning"),
              pytest.mark.usefixtures("one_thread")]
FAST = dict(content_layers="relu2_1", style_layers=["relu1_1", "relu2_1"])


# ---------------------------------------------------------------- issue 15: bad parameters
BAD = {  # keyword: (value, words the message must contain)
    "device": ("gpu0", ["device", "'gpu0'", "cpu", "cuda", "mps"]),
    "content_layers": (None, ["content_layers", "relu4_2"]),
    "seed": ("abc", ["seed", "'abc'", "whole number"]),
    "lr": (math.inf, ["lr", "finite", "> 0"]),
    "size": (0, ["size", "positive"]),
    "style_weight": (1e39, ["style_weight", "float32", "1e+39"]),
    "every": (0, ["every", "positive"]),
}


@pytest.mark.parametrize("key", list(BAD) + ["every=-1", "all weights 0", "cuda", "size=10**6"])
def test_bad_parameters_name_the_parameter_before_any_work(key, monkeypatch):
    monkeypatch.setattr(nstlib.stage, "load_image", lambda *a, **k: pytest.fail("loaded an image"))
    monkeypatch.setattr(nstlib.stage, "VGGFeatures", lambda *a, **k: pytest.fail("built a network"))
    kwargs, words = ({key: BAD[key][0]}, BAD[key][1]) if key in BAD else {
        "every=-1": ({"every": -1}, ["every", "positive", "-1"]),
        "all weights 0": (dict(content_weight=0, style_weight=0, tv_weight=0), ["all 0", "at least one"]),
        "cuda": ({"device": "cuda"}, ["device='cuda'", "CUDA", "cpu"]),
        "size=10**6": ({"size": 10**6}, ["size=1000000", "smaller size"]),
    }[key]
    if key == "cuda" and torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    with pytest.raises(ValueError) as err:
        stylize("tower_bridge", "starry_night", weights="random", **kwargs)
    assert all(w in str(err.value) for w in words), str(err.value)
    with pytest.raises(ValueError):  # the spec itself refuses it, whoever builds it
        Transfer("tower_bridge", "starry_night", **kwargs)


def test_load_image_refuses_an_enormous_size_before_allocating():
    with pytest.raises(ValueError, match="size=1000000"):
        nstlib.load_image(torch.rand(3, 8, 8), size=10**6)
    with pytest.raises(ValueError, match="size must be a positive"):
        nstlib.load_image("tower_bridge", size=0)  # not "the file is damaged"


def test_a_one_pixel_content_image_gets_a_clear_error_and_optimize_copes_with_it():
    with pytest.raises(nstlib.ImageError, match="at least 2 px"):
        stylize(torch.rand(3, 1, 1), None, content_layers="relu1_1", style_layers=[], optimizer="lbfgs",
                size=1, steps=2, weights="random", device="cpu")
    x = torch.rand(1, 1, 1, 3).permute(0, 3, 1, 2)  # [1, 3, 1, 1], not contiguous
    res = nstlib.optimize(x, lambda img: {"total": ((img - 0.5) ** 2).sum()}, optimizer="lbfgs", steps=3)
    assert res.stopped == "done" and len(res.history) == 3


def test_a_run_in_which_no_step_succeeded_reports_diverged():
    with pytest.warns(RuntimeWarning, match="no step gave a finite loss"):
        res = nstlib.optimize(torch.rand(1, 3, 4, 4), lambda x: {"total": x.sum() * float("nan")}, steps=3)
    assert res.stopped == "diverged" and res.history == []


# ---------------------------------------------------------------- the specification
def test_one_string_layer_works_everywhere(random_vgg, tiny_content, tiny_style):
    res = stylize(tiny_content, tiny_style, extractor=random_vgg, size=32, steps=2, **FAST)
    assert res.spec.content_layers == ("relu2_1",) and res.params["content_layers"] == ["relu2_1"]
    multi = stylize(tiny_content, tiny_style, extractor=random_vgg, size=32, steps=[1, 1], scales=2, **FAST)
    assert [h["size"] for h in multi.history] == [16, 32]
    grid = nstlib.sweep(tiny_content, tiny_style, [1.0], [1e3, 1e4], extractor=random_vgg, size=32, steps=2,
                        content_layers="relu2_1", style_layers="relu1_1")
    assert len(grid.images[0]) == 2 and grid.spec.style_layers == ("relu1_1",)


def test_the_result_carries_the_resolved_spec_and_a_varied_spec_runs(random_vgg, tiny_content, tiny_style):
    spec = Transfer(tiny_content, tiny_style, steps=2, size=32, **FAST)
    assert spec.steps == 2 and spec.lr is None and spec.optimizer == "lbfgs"
    res = nstlib.run(spec, extractor=random_vgg)
    assert res.spec.lr == 1.0 and res.spec.device == torch.device("cpu") and res.spec.style_weight == 1e4
    adam = nstlib.run(dataclasses.replace(spec, optimizer="adam", style_weight=1e5), extractor=random_vgg)
    assert adam.spec.lr == pytest.approx(0.068) and adam.name.startswith("content+style_adam_cw1_sw1e5")
    assert "style_weight" in spec.describe() and "optimizer" in spec.describe()
    with pytest.raises(dataclasses.FrozenInstanceError):
        spec.steps = 3  # type: ignore[misc]
    with pytest.raises(ValueError, match="steps"):  # replace() checks again
        dataclasses.replace(spec, steps=0)


def test_quick_mode_does_not_change_the_library_defaults(monkeypatch):
    """Quick mode lives in nstlib.course.quick, which the core never imports (tests/test_layout.py)."""
    import nstlib.course.quick
    monkeypatch.setattr(nstlib.course.quick, "QUICK", True)
    assert nstlib.course.pick("normal", quick="quick") == "quick"
    spec = Transfer("tower_bridge", "starry_night", device="cpu").resolved()
    assert spec.steps == 300 and spec.size == 256
    assert Transfer("tower_bridge", None, optimizer="adam", device="cpu").resolved().steps == 500


# ---------------------------------------------------------------- the engine loop
def _bowl(target: torch.Tensor):
    """A smooth non-quadratic objective with iterates inside (0, 1)."""
    return lambda x: {"total": (((x - target) ** 2).sum() + 0.1 * ((x - target) ** 4).sum())}


def test_lbfgs_one_step_per_step_gives_the_iterates_of_one_call_with_max_iter_steps():
    g = torch.Generator().manual_seed(0)
    target, x0, steps = torch.rand(1, 3, 6, 6, generator=g) * 0.5 + 0.25, torch.rand(1, 3, 6, 6, generator=g), 12
    objective = _bowl(target)
    res = nstlib.optimize(x0, objective, optimizer="lbfgs", steps=steps, every=1)
    x = x0.clone().requires_grad_(True)
    seen = []

    def closure():
        with torch.no_grad():
            x.clamp_(0, 1)
        x.grad = None
        seen.append(x.detach().clone())
        loss = objective(x)["total"]
        loss.backward()
        return loss
    torch.optim.LBFGS([x], lr=1.0, max_iter=steps, max_eval=2 * steps + 10, tolerance_grad=-math.inf,
                      tolerance_change=-math.inf, history_size=100, line_search_fn=None).step(closure)
    assert len(seen) == steps
    for (k, snap), want in zip(res.snapshots, seen):
        assert torch.allclose(snap, want, rtol=0, atol=1e-6), k
    assert not torch.equal(seen[-1], seen[1])  # it moved


def test_adam_step_size_decays_by_0_8_every_tenth_of_the_run(monkeypatch):
    lrs = []

    class Spy(torch.optim.Adam):
        def step(self, closure=None):
            lrs.append(self.param_groups[0]["lr"])
            return super().step(closure)
    monkeypatch.setattr(torch.optim, "Adam", Spy)
    nstlib.optimize(torch.rand(1, 3, 4, 4), _bowl(torch.full((1, 3, 4, 4), 0.5)), optimizer="adam", steps=20,
                    lr=0.1)
    assert lrs == pytest.approx([0.1 * 0.8 ** (i // 2) for i in range(20)])


# ---------------------------------------------------------------- live weights (issue 16, engine side)
@pytest.mark.parametrize("optimizer", ["lbfgs", "adam"])
def test_a_style_weight_changed_mid_run_applies_from_the_next_step(optimizer, random_vgg, tiny_content,
                                                                   tiny_style, monkeypatch):
    made = []
    cls = getattr(torch.optim, "LBFGS" if optimizer == "lbfgs" else "Adam")

    class Spy(cls):  # type: ignore[misc, valid-type]
        def __init__(self, *a, **k):
            made.append(1)
            super().__init__(*a, **k)
    monkeypatch.setattr(torch.optim, cls.__name__, Spy)
    wanted = {}

    def controls(step):
        return wanted or None

    def callback(step, image, losses):
        if step == 3:  # as if a slider moved while step 3 was shown
            wanted["style_weight"] = 1e6
    res = stylize(tiny_content, tiny_style, extractor=random_vgg, size=32, steps=6, every=1, optimizer=optimizer,
                  callback=callback, controls=controls, **FAST)
    assert [h["style_weight"] for h in res.history] == [1e4, 1e4, 1e4, 1e6, 1e6, 1e6]
    for h in res.history:
        want = h["content_weight"] * h["content"] + h["style_weight"] * h["style"] + h["tv_weight"] * h["tv"]
        assert h["total"] == pytest.approx(want, rel=1e-5)
    assert len(made) == (2 if optimizer == "lbfgs" else 1)  # L-BFGS restarts its history; Adam continues
    assert res.best_step >= 4  # the best image is chosen under the weights in force


def test_set_weights_keeps_the_targets_and_switches_a_term_on(random_vgg, tiny_content, tiny_style):
    obj = nstlib.Objective(random_vgg, tiny_content, tiny_style, ["relu2_1"], ["relu1_1"], 1.0, 0.0, 0.0)
    assert obj.style_grams == {} and obj(tiny_content)["style"] == 0
    targets = obj.content_targets
    obj.set_weights(style_weight=10.0)
    assert obj.content_targets is targets and set(obj.style_grams) == {"relu1_1"}
    x = (0.5 * tiny_content + 0.25).requires_grad_(True)
    losses = obj.loss_and_grad(x)
    assert losses["total"].item() == pytest.approx(losses["content"].item() + 10 * losses["style"].item(), rel=1e-5)
    assert x.grad is not None and x.grad.abs().sum() > 0 and not losses["total"].requires_grad


def test_continue_from_a_given_image(random_vgg, tiny_content, tiny_style):
    first = stylize(tiny_content, tiny_style, extractor=random_vgg, size=32, steps=2, **FAST)
    seen = []
    stylize(tiny_content, tiny_style, extractor=random_vgg, size=32, steps=1, every=1, init=first.image,
            callback=lambda step, img, losses: seen.append(img), **FAST)
    assert torch.allclose(seen[0], first.image, atol=1e-6)


# ---------------------------------------------------------------- the CLI builds the same spec
def test_cli_exposes_every_option_of_the_spec(capsys):
    from nstlib import cli
    parser = cli.build_parser()
    flags = {a.dest for a in parser._actions}
    fields = {f.name for f in dataclasses.fields(Transfer)} - {"content", "style", "every"}
    assert fields <= flags | {"more_styles"}, fields - flags
    code = cli.main(["tower_bridge", "starry_night", "--show", "--precision", "bf16", "--scales", "2", "--size", "64",
                     "--steps", "3,4", "--content-layers", "relu3_1", "--style-layer-weights", "relu1_1=2",
                     "--device", "cpu"])
    out = capsys.readouterr().out
    assert code == 0 and "precision            'bf16'" in out and "scales               2" in out
    assert "steps                (3, 4)" in out and "('relu3_1',)" in out and "{'relu1_1': 2.0}" in out


@pytest.mark.parametrize("argv, code", [(["--save-every", "-1"], 2), (["--device", "gpu0"], 1),
                                        (["--seed", "abc"], 2), (["--style-weight", "1e39"], 1),
                                        (["--size", "0"], 1), (["--lr", "inf"], 1), (["--scales", "0"], 1)])
def test_cli_refuses_bad_values_without_a_traceback(argv, code, capsys):
    from nstlib import cli
    try:
        got = cli.main(["tower_bridge", "starry_night", "--weights", "random", "--quiet"] + argv)
    except SystemExit as e:
        got = e.code
    err = capsys.readouterr().err
    assert got == code and "Traceback" not in err and err.strip(), err
