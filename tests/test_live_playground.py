"""The live playground (issue 16), headless: live weights, continue from here, the preview, the
scrubber and GIF export, compare, warnings routed to the banner. Tiny images, random weights."""
from __future__ import annotations

import io
import time
import warnings

import pytest
import torch
from PIL import Image

import nstlib
from nstlib.playground.live import gif_bytes
from nstlib.playground.runner import PlaygroundRun, loss_plot_png
from nstlib.playground.app import CONTENT_CHOICES, STYLE_CHOICES, Playground


@pytest.fixture(scope="module")
def ext():
    return nstlib.VGGFeatures(layers=list(CONTENT_CHOICES + STYLE_CHOICES), weights="random", device="cpu")


@pytest.fixture
def pg(ext, tmp_path):
    return Playground("tower_bridge", "starry_night", steps=3, size=32, extractor=ext, weights="random",
                      results_dir=tmp_path / "results", preview=False)


class View:
    def __init__(self):
        self.frames, self.plots, self.progress, self.status, self.warned = [], 0, [], "", []

    def show_frame(self, png): self.frames.append(Image.open(io.BytesIO(png)).size)
    def show_plot(self, png): self.plots += 1
    def show_progress(self, step, steps): self.progress.append(step)
    def set_status(self, text, error=False): self.status = text
    def warn(self, text): self.warned.append(text)


def _until(cond, timeout=180.0):
    end = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < end, "timed out waiting for the playground"
        time.sleep(0.02)


def _check_totals(history):
    for h in history:  # a second formula for the engine's total, with the weights in force
        expect = h["content_weight"] * h["content"] + h["style_weight"] * h["style"] + h["tv_weight"] * h["tv"]
        assert h["total"] == pytest.approx(expect, rel=1e-4), h


@pytest.mark.parametrize("optimizer", ["adam", "lbfgs"])
def test_beta_changed_at_step_5_is_in_force_from_step_5(ext, pg, optimizer):
    spec = nstlib.Transfer("tower_bridge", "starry_night", steps=9, size=32, optimizer=optimizer, every=1,
                           weights="random")
    live = {"now": None}

    def weights():
        return live["now"]

    view = View()
    run = PlaygroundRun(spec, view, live=weights)
    orig = run.callback

    def callback(step, image, losses):  # the slider moves after step 4 has been shown
        if step == 4:
            live["now"] = dict(style_weight=1e6)
        return orig(step, image, losses)
    run.callback = callback
    res = run.execute(pg._cache)
    betas = [h["style_weight"] for h in res.history]
    assert betas == [1e4] * 4 + [1e6] * 5
    assert [h["style_weight"] for h in run.history] == betas  # what the live plot drew
    assert run.changes == [(5, "β→1e+06")]
    _check_totals(res.history)
    assert res.params["style_weight"] == 1e6 and "_sw1e6_" in res.name  # made under the final weights
    assert loss_plot_png(res.history, run.changes)[:4] == b"\x89PNG"


def test_the_beta_slider_acts_on_the_running_optimization(pg):
    pg.steps.value, pg.optimizer.value = 1000, "adam"
    pg.run()
    _until(lambda: pg.progress.value >= 3)
    pg.beta.value = 1e7  # moved during the run
    _until(lambda: any(h["style_weight"] == 1e7 for h in pg._run.history))
    pg.stop()
    res = pg.wait(120)
    assert res.stopped == "callback" and len(res.history) < 1000  # Stop still works
    k = next(h["step"] for h in res.history if h["style_weight"] == 1e7)
    assert all(h["style_weight"] == 1e4 for h in res.history if h["step"] < k)
    assert all(h["style_weight"] == 1e7 for h in res.history if h["step"] >= k)
    assert pg._run.changes == [(k, "β→1e+07")]
    _check_totals(res.history)
    assert pg.save().is_file()  # Save still works


def test_per_layer_weights_are_live_and_setup_changes_are_not(pg):
    pg.steps.value, pg.optimizer.value = 1000, "adam"
    pg.run()
    _until(lambda: pg.progress.value >= 3)
    pg.layer_w["relu1_1"].value = 7.0
    _until(lambda: pg._run.changes)
    pg.size.value = 48  # needs a new setup: said so, the run goes on at 32 px
    assert "Continue from here" in pg.status.value
    pg.stop()
    res = pg.wait(120)
    assert pg._run.changes[0][1] == "w_l" and res.image.shape[-1] == 32


def test_continue_from_here_starts_from_the_current_image(pg):
    first = pg.run(wait=True)
    pg.steps.value = 2
    again = pg.continue_from_here(wait=True)
    assert torch.equal(again.spec.init, first.image)
    # a second route: the first step evaluates the objective at the image it continued from
    assert again.history[0]["total"] == pytest.approx(first.losses["total"], rel=1e-4)
    fresh = pg.run(wait=True)  # Run starts from the chosen start image (the content) again
    assert fresh.history[0]["total"] == pytest.approx(first.history[0]["total"], rel=1e-5)
    assert "from the current image" in pg.run_info.value or "from content" in pg.run_info.value


def test_continue_during_a_run_restarts_from_the_current_image(pg):
    pg.steps.value, pg.optimizer.value = 1000, "adam"
    pg.run()
    _until(lambda: pg.progress.value >= 6)
    pg.size.value = 48
    pg.continue_from_here()
    _until(lambda: pg._run is not None and pg._run.spec.size == 48 and pg.progress.value >= 3)
    assert isinstance(pg._run.spec.init, torch.Tensor) and pg._run.spec.init.shape[-1] == 32
    pg.stop()
    res = pg.wait(120)
    assert res.image.shape[-1] == 48 and res.stopped == "callback"


