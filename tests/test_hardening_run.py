"""Issue 6, hardening (part 2): runs that go wrong keep their best image; results never overwrite.

NaN/inf, Ctrl-C, a callback saying stop, running out of memory, saving onto an existing file.
"""
from __future__ import annotations

import re
import warnings

import numpy as np
import pytest
import torch
from PIL import Image

import nstlib
from nstlib import cli

OPTIMIZERS = ["lbfgs", "adam"]


def _objective(bad_at=(), value=float("nan"), record=None, exc=None):
    """A quadratic with its minimum at a grey image; at the calls in ``bad_at`` (1-based) the
    loss is multiplied by ``value`` (NaN or inf), or ``exc`` is raised."""
    target = torch.full((1, 3, 16, 16), 0.25)
    calls = [0]

    def objective(x):
        calls[0] += 1
        if exc is not None and calls[0] in bad_at:
            raise exc
        loss = 100 * ((x - target) ** 2).mean()
        if record is not None:
            record.append(x.detach().clone())
        if calls[0] in bad_at:
            loss = loss * value
        return {"total": loss, "content": loss.detach(), "style": loss.new_zeros(()), "tv": loss.new_zeros(())}
    return objective


def _init():
    return torch.rand(1, 3, 16, 16, generator=torch.Generator().manual_seed(0))


def _runtime_warnings(record):
    return [str(w.message) for w in record if issubclass(w.category, RuntimeWarning)]


# ---------------------------------------------------------------- NaN / inf
@pytest.mark.parametrize("optimizer", OPTIMIZERS)
@pytest.mark.parametrize("value", [float("nan"), float("inf")])
def test_a_nan_or_inf_step_rolls_back_lowers_the_step_and_warns_once(optimizer, value, monkeypatch):
    made = []  # the step size of every optimizer built: a new one means a fresh L-BFGS history
    cls = getattr(torch.optim, {"lbfgs": "LBFGS", "adam": "Adam"}[optimizer])

    class Spy(cls):
        def __init__(self, params, **kw):
            made.append(kw["lr"])
            super().__init__(params, **kw)
    monkeypatch.setattr(torch.optim, cls.__name__, Spy)
    with warnings.catch_warnings(record=True) as rec:
        warnings.simplefilter("always")
        res = nstlib.optimize(_init(), _objective(bad_at={4, 9}, value=value), optimizer=optimizer, steps=15)
    lr0 = nstlib.engine.default_lr(optimizer)
    assert made == [lr0, lr0 / 2, lr0 / 4]
    msgs = _runtime_warnings(rec)
    assert len(msgs) == 1 and "NaN/inf at step 4" in msgs[0] and "rolled back" in msgs[0], msgs
    assert res.stopped == "done" and [h["step"] for h in res.history] == [s for s in range(1, 16) if s not in (4, 9)]
    assert torch.isfinite(res.image).all() and res.losses["total"] < res.history[0]["total"]


@pytest.mark.parametrize("optimizer", OPTIMIZERS)
def test_repeated_nan_stops_and_returns_the_best_image_with_a_message(optimizer):
    seen = []
    with warnings.catch_warnings(record=True) as rec:
        warnings.simplefilter("always")
        res = nstlib.optimize(_init(), _objective(bad_at=set(range(4, 100)), record=seen),
                              optimizer=optimizer, steps=30)
    msgs = _runtime_warnings(rec)
    assert len(msgs) == 2 and "kept diverging" in msgs[1] and "best image" in msgs[1], msgs
    assert res.stopped == "diverged" and len(res.history) == 3
    best = min(res.history, key=lambda h: h["total"])
    assert res.best_step == best["step"] and torch.equal(res.image, seen[best["step"] - 1])


@pytest.mark.parametrize("optimizer", OPTIMIZERS)
def test_nan_in_the_image_itself_is_rolled_back(optimizer):
    def objective(x):
        loss = 100 * ((x - 0.25) ** 2).mean()
        if objective.calls == 3:
            with torch.no_grad():
                x[0, 0, 0, 0] = float("nan")  # as if an update had produced NaN pixels
        objective.calls += 1
        return {"total": loss}
    objective.calls = 0
    with pytest.warns(RuntimeWarning, match="NaN/inf"):
        res = nstlib.optimize(_init(), objective, optimizer=optimizer, steps=10)
    assert torch.isfinite(res.image).all() and res.stopped == "done"


