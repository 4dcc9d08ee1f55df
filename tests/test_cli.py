"""``python -m nstlib CONTENT STYLE``, end to end on tiny images.

The subprocess runs are kept offline: TORCH_HOME is a temporary folder and HTTP(S) goes through a
proxy address where nothing listens, so the ImageNet download fails at once (as it would on a
machine without internet) and NSTLIB_OFFLINE=1 takes over with random weights.
"""
from __future__ import annotations

import dataclasses

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

import nstlib
from nstlib import cli, load_image
from nstlib.transfer import CONTENT_WEIGHT, STYLE_WEIGHT, TV_WEIGHT, format_name

pytestmark = [pytest.mark.filterwarnings("ignore::nstlib.RandomWeightsWarning"),
              pytest.mark.usefixtures("one_thread")]


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _run(args: list[str], cwd: Path, offline: bool = True) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items()
           if k not in ("NSTLIB_WEIGHTS", "NSTLIB_OFFLINE", "NSTLIB_QUICK") and not k.lower().endswith("_proxy")}
    proxy = f"http://127.0.0.1:{_closed_port()}"
    env.update(TORCH_HOME=str(cwd / "torch_home"), HTTPS_PROXY=proxy, https_proxy=proxy,
               HTTP_PROXY=proxy, http_proxy=proxy, NO_PROXY="", no_proxy="",
               OMP_NUM_THREADS="1")  # tiny images; extra threads only spin on a busy machine
    if offline:
        env["NSTLIB_OFFLINE"] = "1"
    return subprocess.run([sys.executable, "-m", "nstlib", *args], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=300)


def test_cli_end_to_end_offline(tmp_path):
    out = tmp_path / "out" / "bridge.jpg"
    proc = _run(["tower_bridge", "starry_night", "--size", "32", "--steps", "3", "-o", str(out)], tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert out.is_file()
    img = load_image(out, device="cpu")
    assert img.shape == (1, 3, 16, 32)  # tower_bridge is 2:1, longest side 32
    assert f"saved {out}" in proc.stdout and "after 3 steps" in proc.stdout
    assert "RandomWeightsWarning" in proc.stderr and "NOT meaningful" in proc.stderr  # the loud warning
    assert "RANDOM weights" in proc.stderr  # the closing note
    assert "VGGFeatures(" not in proc.stderr and "stylize(" not in proc.stderr  # no source lines
    assert "Traceback" not in proc.stderr
    assert not (tmp_path / "torch_home" / "hub" / "checkpoints" / "vgg19-dcbb9e9d.pth").exists()


def test_cli_without_offline_explains_how_to_get_the_weights(tmp_path):
    proc = _run(["tower_bridge", "starry_night", "--size", "32", "--steps", "1"], tmp_path, offline=False)
    assert proc.returncode == 1
    assert "vgg19-dcbb9e9d.pth" in proc.stderr and "NSTLIB_OFFLINE" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert not list(tmp_path.glob("*.jpg"))


def test_cli_bad_arguments_exit_nonzero_without_traceback(tmp_path):
    proc = _run(["tower_bridge", "starry_night", "--steps", "many"], tmp_path)
    assert proc.returncode == 2
    assert "usage:" in proc.stderr and "--steps" in proc.stderr and "'many'" in proc.stderr
    assert "Traceback" not in proc.stderr
    proc = _run(["no_such_picture", "starry_night", "--size", "32", "--steps", "1"], tmp_path)
    assert proc.returncode == 1
    assert "no_such_picture" in proc.stderr and "Traceback" not in proc.stderr
    assert not list(tmp_path.glob("*.jpg"))


def test_cli_default_output_name_in_cwd(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    code = cli.main(["tower_bridge", "starry_night", "--size", "32", "--steps", "2", "--weights", "random",
                     "--quiet"])
    assert code == 0
    name = format_name("tower_bridge", "starry_night", "lbfgs", CONTENT_WEIGHT, STYLE_WEIGHT, TV_WEIGHT, 32)
    assert name.startswith("tower_bridge+starry_night_lbfgs_cw1_sw1e4_tv") and name.endswith("_s32.jpg")
    assert (tmp_path / name).is_file()
    assert [p.name for p in tmp_path.iterdir()] == [name]
    captured = capsys.readouterr()
    assert name in captured.out and "RANDOM" in captured.err
    # a second run never overwrites: it adds _1
    assert cli.main(["tower_bridge", "starry_night", "--size", "32", "--steps", "1", "--weights", "random",
                     "--quiet"]) == 0
    assert (tmp_path / name.replace(".jpg", "_1.jpg")).is_file()


def test_cli_options_reach_stylize(tmp_path, monkeypatch, capsys):
    seen = {}
    real = nstlib.transfer.run

    def spy(spec, **kw):  # the CLI builds one nstlib.Transfer and runs it
        seen.update({f.name: getattr(spec, f.name) for f in dataclasses.fields(spec)})
        return real(spec, **kw)
    monkeypatch.setattr(nstlib.transfer, "run", spy)
    out = tmp_path / "o.png"
    code = cli.main(["chelsea_cat", "great_wave", "-o", str(out), "--content-weight", "2", "--style-weight",
                     "300", "--tv-weight", "0", "--optimizer", "adam", "--steps", "4", "--size", "32",
                     "--init", "noise", "--pooling", "avg", "--arch", "vgg16", "--seed", "5", "--save-every", "2",
                     "--weights", "random", "--quiet"])
    assert code == 0
    assert (seen["content"], seen["style"]) == ("chelsea_cat", "great_wave")
    assert (seen["content_weight"], seen["style_weight"], seen["tv_weight"]) == (2.0, 300.0, 0.0)
    assert (seen["optimizer"], seen["steps"], seen["size"], seen["init"]) == ("adam", 4, 32, "noise")
    assert (seen["pooling"], seen["arch"], seen["seed"], seen["weights"]) == ("avg", "vgg16", 5, "random")
    assert out.is_file() and load_image(out, device="cpu").shape[-1] == 32
    assert (tmp_path / "o_step2.jpg").is_file() and (tmp_path / "o_step4.jpg").is_file()
    assert "after 4 steps" in capsys.readouterr().out


def test_cli_missing_image_in_process(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert cli.main(["tower_bridge", str(tmp_path / "nope.jpg"), "--weights", "random", "--steps", "1",
                     "--quiet"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error:") and "nope.jpg" in err
    with pytest.raises(SystemExit) as info:
        cli.main(["tower_bridge", "starry_night", "--optimizer", "sgd"])
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert "lbfgs" in err and "adam" in err  # the choices are listed