def test_the_preview_shows_a_small_first_frame_then_full_size(ext, pg):
    spec = nstlib.Transfer("tower_bridge", "starry_night", steps=4, size=128, every=1, weights="random")
    view = View()
    run = PlaygroundRun(spec, view, preview_side=32, preview_steps=2)
    res = run.execute(pg._cache)
    assert view.frames[0] == (32, 16) and view.frames[-1] == (128, 64)
    assert run.first_frame_s is not None and res.image.shape[-2:] == (64, 128) and len(res.history) == 4


def test_warnings_go_to_the_banner_once_not_to_stderr(pg):
    spec = nstlib.Transfer("tower_bridge", "starry_night", steps=3, size=32, every=1, weights="random")
    view = View()

    def noisy():
        warnings.warn("slider says hello", UserWarning)
    with warnings.catch_warnings(record=True) as escaped:
        warnings.simplefilter("always")
        PlaygroundRun(spec, view, live=noisy).execute(pg._cache)
    # three steps, one line; the random-weights notice of the unannounced network may come too, once
    assert [w for w in view.warned if "hello" in w] == ["UserWarning: slider says hello"]
    assert len(view.warned) == len(set(view.warned))
    assert not [w for w in escaped if "hello" in str(w.message)]
    pg.warn("RuntimeWarning: x")
    pg.warn("RuntimeWarning: x")
    assert pg.banner.value.count("RuntimeWarning: x") == 1


def test_scrubber_and_gif_return_the_runs_frames(pg, tmp_path):
    pg.steps.value = 6
    res = pg.run(wait=True)
    sc = pg.scrubber
    assert [s for s, _ in sc.snapshots] == [1, 2, 3, 4, 5, 6]  # every step; the last is the final one
    assert sc.slider.max == 5 and sc.slider.value == 5 and "step 6" in sc.step.value and "final" in sc.step.value
    sc.slider.value = 1
    assert sc.step.value == "step 2" and sc.frame[0] == 2
    path = sc.save_frame()
    assert path.name.endswith("_step2.png")
    saved = torch.from_numpy(__import__("numpy").array(Image.open(path))).permute(2, 0, 1)[None] / 255
    assert (saved - res.snapshots[1][1]).abs().max() < 1 / 255 + 1e-6
    gif = Image.open(io.BytesIO(gif_bytes(res.snapshots)))
    assert gif.n_frames == 6 and gif.size == (32, 16)
    for i in (0, 5):
        gif.seek(i)
        frame = torch.from_numpy(__import__("numpy").array(gif.convert("RGB"))).permute(2, 0, 1)[None] / 255
        assert (frame - res.snapshots[i][1]).abs().mean() < 0.03  # a 256-colour palette
    out = sc.export()
    assert out.suffix == ".gif" and Image.open(out).n_frames == 6
    with pytest.raises(ValueError, match="no frames"):
        gif_bytes([])


def test_compare_shows_the_pinned_result_with_its_settings(pg):
    assert pg.compare.pin() is False and "press Run first" in pg.status.value
    first = pg.run(wait=True)
    assert pg.compare.pin() and pg.compare.pinned is first and pg.compare.box.layout.display == "flex"
    assert "β=1e+04" in pg.compare.info.value
    pg.beta.value = 1e6
    second = pg.run(wait=True)
    assert pg.compare.pinned is first and second.params["style_weight"] == 1e6


def test_every_option_of_the_spec_is_reachable(pg):
    pg.precision.value, pg.scales.value, pg.lr.value, pg.seed.value = "bf16", "2", 0.5, 7
    pg.init.value, pg.pooling.value, pg.beyond.arch.value = "noise", "avg", "vgg16"
    s = pg.spec()
    assert (s.precision, s.scales, s.lr, s.seed, s.init, s.pooling, s.arch) == ("bf16", 2, 0.5, 7, "noise", "avg", "vgg16")
    pg.precision.value, pg.beyond.arch.value, pg.pooling.value, pg.size.value = "fp32", "vgg19", "max", 64
    res = pg.run(wait=True)
    assert res.spec.scales == 2


def test_presets_set_the_controls_and_name_their_sources(pg):
    from nstlib.playground.presets import PRESETS, apply_preset
    pg.preset.value = "PyTorch tutorial"
    p = pg.params
    assert p["beta"] == 1e6 and p["content_layer"] == "relu2_2"
    assert p["style_layers"] == ["relu1_1", "relu1_2", "relu2_1", "relu2_2", "relu3_1"]
    assert "conv_4" in PRESETS["PyTorch tutorial"][0] and "conv_4" in pg.status.value
    pg.preset.value = "Gatys et al. (the paper)"
    p = pg.params
    assert (p["pooling"], p["init"], p["optimizer"]) == ("avg", "noise", "lbfgs")
    assert p["style_layers"] == ["relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu5_1"]
    pg.preset.value = "d2l (Dive into Deep Learning)"
    assert (pg.params["optimizer"], pg.params["gamma"]) == ("adam", 44.0)
    with pytest.raises(ValueError, match="unknown preset"):
        apply_preset(pg, "Picasso")
