"""The exercise checks can fail: against independent solutions, with a wrong library reference,
and in the notebooks under nbval.

* Every ``nstlib.course.checks.check_*`` passes a solution written here from the formula (never the
  library's own function), and FAILs that same correct solution when the library reference it
  compares with is broken: a broken reference cannot hide behind a check.
* In the solution notebooks each check cell is a ``# NBVAL_CHECK_OUTPUT`` cell whose PASS line is
  recorded, so a FAIL changes the output and nbval fails: shown on a notebook made of the real
  notebooks' exercise and check cells, run by nbval with a planted bug in a scratch copy of nstlib.
* The student version still prints FAIL with the hint and no traceback: ``test_course.py`` runs
  every student notebook up to its last check (the check cells are the ones marked here).
"""
from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import nstlib
import nstlib.course.analysis
import nstlib.course.anatomy
from nstlib.course import checks
from nstlib.course.tool import (CHECK_OUTPUT, expected_output, is_check_output, read_notebook, student_notebook,
                           write_notebook)

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))
pytestmark = pytest.mark.usefixtures("one_thread")


# ---------------------------------------------------------------- independent solutions
def rf_by_hand(ops):
    r, j = 1, 1
    for k, s in ops:
        r, j = r + (k - 1) * j, j * s
    return r


def content_by_hand(f, t):
    return ((f - t) ** 2).sum() / f.numel()


def gram_by_hand(f):
    c, h, w = f.shape[1:]
    return torch.einsum("bihw,bjhw->bij", f, f) / (c * h * w)


def masked_gram_by_hand(f, m):
    return torch.einsum("bihw,bjhw->bij", f * m, f) / (f.shape[1] * m.sum(dim=(1, 2, 3)).view(-1, 1, 1))


def total_by_hand(features, content_targets, style_grams, image, alpha, beta, gamma):
    content = sum(((features[n] - t) ** 2).mean() for n, t in content_targets.items())
    style = sum(((gram_by_hand(features[n]) - a) ** 2).mean() for n, a in style_grams.items())
    tv = 0.5 * ((image[..., 1:, :] - image[..., :-1, :]).abs().mean()
                + (image[..., :, 1:] - image[..., :, :-1]).abs().mean())
    return alpha * content + beta * style + gamma * tv


def norms_by_hand(features, loss):
    grads = torch.autograd.grad(loss, list(features.values()))
    return {n: float(torch.sqrt((g ** 2).sum())) for n, g in zip(features, grads)}


def adam_by_hand(objective, init, steps, lr):
    x, m, v, losses = init.clone(), 0.0, 0.0, []
    for t in range(1, steps + 1):
        x.requires_grad_(True)
        loss = objective(x)["total"]
        (g,) = torch.autograd.grad(loss, x)
        losses.append(float(loss.detach()))
        with torch.no_grad():
            m, v = 0.9 * m + 0.1 * g, 0.999 * v + 0.001 * g ** 2
            x = (x - lr * (m / (1 - 0.9 ** t)) / ((v / (1 - 0.999 ** t)) ** 0.5 + 1e-8)).clamp(0, 1)
    return x.detach(), losses


def _scaled(fn, k):
    return lambda *a, **kw: k * fn(*a, **kw)


def _wrong_flow(real):
    def flow(*a, **kw):
        return {n: dict(d, norm=2 * d["norm"]) for n, d in real(*a, **kw).items()}
    return flow


def _wrong_masked_gram(f, m):  # the bug of issue 13: divided by C*H*W instead of C*sum(m)
    b, c, h, w = f.shape
    x = f.reshape(b, c, h * w)
    return torch.bmm(x * m.reshape(m.shape[0], 1, h * w), x.transpose(1, 2)) / (c * h * w)