def test_a_non_finite_initial_image_is_refused():
    bad = _init()
    bad[0, 1, 2, 3] = float("nan")
    with pytest.raises(nstlib.ImageError, match="finite"):
        nstlib.optimize(bad, _objective(), steps=3)


# ---------------------------------------------------------------- Ctrl-C and the callback
@pytest.mark.parametrize("optimizer", OPTIMIZERS)
def test_keyboard_interrupt_returns_the_best_image_so_far(optimizer):
    seen = []
    res = nstlib.optimize(_init(), _objective(bad_at={7}, exc=KeyboardInterrupt(), record=seen),
                          optimizer=optimizer, steps=50, every=2)
    assert res.stopped == "interrupted"
    assert [h["step"] for h in res.history] == [1, 2, 3, 4, 5, 6]
    assert [k for k, _ in res.snapshots] == [2, 4, 6]
    assert torch.equal(res.image, seen[res.best_step - 1]) and res.losses["step"] == res.best_step


@pytest.mark.parametrize("optimizer", OPTIMIZERS)
def test_callback_returning_false_stops_with_history_intact(optimizer):
    calls = []

    def callback(step, image, losses):
        calls.append(step)
        return step < 6
    res = nstlib.optimize(_init(), _objective(), optimizer=optimizer, steps=50, every=3, callback=callback)
    assert res.stopped == "callback" and calls == [3, 6] and len(res.history) == 6
    assert res.image.shape == (1, 3, 16, 16) and res.losses["total"] == min(h["total"] for h in res.history)


@pytest.mark.parametrize("optimizer", OPTIMIZERS)
def test_a_callback_that_raises_stops_the_run_but_keeps_the_result(optimizer):
    def broken(step, image, losses):
        if step == 4:
            raise OSError("disk full")
    with pytest.warns(RuntimeWarning, match="callback raised OSError: disk full"):
        res = nstlib.optimize(_init(), _objective(), optimizer=optimizer, steps=50, every=2, callback=broken)
    assert res.stopped == "callback error" and len(res.history) == 4 and res.best_step >= 1


# ---------------------------------------------------------------- out of memory
@pytest.fixture(scope="module")
def ext():
    layers = list(nstlib.transfer.CONTENT_LAYERS) + list(nstlib.transfer.STYLE_LAYERS)
    return nstlib.VGGFeatures("vgg19", layers, weights="random", device="cpu")


OOM = {"cuda": torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB"),
       "mps": RuntimeError("MPS backend out of memory (MPS allocated: 8.00 GB)"),
       "cpu": RuntimeError("DefaultCPUAllocator: not enough memory: you tried to allocate 4 GB")}


@pytest.mark.parametrize("at_call, kind", [(1, "cuda"), (4, "cuda"), (4, "mps"), (4, "cpu")])
def test_out_of_memory_gives_advice_with_a_size_that_fits(ext, monkeypatch, at_call, kind):
    """at_call 1: while computing the targets; 4: during the optimization."""
    calls, forward = [0], ext.forward

    def hungry(*args, **kwargs):
        calls[0] += 1
        if calls[0] == at_call:
            raise OOM[kind]
        return forward(*args, **kwargs)
    monkeypatch.setattr(ext, "forward", hungry)
    with pytest.raises(nstlib.OutOfMemoryError) as err:
        nstlib.stylize(torch.rand(3, 64, 48), torch.rand(3, 64, 64), extractor=ext, size=64, steps=5)
    msg = str(err.value)
    assert isinstance(err.value, nstlib.NSTError) and "out of memory" in msg and "size=64" in msg
    fit = int(re.search(r"about size=(\d+) should fit", msg).group(1))
    assert 16 <= fit < 64


def test_other_runtime_errors_are_not_mistaken_for_out_of_memory(ext, monkeypatch):
    monkeypatch.setattr(ext, "forward", lambda *a, **k: (_ for _ in ()).throw(RuntimeError("shape mismatch")))
    with pytest.raises(RuntimeError, match="shape mismatch"):
        nstlib.stylize(torch.rand(3, 64, 48), None, extractor=ext, size=64, steps=2)


