"""benchmarks/report.py turns measured figures into the verdicts of docs/benchmarks.md.

The figures below are made up, with round medians, so every ratio and verdict in the report is
worked out by hand here: a report that printed a wrong ratio, or "met" for a missed target, fails.
Nothing is measured (the timed runs are the benchmark's job, not the tests'); ``run.py --only
render`` is exercised on the same figures, in a subprocess, without measuring.
"""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))
import report  # noqa: E402  (benchmarks/report.py)

STAMP = {"date": "2026-01-01 00:00 UTC", "wall": 10.0, "load": [1.0, 1.5]}
MACHINE = {"cpu": "test cpu", "cores": 2, "ram_gb": 8, "torch": "x", "threads": 2, "python": "3", "os": "os",
           "cuda": None}


def _results(adam: float = 1.3, batch: float = 10.0, multi: float | None = 40.0) -> dict:
    step = {"size": 32, "device": "cpu", "steps": 3, "bound": [0.9, 1.0, 1.1], "lbfgs": [1.1, 1.1, 1.2],
            "adam": [adam] * 3, "peak_rss_mb": 512, "target_loss": 2.5, "lbfgs_to_target": 1.0,
            "adam_to_target": 2.0, **STAMP}
    return {"machine": MACHINE, "steps": {"cpu:32": step},
            "sweep": {"size": 32, "steps": 2, "optimizer": "lbfgs", "batch": [batch, batch + 2, batch - 2],
                      "separate": [30.0], "max_rel_loss_diff": 0.01, **STAMP},
            "multiscale": {"size": 64, "steps": 3, "sides": [32, 64], "coarse_steps": [2], "target_loss": 5.0,
                           "single_seconds": 100.0, "multi_seconds_to_target": multi, "multi_full_size_steps": 1,
                           "multi_final_loss": 6.0, **STAMP}}


def _targets(res: dict) -> str:
    return "\n".join(report._targets(res))


def test_the_targets_show_the_ratios_of_the_medians_and_the_right_verdicts():
    text = _targets(_results())
    # step cost: medians 1.1 / 1.0 and 1.3 / 1.0; the worst (1.30) misses the 1.15 target
    assert "32 px 1.10 / 1.30" in text and "not met (worst 1.30)" in text
    # sweep: 30 s for nine runs against a median batch of 10 s = 3.00 x >= 1.5
    assert "3.00 x (30 s vs 10 s) | met" in text
    # multi-scale: 40 s against 100 s = 0.40 x <= 0.5
    assert "0.40 x (40 s vs 100 s) | met" in text


@pytest.mark.parametrize("kw, verdict", [
    ({"adam": 1.15}, "| met (worst 1.15)"),                # exactly at the target
    ({"batch": 25.0}, "1.20 x (30 s vs 25 s) | not met"),  # 30 / 25
    ({"multi": 60.0}, "0.60 x (60 s vs 100 s) | not met"),
    ({"multi": None}, "did not reach the single-scale loss 5 (ended at 6) | not met"),
])
def test_a_missed_or_met_target_says_so(kw, verdict):
    assert verdict in _targets(_results(**kw))


def test_the_load_line_says_whether_the_machine_was_shared():
    res = _results()
    assert "otherwise idle" in report._load(res) and "1.5 on 2 cores" in report._load(res)
    res["sweep"]["load"] = [3.0, 2.0]  # above 1.25 x 2 cores
    assert "was shared" in report._load(res) and "up to 3 on 2 cores" in report._load(res)


def test_run_py_renders_the_document_from_a_results_file_without_measuring(tmp_path):
    results, out = tmp_path / "results.json", tmp_path / "benchmarks.md"
    results.write_text(json.dumps(_results()))
    proc = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "run.py"), "--only", "render",
                           "--results", str(results), "--out", str(out)], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    doc = out.read_text()
    # the steps row: medians bound 1.000, L-BFGS 1.100 (1.10 x), Adam 1.300 (1.30 x), 512 MB
    assert "| cpu | 32 | 1.000 | 1.100 | 1.10 | 1.300 | 1.30 | 512 | 2.5 | 1.0 | 2.0 | 3x / 3 steps | 1.0-1.5 |" in doc
    assert "3.00 x (30 s vs 10 s) | met" in doc
    assert "Not measured yet (`python benchmarks/run.py --only options`)" in doc
    assert json.loads(results.read_text())["steps"]["cpu:32"]["adam"] == [1.3] * 3  # the figures are kept
