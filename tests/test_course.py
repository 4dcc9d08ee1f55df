"""The course notebooks: committed clean and in the course format; student versions fail their checks
with a hint (not a traceback); the course tool strips solutions and outputs correctly."""
from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

from nstlib.course.tool import (BEGIN, CHECK_OUTPUT, END, clean_notebook, expected_output, find_notebooks,
                           main, read_notebook, strip_solutions, student_notebook, write_notebook)

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))
CHECK_CALL = re.compile(r"(?<![\w.])checks\.check_\w+\(")


def src(cell: dict) -> str:
    s = cell.get("source", "")
    return "".join(s) if isinstance(s, list) else s


def ids(paths):
    return [p.stem for p in paths]


def test_there_are_notebooks():
    assert len(NOTEBOOKS) >= 3, f"expected the course notebooks in {ROOT / 'notebooks'}"


# ---------------------------------------------------------------- (a) committed clean, course format
@pytest.mark.parametrize("path", NOTEBOOKS, ids=ids(NOTEBOOKS))
def test_committed_clean(path):
    nb = read_notebook(path)
    for i, cell in enumerate(nb["cells"]):
        if cell["cell_type"] != "code":
            assert "outputs" not in cell and "execution_count" not in cell
            continue
        assert cell.get("execution_count") is None, f"{path.name} cell {i}: execution_count"
        assert cell.get("outputs") == [], (f"{path.name} cell {i} has committed outputs; "
                                           "run `python -m nstlib.course clean` before committing")
        assert "execution" not in cell.get("metadata", {}), f"{path.name} cell {i} keeps run metadata"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=ids(NOTEBOOKS))
def test_course_format(path):
    cells = read_notebook(path)["cells"]
    first = src(cells[0])
    assert cells[0]["cell_type"] == "markdown" and first.startswith(f"# {path.name[:2]} ·"), \
        f"{path.name}: the first cell must be the title '# {path.name[:2]} · ...'"
    assert "In this notebook you will" in first, f"{path.name}: no objectives in the opening cell"
    assert "Prerequisites" in first, f"{path.name}: no prerequisites in the opening cell"
    assert re.search(r"Run time.*quick mode.*CPU.*GPU", first, re.S), f"{path.name}: no run times"
    code = [src(c) for c in cells if c["cell_type"] == "code"]
    solutions = [i for i, s in enumerate(code) if BEGIN in s]
    assert solutions, f"{path.name}: no exercise with {BEGIN} / {END}"
    for i in solutions:
        assert END in code[i], f"{path.name}: exercise cell without {END}"
        assert any(CHECK_CALL.search(s) for s in code[i + 1:i + 3]), \
            f"{path.name}: the exercise must be followed by a nstlib.course.checks.check_<name>(fn) cell"
    checked = [c for c in cells if c["cell_type"] == "code" and CHECK_OUTPUT in src(c)]
    assert checked, f"{path.name}: no {CHECK_OUTPUT} cell"
    for c in checked:
        assert expected_output(c), f"{path.name}: a {CHECK_OUTPUT} cell without a recorded expected output"
    assert re.search(r"(?<![\w.])notice\(ext\w*", "\n".join(code)), \
        f"{path.name}: the setup must call nstlib.course.notice(ext, ...) on its extractor(s)"
    tail = "\n".join(src(c) for c in cells[-2:] if c["cell_type"] == "markdown")
    assert "## Summary" in tail and "Further reading" in tail and "Gatys" in tail, \
        f"{path.name}: must close with a summary and further reading"
    assert "NSTLIB_QUICK" not in "\n".join(code) and "os.environ" not in "\n".join(code), \
        f"{path.name}: quick mode is read inside nstlib (nstlib.course.pick), not in the notebook"


# ---------------------------------------------------------------- (b) student versions fail with a hint
def _until_last_check(nb: dict) -> dict:
    """The notebook cut after its last check cell (later cells are not needed for the checks)."""
    last = max(i for i, c in enumerate(nb["cells"])
               if c["cell_type"] == "code" and CHECK_CALL.search(src(c)))
    nb["cells"] = nb["cells"][:last + 1]
    return nb


@pytest.mark.parametrize("path", NOTEBOOKS, ids=ids(NOTEBOOKS))
def test_student_version_checks_fail_with_hint(path, tmp_path, monkeypatch):
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")
    assert main(["student", str(tmp_path), str(path)]) == 0
    student = read_notebook(tmp_path / path.name)
    text = "\n".join(src(c) for c in student["cells"])
    assert BEGIN not in text and END not in text
    assert "# YOUR CODE HERE" in text and "raise NotImplementedError()" in text
    assert all(not c.get("outputs") for c in student["cells"] if c["cell_type"] == "code")

    short = tmp_path / f"short_{path.name}"
    write_notebook(_until_last_check(student), short)
    monkeypatch.setenv("NSTLIB_OFFLINE", "1")
    monkeypatch.setenv("NSTLIB_QUICK", "1")
    monkeypatch.setenv("MPLBACKEND", "Agg")
    nb = nbformat.read(str(short), as_version=4)
    nbclient.NotebookClient(nb, timeout=600, startup_timeout=300, kernel_name="python3",
                            resources={"metadata": {"path": str(tmp_path)}}).execute()
    checks = [c for c in nb.cells if c.cell_type == "code" and CHECK_CALL.search(c.source)]
    assert checks
    for cell in nb.cells:
        for out in cell.get("outputs", []):
            assert out.output_type != "error", f"{path.name}: a cell raised {out.get('ename')}"
    for cell in checks:
        printed = "".join(o.get("text", "") for o in cell.outputs if o.output_type == "stream")
        assert "FAIL" in printed and "Hint:" in printed, f"{path.name}: the check printed {printed!r}"
        assert "Traceback" not in printed
        assert "not implemented yet" in printed