def test_out_of_memory_estimate_scales_with_free_memory():
    fit = nstlib.memory.fitting_side
    per_px = nstlib.memory.BYTES_PER_PIXEL
    assert fit(1024, free=int(512 * 512 * per_px / 0.8)) == 512
    assert fit(1024, aspect=2.0, free=int(512 * 256 * per_px / 0.8)) == 512
    assert fit(512, free=None) == 352  # unknown memory: half the pixels, rounded down to 16
    assert fit(512, free=10**12) == 448  # never more than 0.9 x the size that failed


def test_cli_reports_out_of_memory_without_a_traceback(monkeypatch, tmp_path, capsys):
    def oom(*a, **k):
        raise torch.OutOfMemoryError("CUDA out of memory")
    monkeypatch.setattr(nstlib.stage, "Objective", oom)
    code = cli.main([str(_photo(tmp_path / "c.png")), str(_photo(tmp_path / "s.png")), "--size", "64",
                     "--steps", "2", "--weights", "random", "--device", "cpu", "--quiet"])
    err = capsys.readouterr().err
    assert code == 1 and "out of memory" in err and "size=" in err and "Traceback" not in err


# ---------------------------------------------------------------- never overwrite
def _photo(path, seed=0):
    arr = np.random.default_rng(seed).integers(0, 256, (40, 48, 3), dtype=np.uint8)
    Image.fromarray(arr).save(path)
    return path


def test_save_image_never_overwrites(tmp_path):
    src = _photo(tmp_path / "cat.png")
    before = src.read_bytes()
    first = nstlib.save_image(torch.zeros(1, 3, 8, 8), src)
    second = nstlib.save_image(torch.zeros(1, 3, 8, 8), src)
    assert (first.name, second.name) == ("cat_1.png", "cat_2.png") and src.read_bytes() == before


def test_result_save_never_overwrites_the_content_image(ext, tmp_path):
    src = _photo(tmp_path / "content.png")
    before = src.read_bytes()
    res = nstlib.stylize(str(src), torch.rand(3, 40, 40), extractor=ext, size=48, steps=2)
    out = res.save(src)
    assert out == tmp_path / "content_1.png" and src.read_bytes() == before
    (tmp_path / res.name).write_bytes(b"taken")
    assert res.save(folder=tmp_path).name == res.name.replace(".jpg", "_1.jpg")


def test_cli_output_onto_the_content_image_keeps_it(tmp_path, capsys):
    content, style = _photo(tmp_path / "me.jpg", 1), _photo(tmp_path / "art.png", 2)
    before = content.read_bytes()
    code = cli.main([str(content), str(style), "-o", str(content), "--size", "32", "--steps", "2",
                     "--weights", "random", "--device", "cpu", "--quiet"])
    out = capsys.readouterr().out
    assert code == 0 and content.read_bytes() == before
    assert (tmp_path / "me_1.jpg").is_file() and "me_1.jpg" in out


def test_cli_checks_the_output_name_before_running(monkeypatch, tmp_path, capsys):
    monkeypatch.setattr(nstlib.transfer, "run", lambda *a, **k: pytest.fail("ran before checking -o"))
    with pytest.raises(SystemExit) as exit_:
        cli.main(["tower_bridge", "starry_night", "-o", str(tmp_path / "out.gif"), "--quiet"])
    assert exit_.value.code == 2 and ".png" in capsys.readouterr().err


def test_cli_keeps_the_result_when_the_output_folder_is_unwritable(monkeypatch, tmp_path, capsys):
    monkeypatch.setattr(nstlib.transfer, "run", lambda *a, **k: nstlib.Result(
        image=torch.rand(1, 3, 8, 8), name="fallback.jpg", history=[{"step": 1, "total": 1.0, "seconds": 0.1}],
        best_step=1))
    monkeypatch.chdir(tmp_path)
    (tmp_path / "notes.txt").write_text("a file, not a folder")
    code = cli.main(["tower_bridge", "starry_night", "-o", str(tmp_path / "notes.txt" / "out.jpg"), "--quiet"])
    assert code == 0 and (tmp_path / "fallback.jpg").is_file()
    assert "saved the result as fallback.jpg instead" in capsys.readouterr().err


def test_cli_interrupted_before_the_run_exits_cleanly(monkeypatch, capsys):
    def interrupted(*a, **k):
        raise KeyboardInterrupt
    monkeypatch.setattr(nstlib.transfer, "run", interrupted)
    assert cli.main(["tower_bridge", "starry_night", "--quiet"]) == 130
    assert "interrupted" in capsys.readouterr().err
