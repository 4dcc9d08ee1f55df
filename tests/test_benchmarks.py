"""benchmarks/run.py works end to end (tiny sizes, into a temporary folder). It asserts what the
script produces, never how fast anything is: the figures live in docs/benchmarks.md."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_benchmark_script_measures_and_writes_its_report(tmp_path):
    results, out = tmp_path / "results.json", tmp_path / "benchmarks.md"
    cmd = [sys.executable, str(ROOT / "benchmarks" / "run.py"), "--sizes", "32", "--repeats", "1", "--steps", "3",
           "--only", "steps", "sweep", "multiscale", "--devices", "cpu", "--sweep-size", "32", "--sweep-steps", "2",
           "--ms-size", "64", "--ms-steps", "3", "--ms-coarse", "2", "--results", str(results), "--out", str(out)]
    env = {**os.environ, "NSTLIB_OFFLINE": "1"}
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    res = json.loads(results.read_text())
    row = res["steps"]["cpu:32"]
    assert row["bound"] and row["lbfgs"] and row["adam"] and row["peak_rss_mb"] > 0
    assert len(res["sweep"]["bound_9"]) == 1 and res["multiscale"]["sides"] == [32, 64]
    doc = out.read_text()
    for heading in ("## Targets", "## Steps", "## Sweep", "## Multi-scale", "## Speed options"):
        assert heading in doc
    assert "| cpu | 32 |" in doc and "Step cost <= 1.15 x the bound" in doc
    assert "Not measured yet (`python benchmarks/run.py --only options`)" in doc
