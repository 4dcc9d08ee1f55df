"""Headless tests of the playground (nstlib.playground.Playground): no browser, no kernel.

Widgets are plain Python objects here: we set their values and call the button handlers the
way a click would. Tiny images (32 px) and random weights keep every run short.
"""
from __future__ import annotations

import datetime
import html
import io
import time

import ipywidgets as widgets
import pytest
import torch
from PIL import Image

import nstlib
from nstlib.errors import LayerError
from nstlib.examples import example_path
from nstlib.playground.runner import PNG_MAGIC, PlaygroundRun, uploaded_files
from nstlib.playground.app import CONTENT_CHOICES, STYLE_CHOICES, Playground

LAYERS = list(CONTENT_CHOICES + STYLE_CHOICES)


@pytest.fixture(scope="module")
def ext():
    return nstlib.VGGFeatures(layers=LAYERS, weights="random", device="cpu")


@pytest.fixture
def pg(ext, tmp_path):
    return Playground("tower_bridge", "starry_night", steps=3, size=32, extractor=ext,
                      weights="random", results_dir=tmp_path / "results", preview=False)


def _png(value) -> bytes:
    return bytes(value)  # ipywidgets 8 hands back a memoryview, 7 bytes


def _until(cond, timeout=120.0):
    end = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > end:
            raise AssertionError("timed out waiting for the playground")
        time.sleep(0.02)


def _status(pg: Playground) -> str:
    return html.unescape(pg.status.value)


def _click(button: widgets.Button) -> None:
    button.click()  # runs the on_click handlers, as a click in the browser does


def test_tree_has_every_control(pg):
    assert isinstance(pg, widgets.VBox)
    for s in (pg.alpha, pg.beta, pg.gamma):
        assert isinstance(s, widgets.FloatLogSlider)
    assert set(pg.layer_on) == set(STYLE_CHOICES) and set(pg.layer_w) == set(STYLE_CHOICES)
    assert list(pg.content_layer.options) == list(CONTENT_CHOICES)
    assert list(pg.pooling.options) == ["max", "avg"] and list(pg.optimizer.options) == ["lbfgs", "adam"]
    assert "starry_night" in pg.style_picker.dropdown.options
    for picker in (pg.content_picker, pg.style_picker):
        assert _png(picker.thumb.value)[:8] == PNG_MAGIC
        assert isinstance(picker.upload, widgets.FileUpload)
    assert pg.stop_button.disabled and not pg.run_button.disabled and pg.save_button.disabled


def test_controls_set_the_parameters(pg):
    pg.alpha.value, pg.beta.value, pg.gamma.value = 10.0, 1e5, 0.5
    pg.layer_on["relu5_1"].value = False
    pg.layer_w["relu1_1"].value = 2.5
    pg.content_layer.value = "relu2_2"
    pg.style_picker.dropdown.value = "great_wave"
    p = pg.params
    assert (p["alpha"], p["beta"], p["gamma"]) == pytest.approx((10.0, 1e5, 0.5))
    assert p["style_layers"] == ["relu1_1", "relu2_1", "relu3_1", "relu4_1"]
    assert p["style_layer_weights"]["relu1_1"] == 2.5 and "relu5_1" not in p["style_layer_weights"]
    assert p["content_layer"] == "relu2_2" and p["style_name"] == "great_wave"


def test_run_fills_the_image_with_png_and_reuses_the_extractor(pg, ext):
    pg.beta.value = 1e5
    res = pg.run(wait=True)
    assert _png(pg.image.value)[:8] == PNG_MAGIC
    assert _png(pg.plot.value)[:8] == PNG_MAGIC
    assert pg.progress.value == pg.progress.max == 3
    assert res.stopped == "done" and len(res.history) == 3
    assert res.params["style_weight"] == 1e5 and "3 steps, 32 px" in pg.run_info.value
    assert "done after 3 steps" in _status(pg)
    assert "RANDOM WEIGHTS" in pg.banner.value
    assert pg._cache.ext is ext and pg._cache.builds == 0  # the given extractor was reused
    pg.run(wait=True)
    assert pg._cache.builds == 0
    pg.pooling.value = "avg"  # a new pooling needs a new network, built once
    pg.run(wait=True)
    assert pg._cache.ext.pooling == "avg" and pg._cache.builds == 1
    assert not pg.save_button.disabled and not pg.run_button.disabled


def test_run_button_runs_in_the_background(pg, monkeypatch):
    import threading

    import nstlib.playground.runner as runner
    gate, real = threading.Event(), runner.run

    def held(*args, **kwargs):  # the run cannot finish before the test lets it
        assert gate.wait(120), "the test never released the run"
        return real(*args, **kwargs)
    monkeypatch.setattr(runner, "run", held)
    _click(pg.run_button)  # returns while the run is held: it runs in another thread
    assert pg.running and pg.result is None
    gate.set()
    res = pg.wait(120)
    assert res is not None and res.stopped == "done"
    assert _png(pg.image.value)[:8] == PNG_MAGIC and not pg.running


def test_stop_ends_early_and_keeps_the_best_image(pg):
    pg.steps.value = 1000
    _click(pg.run_button)
    _until(lambda: pg.progress.value >= 3)
    assert not pg.stop_button.disabled
    _click(pg.stop_button)
    res = pg.wait(120)
    assert res.stopped == "callback" and 3 <= len(res.history) < 1000
    best = min(res.history, key=lambda h: h["total"])
    assert res.best_step == best["step"]
    assert "stopped after" in _status(pg)
    assert pg.stop_button.disabled and not pg.run_button.disabled


