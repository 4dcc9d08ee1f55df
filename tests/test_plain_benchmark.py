"""benchmarks/plain_pytorch.py, the plain PyTorch baseline of issue 18: it computes the same
objective as nstlib (so "time to the same loss" compares like with like), runs the tutorial's
L-BFGS loop, and its measurement and table work end to end. No timing is asserted."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import nstlib

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))
plain = pytest.importorskip("plain_pytorch")
pytestmark = pytest.mark.filterwarnings("ignore::nstlib.RandomWeightsWarning")


def test_the_tutorials_layer_names():
    # the tutorial counts convolutions: its conv_4 is the paper's conv2_2, conv_5 is conv3_1
    assert [plain.tutorial_name(n) for n in ("conv1_1", "conv2_2", "conv3_1", "relu4_2", "pool2")] == \
        ["conv_1", "conv_4", "conv_5", "relu_10", "pool_4"]


@pytest.mark.parametrize("config", ["tutorial", "default"])
def test_the_baseline_computes_nstlibs_objective_and_runs_20_evaluations_per_step(config):
    cnn, state, _ = plain.shared_network()
    content = nstlib.load_image("astronaut", size=32, device="cpu")
    style = nstlib.load_image("starry_night", size=(32, 32), device="cpu")
    losses = []
    plain.run_style_transfer(cnn, content, style, content.clone(), config, 1, record=lambda img, loss: losses.append(loss.item()))
    assert len(losses) == 20  # one LBFGS .step() with its default max_iter=20; `while run <= 1` stops after it
    cl, sl, cw, sw, tvw = plain.CONFIGS[config]
    ext = nstlib.VGGFeatures(layers=cl + sl, weights=state, device="cpu")
    res = nstlib.stylize(content, style, extractor=ext, size=32, content_layers=cl, style_layers=sl,
                         content_weight=cw, style_weight=sw, tv_weight=tvw, steps=3)
    # the same first image (the content) and the same L-BFGS: the same losses, up to float rounding
    assert [h["total"] for h in res.history] == pytest.approx(losses[:3], rel=1e-4)
    judge = plain.Evaluator(cnn, content, style, config)
    assert judge(content) == pytest.approx(losses[0], rel=1e-5)


def test_the_measurement_prints_the_side_by_side_figures():
    cmd = [sys.executable, str(ROOT / "benchmarks" / "measure.py"), "plain", "32", "--config", "tutorial",
           "--steps", "2", "--repeats", "1", "--bf16", "--threads", "1", "--clock", "cpu"]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600, env={**os.environ, "NSTLIB_OFFLINE": "1"})
    assert proc.returncode == 0, proc.stderr[-2000:]
    out = json.loads(next(ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT "))[7:])
    assert out["plain"][0]["evals"] == 20 and out["plain"][0]["best"] > 0
    assert len(out["fp32"]) == 1 and len(out["fp32_ratio"]) == 1 and "bf16" in out
    from report import plain_rows
    out["load"] = [0.5, 0.6]
    row = plain_rows({"plain": {"tutorial:32": out}})[0]
    assert row[:2] == ["tutorial", "32"] and row[4] == "20" and row[-1] == "0.5-0.6"