# (check, independent solution, (module, name, wrong reference) or None)
CASES = {
    "receptive_field": (checks.check_receptive_field, rf_by_hand,
                        ("nstlib.course.anatomy", "receptive_field", lambda ops: rf_by_hand(ops) + 2)),
    "content_loss": (checks.check_content_loss, content_by_hand,
                     ("nstlib.losses", "content_loss", _scaled(nstlib.losses.content_loss, 0.5))),
    "gram_matrix": (checks.check_gram_matrix, gram_by_hand,
                    ("nstlib.losses", "gram_matrix", lambda f: gram_by_hand(f) * f.shape[1])),
    "gradient_norms": (checks.check_gradient_norms, norms_by_hand,
                       ("nstlib.course.analysis", "gradient_flow", _wrong_flow(nstlib.course.analysis.gradient_flow))),
    "adam_loop": (checks.check_adam_loop, adam_by_hand, None),  # its reference is torch.optim.Adam
    "masked_gram": (checks.check_masked_gram, masked_gram_by_hand,
                    ("nstlib.masks", "masked_gram_matrix", _wrong_masked_gram)),
    "total_loss": (checks.check_total_loss, total_by_hand,
                   ("nstlib.objective", "style_loss", _scaled(nstlib.losses.style_loss, 2.0))),
}


@pytest.mark.parametrize("name", list(CASES))
def test_a_check_passes_a_solution_written_from_the_formula(name, capsys):
    check, solution, _ = CASES[name]
    assert check(solution) is True
    out = capsys.readouterr().out
    assert out.startswith(f"PASS: {name}") and out.count("\n") == 1, out


@pytest.mark.parametrize("name", [n for n, c in CASES.items() if c[2]])
def test_a_wrong_library_reference_makes_a_correct_solution_fail(name, capsys, monkeypatch):
    check, solution, (module, attr, wrong) = CASES[name]
    monkeypatch.setattr(sys.modules[module], attr, wrong)
    assert check(solution) is False
    out = capsys.readouterr().out
    assert out.startswith(f"FAIL: {name}") and "Hint:" in out and "Traceback" not in out


# ---------------------------------------------------------------- the notebooks' check cells
def _code(cell) -> str:
    return "".join(cell["source"]) if isinstance(cell["source"], list) else cell["source"]


def _nbval_markers(source: str) -> set:
    from nbval.plugin import find_comment_markers
    return {m[0] for m in find_comment_markers(source)}


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_every_check_cell_is_compared_by_nbval_with_a_recorded_pass_line(path):
    cells = [c for c in read_notebook(path)["cells"] if c["cell_type"] == "code"]
    check_cells = [c for c in cells if "checks.check_" in _code(c)]
    assert check_cells, f"{path.name}: no exercise check"
    for cell in check_cells:
        src = _code(cell)
        assert is_check_output(cell) and "check" in _nbval_markers(src), \
            f"{path.name}: the check cell must start with a line '{CHECK_OUTPUT}' (nbval needs it exactly)"
        # the value is assigned so that the cell shows only the PASS/FAIL text: nbval's kernel keeps no
        # history, so a trailing ';' does not silence an expression's value there
        assert src.rstrip().splitlines()[-1].startswith("passed = checks.check_"), \
            f"{path.name}: write the check as 'passed = checks.check_<name>(fn)'"
        want = expected_output(cell)
        assert want and want.startswith("PASS: ") and want.count("\n") == 1, f"{path.name}: recorded {want!r}"
    for cell in cells:  # any cell nstlib.course treats as checked is one nbval compares too
        if is_check_output(cell):
            assert "check" in _nbval_markers(_code(cell)), f"{path.name}: {_code(cell)[:60]!r}"


SELF_CONTAINED = re.compile(r"# NBVAL_CHECK_OUTPUT\npassed = checks\.check_\w+\(\w+\)")


