"""Issue 15: a finished CLI run always ends with the image saved somewhere the output names, or a
clear message and a non-zero exit, never a traceback; SIGTERM is treated like Ctrl-C (the best
image so far is saved, exit 143); a run that made nothing useful says so.
"""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
import torch

import nstlib
from nstlib import cli

LIB = Path(nstlib.__file__).resolve().parents[1]
ARGS = ["tower_bridge", "starry_night", "--weights", "random", "--quiet"]


def _result(**kw) -> nstlib.Result:
    base = dict(image=torch.rand(1, 3, 8, 8), name="made.jpg",
                history=[{"step": 1, "total": 1.0, "seconds": 0.1}], best_step=1)
    return nstlib.Result(**{**base, **kw})


@pytest.fixture
def guard():
    """A SIGTERM handler of the caller's that fails the test if a signal reaches it (instead of
    killing pytest); cli.main must replace it while it runs and put it back afterwards."""
    def reached(signum, frame):
        pytest.fail("SIGTERM reached the caller's handler: cli.main did not handle it")
    old = signal.signal(signal.SIGTERM, reached)
    yield reached
    signal.signal(signal.SIGTERM, old)


@pytest.fixture
def stub_run(monkeypatch, tmp_path):
    """cli.main with the run (nstlib.transfer.run) replaced by ``make(*args, **kwargs)``; run in tmp_path."""
    monkeypatch.chdir(tmp_path)

    def use(make):
        monkeypatch.setattr(nstlib.transfer, "run", make)
    return use


def test_sigterm_during_a_run_saves_the_best_image_and_exits_143(tmp_path):
    out = tmp_path / "out.png"
    proc = subprocess.Popen([sys.executable, "-m", "nstlib", *ARGS, "--size", "32", "--steps", "100000",
                             "--save-every", "1", "-o", str(out)], cwd=tmp_path, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "PYTHONPATH": str(LIB), "NSTLIB_OFFLINE": "1"})
    deadline = time.time() + 180
    while not (tmp_path / "out_step2.jpg").exists():  # the run is under way
        assert proc.poll() is None and time.time() < deadline, proc.communicate()
        time.sleep(0.2)
    proc.send_signal(signal.SIGTERM)
    stdout, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 143, (proc.returncode, stderr[-2000:])
    assert out.is_file() and nstlib.load_image(out, device="cpu").shape[-1] == 32
    assert "terminated (SIGTERM)" in stderr and "best image so far is saved" in stderr
    assert f"saved {out}" in stdout and "interrupted after" in stdout
    assert "Traceback" not in stderr


def test_sigterm_before_the_optimization_started_exits_143_with_a_message(stub_run, guard, capsys):
    def terminated(*a, **k):
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(5)  # the handler interrupts this
        pytest.fail("SIGTERM was not turned into an interruption")
    stub_run(terminated)
    assert cli.main(ARGS) == 143
    assert "terminated (SIGTERM) before any step ran" in capsys.readouterr().err
    assert signal.getsignal(signal.SIGTERM) is guard  # the caller's handler is back


def test_sigterm_while_saving_does_not_lose_the_result(stub_run, guard, monkeypatch, tmp_path, capsys):
    stub_run(lambda *a, **k: _result())
    real = nstlib.Result.save

    def save(self, *a, **k):
        os.kill(os.getpid(), signal.SIGTERM)
        return real(self, *a, **k)
    monkeypatch.setattr(nstlib.Result, "save", save)
    assert cli.main(ARGS) == 143
    assert (tmp_path / "made.jpg").is_file()


def test_when_every_save_fails_the_cli_says_so_and_exits_1(stub_run, monkeypatch, capsys):
    stub_run(lambda *a, **k: _result())
    tried = []

    def broken(self, path=None, folder="."):
        tried.append(str(path))
        raise OSError(28, "No space left on device")  # a raw OSError, not an NSTError
    monkeypatch.setattr(nstlib.Result, "save", broken)
    assert cli.main(ARGS + ["-o", "wanted.png"]) == 1
    err = capsys.readouterr().err
    assert "Traceback" not in err and "could not be saved anywhere" in err
    assert tried == ["wanted.png", "made.jpg", str(Path(tempfile.gettempdir()) / "made.jpg")]
    assert err.count("No space left on device") == 3


def test_the_last_fallback_is_the_temporary_folder(stub_run, monkeypatch, tmp_path, capsys):
    stub_run(lambda *a, **k: _result(name="fallback_test_nstlib.jpg"))
    real = nstlib.Result.save
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "tmp"))
    (tmp_path / "tmp").mkdir()

    def only_tmp(self, path=None, folder="."):
        if not str(path).startswith(str(tmp_path / "tmp")):
            raise nstlib.ImageError(f"could not write {path!r} (read-only)")
        return real(self, path)
    monkeypatch.setattr(nstlib.Result, "save", only_tmp)
    assert cli.main(ARGS + ["-o", "wanted.png"]) == 0
    out = capsys.readouterr()
    assert (tmp_path / "tmp" / "fallback_test_nstlib.jpg").is_file()
    assert f"saved {tmp_path / 'tmp' / 'fallback_test_nstlib.jpg'}" in out.out
    assert "saved the result as" in out.err and "instead" in out.err


@pytest.mark.parametrize("stopped", ["diverged", "done", "interrupted"])
def test_a_run_in_which_no_step_succeeded_says_nothing_useful_was_made(stub_run, tmp_path, capsys, stopped):
    stub_run(lambda *a, **k: _result(history=[], best_step=0, stopped=stopped))
    code = cli.main(ARGS)
    err = capsys.readouterr().err
    assert code == (130 if stopped == "interrupted" else 1)
    assert "nothing useful was made" in err and "No image was saved" in err
    assert not list(tmp_path.glob("*.jpg"))


def test_a_long_content_file_name_still_saves_under_a_shortened_default_name(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    content = tmp_path / ("holiday_photo_" * 17 + ".png")  # 238 characters: fits, the output name does not
    nstlib.save_image(nstlib.example("tower_bridge", size=32), content)
    assert len(content.name) < 255
    code = cli.main([str(content), "starry_night", "--weights", "random", "--size", "32", "--steps", "1",
                     "--quiet"])
    out = capsys.readouterr()
    assert code == 0, out.err
    saved = [p for p in tmp_path.glob("*.jpg")]
    assert len(saved) == 1 and saved[0].name.startswith("holiday_photo_")
    assert saved[0].name.endswith("_s32.jpg") and f"saved {saved[0].name}" in out.out