def test_an_error_shows_in_the_ui(tmp_path):
    shallow = nstlib.VGGFeatures(layers=["relu2_1"], weights="random", device="cpu")
    pg = Playground("tower_bridge", "starry_night", steps=2, size=32, extractor=shallow,
                    results_dir=tmp_path)
    _click(pg.run_button)  # content layer relu4_2 is deeper than this extractor
    pg.wait(60)
    assert isinstance(pg.error, LayerError)
    assert "error: LayerError" in _status(pg) and "relu4_2" in _status(pg)
    assert not pg.run_button.disabled and pg.stop_button.disabled
    with pytest.raises(LayerError):
        pg.run(wait=True)


def test_a_bad_upload_shows_in_the_ui(pg):
    pg.content_picker._on_upload({"new": ({"name": "broken.png", "content": memoryview(b"not a png")},)})
    assert "could not use 'broken.png'" in _status(pg)
    assert "upload: broken.png" not in pg.content_picker.dropdown.options


def _png_file(color=(200, 30, 30)) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (40, 24), color).save(buf, format="PNG")
    return buf.getvalue()


def test_uploaded_files_reads_ipywidgets_7_and_8_shapes():
    data = _png_file()
    v8 = ({"name": "a.png", "type": "image/png", "size": len(data), "content": memoryview(data),
           "last_modified": datetime.datetime.now(datetime.timezone.utc)},)
    v7 = {"a.png": {"metadata": {"name": "a.png", "type": "image/png", "size": len(data)},
                    "content": data}}
    assert uploaded_files(v8) == uploaded_files(v7) == [("a.png", data)]
    assert uploaded_files(()) == uploaded_files({}) == []


def _upload_value(name: str, data: bytes):
    """What FileUpload.value holds after a browser upload, in this ipywidgets' own shape."""
    if int(widgets.__version__.split(".")[0]) >= 8:
        return ({"name": name, "type": "image/png", "size": len(data), "content": memoryview(data),
                 "last_modified": datetime.datetime.now(datetime.timezone.utc)},)
    return {name: {"metadata": {"name": name, "type": "image/png", "size": len(data)}, "content": data}}


def test_an_upload_becomes_the_content(pg):
    # set_trait: FileUpload.value is read-only in ipywidgets 7 (the browser sets it)
    pg.content_picker.upload.set_trait("value", _upload_value("my photo.png", _png_file()))
    assert pg.content_picker.dropdown.value == "upload: my photo.png"
    assert _png(pg.content_picker.thumb.value)[:8] == PNG_MAGIC
    p = pg.params
    assert p["content_name"] == "my_photo"
    res = pg.run(wait=True)
    assert res.name.startswith("my_photo+starry_night_")
    assert res.image.shape[-2:] == (19, 32)  # the upload's 40x24 aspect, longest side 32


def test_save_writes_a_parameter_encoded_file_and_never_overwrites(pg, tmp_path):
    assert pg.save() is None and "press Run first" in _status(pg)
    pg.beta.value, pg.gamma.value = 1e5, 2.0
    _click(pg.run_button)
    pg.wait(120)
    _click(pg.save_button)
    first = tmp_path / "results" / "tower_bridge+starry_night_lbfgs_cw1_sw1e5_tv2_s32.jpg"
    assert first.is_file() and Image.open(first).size == (32, 16)
    assert "saved" in _status(pg) and "random weights" in _status(pg)
    second = pg.save()
    assert second == first.with_name(first.stem + "_1.jpg") and second.is_file() and first.is_file()


def test_tensors_and_paths_are_accepted(ext, tmp_path):
    content = torch.rand(1, 3, 20, 30)
    style_path = example_path("great_wave")
    pg = Playground(content, str(style_path), steps=2, size=32, extractor=ext, results_dir=tmp_path)
    p = pg.params
    assert p["content"] is content and p["content_name"] == "content" and p["style_name"] == "great_wave"
    assert pg.run(wait=True).image.shape == (1, 3, 21, 32)
    with pytest.raises(nstlib.ImageError):
        Playground("no_such_picture", "starry_night", extractor=ext)


class _View:
    def __init__(self):
        self.frames, self.plots, self.progress, self.status = 0, 0, [], ""

    def show_frame(self, png): self.frames += 1
    def show_plot(self, png): self.plots += 1
    def show_progress(self, step, steps): self.progress.append(step)
    def set_status(self, text, error=False): self.status = text
    def warn(self, text): pass


def test_frames_are_throttled_and_stop_is_honoured():
    view = _View()
    now = [100.0]
    spec = nstlib.Transfer("tower_bridge", "starry_night", steps=80, weights="random")
    run = PlaygroundRun(spec, view, fps=4.0, plot_every_s=1.0, clock=lambda: now[0])
    img = torch.rand(1, 3, 16, 16)
    losses = {"total": 1.0, "content": 0.5, "style": 0.1, "tv": 0.01}
    assert all(run.callback(s, img, losses) for s in range(1, 41))  # 40 steps at the same instant
    assert view.progress == list(range(1, 41))
    assert view.frames == 1 and view.plots == 1  # the first only: the rest came too soon
    assert run.history[-1]["step"] == 40 and run.history[-1]["style_weight"] == 1e4
    now[0] += 0.3  # a quarter second later: a new frame, but not yet a new plot
    run.callback(41, img, losses)
    run.callback(42, img, losses)
    assert view.frames == 2 and view.plots == 1
    now[0] += 1.0
    run.callback(43, img, losses)
    assert view.frames == 3 and view.plots == 2
    run.stop.set()
    assert run.callback(44, img, losses) is False