def _mini_notebook() -> dict:
    """The exercise and check cells of every notebook whose check needs nothing else from it."""
    cells = [{"cell_type": "code", "execution_count": None, "id": "setup", "metadata": {}, "outputs": [],
              "source": ["import torch\n", "import nstlib\n", "from nstlib.course import checks"]}]
    for path in NOTEBOOKS:
        nb = read_notebook(path)["cells"]
        exercise = None
        for cell in nb:
            if "### BEGIN SOLUTION" in _code(cell):
                exercise = cell
            # the marker line and a call on the exercise's function alone: self-contained
            elif exercise is not None and SELF_CONTAINED.fullmatch(_code(cell).strip()):
                cells += [json.loads(json.dumps(exercise)), json.loads(json.dumps(cell))]
    return {"nbformat": 4, "nbformat_minor": 5, "metadata": {}, "cells": cells}


def _run_nbval(folder: Path, *names: str) -> subprocess.CompletedProcess:
    shutil.copy(ROOT / "conftest.py", folder / "conftest.py")  # hands nbval the recorded PASS lines
    env = {**os.environ, "PYTHONPATH": str(ROOT), "NSTLIB_OFFLINE": "1", "NSTLIB_QUICK": "1",
           "MPLBACKEND": "Agg", "OMP_NUM_THREADS": "1"}
    return subprocess.run([sys.executable, "-m", "pytest", "--nbval-lax", "--nbval-current-env", "-q",
                           "-p", "no:cacheprovider", *names], cwd=folder, env=env,
                          capture_output=True, text=True, timeout=600)


@pytest.fixture(scope="module")
def mini():
    nb = _mini_notebook()
    names = [_code(c) for c in nb["cells"] if "checks.check_" in _code(c)]
    # 00, 01, 02, 05 (two), 06, 07 (03 and 04 need their notebook's network)
    assert len(names) == 7, names
    return nb


#: issue 13's bug, planted in the library the checks compare with: the masked Gram matrix
#: divided by C*H*W instead of C*sum(m)
PLANT = """
import nstlib.masks
def _wrong_masked_gram(f, m):
    b, c, h, w = f.shape
    x = f.reshape(b, c, h * w)
    return torch.bmm(x * m.reshape(m.shape[0], 1, h * w), x.transpose(1, 2)) / (c * h * w)
nstlib.masks.masked_gram_matrix = _wrong_masked_gram
"""


def test_nbval_passes_the_check_cells_and_fails_them_for_a_planted_bug(mini, tmp_path):
    write_notebook(json.loads(json.dumps(mini)), tmp_path / "ok.ipynb")
    bad = json.loads(json.dumps(mini))
    bad["cells"][0]["source"] = "".join(bad["cells"][0]["source"]) + PLANT
    write_notebook(bad, tmp_path / "bad.ipynb")
    run = _run_nbval(tmp_path, "ok.ipynb", "bad.ipynb")
    out = run.stdout + run.stderr
    n = len(mini["cells"])
    k = next(i for i, c in enumerate(mini["cells"]) if "check_masked_gram(" in _code(c))
    # every cell of ok.ipynb passes; in bad.ipynb exactly the masked-Gram check fails, on its output
    assert f"1 failed, {2 * n - 1} passed" in out, out[-4000:]
    assert f"FAILED bad.ipynb::Cell {k}" in out and "Cell outputs differ" in out, out[-4000:]
    assert "FAIL: masked_gram" in out and "Hint: " in out, out[-4000:]


def test_the_student_version_keeps_the_check_cells_and_drops_the_recorded_pass_lines(mini):
    """Executing every student notebook (FAIL with the hint, no traceback, no error output) is
    ``test_course.py::test_student_version_checks_fail_with_hint``; here: what it is given."""
    student = student_notebook(json.loads(json.dumps(mini)), "checks")
    cells = [c for c in student["cells"] if "checks.check_" in _code(c)]
    assert len(cells) == 7 and all(is_check_output(c) and expected_output(c) is None for c in cells)
    assert all("raise NotImplementedError()" in _code(c) for c in student["cells"] if "def " in _code(c))