# ---------------------------------------------------------------- the course tool itself
def test_strip_solutions_keeps_indentation():
    source = "def f(x):\n    ### BEGIN SOLUTION\n    return x + 1\n    ### END SOLUTION\n\nprint(1)"
    out = strip_solutions(source)
    assert out == "def f(x):\n    # YOUR CODE HERE\n    raise NotImplementedError()\n\nprint(1)"
    assert "return x + 1" not in out


@pytest.mark.parametrize("source", [f"{BEGIN}\nx = 1", f"x = 1\n{END}",
                                    f"{BEGIN}\n{BEGIN}\n{END}\n{END}"])
def test_strip_solutions_rejects_unbalanced_markers(source):
    with pytest.raises(ValueError, match="cell 3"):
        strip_solutions(source, "cell 3")


def _toy_notebook() -> dict:
    return {"nbformat": 4, "nbformat_minor": 4, "metadata": {"widgets": {"state": {}}}, "cells": [
        {"cell_type": "markdown", "metadata": {}, "source": ["# title"]},
        {"cell_type": "code", "execution_count": 3, "metadata": {"execution": {"x": 1}},
         "source": [f"def f():\n", f"    {BEGIN}\n", "    return 2\n", f"    {END}"],
         "outputs": [{"output_type": "stream", "name": "stdout", "text": ["hi\n"]}]},
        {"cell_type": "code", "execution_count": 4, "metadata": {}, "source": [f"{CHECK_OUTPUT}\nprint(2)"],
         "outputs": [{"output_type": "stream", "name": "stdout", "text": ["2"]},
                     {"output_type": "stream", "name": "stdout", "text": ["\n"]},
                     {"output_type": "stream", "name": "stderr", "text": ["warning\n"]},
                     {"output_type": "execute_result", "execution_count": 4, "metadata": {},
                      "data": {"text/plain": ["2"]}}]},
    ]}


def test_clean_records_checked_stdout_in_metadata_and_strips_every_output():
    nb = clean_notebook(_toy_notebook())
    code = [c for c in nb["cells"] if c["cell_type"] == "code"]
    assert all(c["outputs"] == [] and c["execution_count"] is None for c in code)
    assert "execution" not in code[0]["metadata"] and expected_output(code[0]) is None
    assert expected_output(code[1]) == "2\n"  # stdout only: not stderr, not the execute_result
    assert "widgets" not in nb["metadata"]
    again = clean_notebook(nb)  # cleaning an unrun notebook keeps what was recorded
    assert expected_output([c for c in again["cells"] if c["cell_type"] == "code"][1]) == "2\n"


def test_student_notebook_strips_all_outputs():
    nb = student_notebook(_toy_notebook(), "toy")
    code = [c for c in nb["cells"] if c["cell_type"] == "code"]
    assert all(c["outputs"] == [] and c["execution_count"] is None for c in code)
    assert all(expected_output(c) is None for c in code)
    assert "return 2" not in src(code[0]) and "raise NotImplementedError()" in src(code[0])


def test_cli_clean_and_student_on_files(tmp_path, capsys):
    path = write_notebook(_toy_notebook(), tmp_path / "nb" / "toy.ipynb")
    assert main(["clean", str(path.parent)]) == 0
    assert read_notebook(path)["cells"][1]["outputs"] == []
    assert main(["student", str(tmp_path / "out"), str(path)]) == 0
    assert "raise NotImplementedError()" in src(read_notebook(tmp_path / "out" / "toy.ipynb")["cells"][1])
    assert main(["student", str(path.parent), str(path)]) == 2  # never overwrite the solutions
    assert "refusing to overwrite" in capsys.readouterr().err
    assert main(["clean", str(tmp_path / "missing.ipynb")]) == 2
    assert find_notebooks([path]) == [path]


def _checked_notebook(expected: str | None) -> dict:
    meta = {} if expected is None else {"nstlib": {"expected_output": [expected]}}
    return {"nbformat": 4, "nbformat_minor": 5, "metadata": {}, "cells": [
        {"cell_type": "code", "execution_count": None, "id": "c1", "metadata": meta, "outputs": [],
         "source": [f"{CHECK_OUTPUT}\n", "print(1 + 1)"]}]}


def _nbval(folder: Path, *names: str):
    import shutil
    import subprocess
    import sys

    shutil.copy(ROOT / "conftest.py", folder / "conftest.py")  # the hook under test
    return subprocess.run([sys.executable, "-m", "pytest", "--nbval-lax", "--nbval-current-env", "-q",
                           "-p", "no:cacheprovider", *names], cwd=folder, capture_output=True,
                          text=True, timeout=300)


def test_nbval_compares_clean_notebooks_with_the_recorded_output(tmp_path):
    """The committed notebooks have no outputs; conftest.py hands nbval the recorded text, so a
    changed value fails, a missing record stops the run, and nothing is silently unchecked."""
    write_notebook(_checked_notebook("2\n"), tmp_path / "same.ipynb")
    write_notebook(_checked_notebook("3\n"), tmp_path / "changed.ipynb")
    run = _nbval(tmp_path, "same.ipynb", "changed.ipynb")
    assert "1 failed, 1 passed" in run.stdout, run.stdout + run.stderr
    assert "changed.ipynb::Cell 0" in run.stdout and "Cell outputs differ" in run.stdout
    write_notebook(_checked_notebook(None), tmp_path / "unrecorded.ipynb")
    run = _nbval(tmp_path, "unrecorded.ipynb")
    assert run.returncode != 0 and "without a recorded expected output" in run.stdout + run.stderr
