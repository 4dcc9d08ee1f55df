"""Plant known bugs one at a time in a scratch copy of the repository and show which tests catch them.

    python tools/planted_bugs.py [NAME ...]        # default: every bug below

Each bug is a one-line edit of a library module (``old`` -> ``new``) and the test files that must
fail for it. The repository is copied to a temporary folder first; the working tree is never
touched. A bug whose ``old`` text is no longer in the module (the code was rewritten) is reported
as "not applicable": update its entry. Exit status 1 if any applicable bug survives its tests.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

#: name -> (module, old text, new text, test files that must fail). The six survivors of issue 13.
BUGS = {
    "engine returns the last image": (
        "nstlib/engine.py", "return Result(image=best.cpu(),", "return Result(image=x.detach().cpu(),",
        ["tests/test_survivors.py::test_optimize_returns_the_best_image_of_a_non_monotone_run"]),
    "per-layer style weights ignored": (
        "nstlib/objective.py", "style_loss(feats, self.style_grams, self.style_layer_weights,",
        "style_loss(feats, self.style_grams, None,",
        ["tests/test_survivors.py::test_per_layer_style_weights_reach_the_objective"]),
    "blend weights not normalized": (
        "nstlib/styles.py", "return [b / sum(w) for b in w]", "return w",
        ["tests/test_survivors.py::test_blend_weights_are_normalized"]),
    "coarse-to-fine stages not chained": (
        "nstlib/multiscale.py", "init = result.image", "init = init",
        ["tests/test_survivors.py::test_each_coarse_to_fine_stage_starts_from_the_last_stages_result"]),
    "wrong YIQ coefficient": (
        "nstlib/color.py", "(0.5959, -0.2746, -0.3213)", "(0.5959, -0.2746, -0.3113)",
        ["tests/test_survivors.py::test_rgb_to_yiq_uses_the_published_ntsc_coefficients"]),
    "masked Gram divided by C*H*W": (
        "nstlib/masks.py", "/ (c * area)", "/ (c * h * w)",
        ["tests/test_survivors.py::test_masked_gram_of_a_half_mask_by_hand"]),
}


def run(names: list[str]) -> int:
    survived = 0
    with tempfile.TemporaryDirectory(prefix="nstlib_bugs_") as tmp:
        work = Path(tmp) / "repo"
        shutil.copytree(ROOT, work, ignore=shutil.ignore_patterns(".git", "__pycache__", "mutants", "*.ipynb"))
        env = {**os.environ, "PYTHONPATH": str(work), "NSTLIB_OFFLINE": "1", "NSTLIB_QUICK": "1"}
        for name in names:
            module, old, new, tests = BUGS[name]
            path = work / module
            text = path.read_text()
            if text.count(old) != 1:
                print(f"NOT APPLICABLE  {name}: {old!r} is not in {module} exactly once")
                continue
            path.write_text(text.replace(old, new))
            t0 = time.perf_counter()
            proc = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *tests],
                                  cwd=work, env=env, capture_output=True, text=True, timeout=900)
            path.write_text(text)
            tail = proc.stdout.strip().splitlines()[-1] if proc.stdout.strip() else proc.stderr[-200:]
            caught = proc.returncode == 1
            survived += not caught
            print(f"{'CAUGHT ' if caught else 'SURVIVED'}  {name} ({module}: {old!r} -> {new!r}): "
                  f"{tail} [{time.perf_counter() - t0:.0f} s]")
    return 1 if survived else 0


if __name__ == "__main__":
    wanted = sys.argv[1:] or list(BUGS)
    unknown = [n for n in wanted if n not in BUGS]
    if unknown:
        sys.exit(f"unknown bug(s) {unknown}; choose from {list(BUGS)}")
    sys.exit(run(wanted))
