"""The course installs and runs the first time (issue 12): the built wheel is complete and runs the
course from a fresh venv outside the repository; the setup cell is the same first code cell in every
notebook, installs nstlib from ``NSTLIB_SOURCE`` where it is missing, and says what to do (two lines,
no traceback) where it cannot; the repository address is written once; notebooks are nbformat 4.5
with unique cell ids.

The venvs are made by ``.ci/overlay_venv.py``: layered over this Python's packages (torch is not
installed again), with the developer's own (editable) nstlib hidden, and nothing on PYTHONPATH.
"""
from __future__ import annotations

import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from nstlib.course.tool import clean_notebook, read_notebook
from nstlib.course.setup_cell import MARKER, REPOSITORY, is_setup_cell, setup_source, sync_setup

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))
OVERLAY = ROOT / ".ci" / "overlay_venv.py"
CELL_ID = re.compile(r"^[a-zA-Z0-9_-]{1,64}$")


def src(cell: dict) -> str:
    s = cell.get("source", "")
    return "".join(s) if isinstance(s, list) else s


def _env(**extra: str) -> dict[str, str]:
    """A child environment that sees neither this checkout (PYTHONPATH) nor a redirected image folder."""
    env = {k: v for k, v in os.environ.items()
           if k not in ("PYTHONPATH", "NSTLIB_IMAGES", "NSTLIB_SOURCE", "PYTHONSTARTUP")}
    env.update(NSTLIB_OFFLINE="1", NSTLIB_QUICK="1", MPLBACKEND="Agg", PIP_DISABLE_PIP_VERSION_CHECK="1")
    env.update(extra)
    return env


def _run(cmd: list, cwd: Path, timeout: float = 300, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run([str(c) for c in cmd], cwd=cwd, env=_env(**env), capture_output=True, text=True,
                          timeout=timeout)


def _tracked_files() -> list[str]:
    """The repository's files as a fresh clone would have them (tracked or new, not ignored)."""
    try:
        out = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
                             cwd=ROOT, capture_output=True, check=True).stdout.decode()
    except (OSError, subprocess.CalledProcessError):
        pytest.skip("not a git checkout: cannot tell the repository's files from build leftovers")
    return [f for f in out.split("\0") if f and (ROOT / f).is_file()]


@pytest.fixture(scope="module")
def clone(tmp_path_factory) -> Path:
    """A copy of the repository's files, outside the repository (no build/, no egg-info)."""
    dest = tmp_path_factory.mktemp("clone") / "nstlib"
    for f in _tracked_files():
        (dest / f).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / f, dest / f)
    return dest


@pytest.fixture(scope="module")
def wheel(clone, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    isolation = [] if importlib.util.find_spec("setuptools") else ["--use-pep517"]
    cmd = [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", out, clone]
    if not isolation:
        cmd.insert(5, "--no-build-isolation")  # build with this Python's setuptools: no download
    run = _run(cmd, out)
    assert run.returncode == 0, run.stdout + run.stderr
    (found,) = out.glob("nstlib-*.whl")
    return found


def _venv(where: Path) -> Path:
    run = _run([sys.executable, OVERLAY, where / "venv", "--hide", "nstlib"], where, timeout=120)
    assert run.returncode == 0, run.stdout + run.stderr
    return Path(run.stdout.strip().splitlines()[-1])


def _packages(root: Path) -> set[str]:
    return {".".join(p.parent.relative_to(root).parts) for p in (root / "nstlib").rglob("__init__.py")}


# ---------------------------------------------------------------- the wheel
def test_wheel_holds_every_package_the_images_and_the_type_marker(wheel):
    names = set(zipfile.ZipFile(wheel).namelist())
    packages = _packages(ROOT)
    assert {"nstlib", "nstlib.course.checks"} <= packages
    for pkg in sorted(packages):
        assert f"{pkg.replace('.', '/')}/__init__.py" in names, f"the wheel lacks the package {pkg}"
    for py in (ROOT / "nstlib").rglob("*.py"):
        assert py.relative_to(ROOT).as_posix() in names, f"the wheel lacks {py.relative_to(ROOT)}"
    assert "nstlib/py.typed" in names
    assert "nstlib/images/CREDITS.md" in names
    for img in (ROOT / "images").rglob("*"):
        if img.suffix.lower() in (".jpg", ".jpeg", ".png") and "results" not in img.parts:
            rel = img.relative_to(ROOT / "images").as_posix()
            assert f"nstlib/images/{rel}" in names, f"the wheel lacks the bundled image {rel}"


_IMPORT_ALL = """
import importlib, pkgutil, sys, nstlib
mods = [m.name for m in pkgutil.walk_packages(nstlib.__path__, "nstlib.") if not m.name.endswith("__main__")]
for name in mods:
    importlib.import_module(name)
img = nstlib.example("tower_bridge", 64)
print(nstlib.__file__)
from nstlib.examples import images_dir
print(images_dir())
print(len(mods), tuple(img.shape[:2]), max(img.shape[-2:]))
"""


def test_wheel_installs_in_a_fresh_venv_and_runs_a_notebook(wheel, tmp_path):
    """Not editable, outside the repository, deps from the layer below (--no-index: nothing downloaded)."""
    py = _venv(tmp_path)
    run = _run([py, "-m", "pip", "install", "-q", "--no-index", wheel], tmp_path)
    assert run.returncode == 0, run.stdout + run.stderr
    run = _run([py, "-c", _IMPORT_ALL], tmp_path)
    assert run.returncode == 0, run.stdout + run.stderr
    lines = run.stdout.strip().splitlines()
    venv = py.parent.parent
    assert Path(lines[0]).is_relative_to(venv), f"nstlib was imported from {lines[0]}, not the wheel"
    assert Path(lines[1]).is_relative_to(venv) and Path(lines[1]).name == "images"
    assert int(lines[2].split()[0]) >= 20 and lines[2].endswith("(1, 3) 64"), lines

    work = tmp_path / "class"  # a notebook and the nbval hook, nothing else of the repository
    work.mkdir()
    shutil.copy(NOTEBOOKS[0], work)
    shutil.copy(ROOT / "conftest.py", work)
    run = _run([py, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--nbval-lax", "--nbval-current-env",
                NOTEBOOKS[0].name], work, timeout=600)
    assert run.returncode == 0 and " passed" in run.stdout, run.stdout[-3000:] + run.stderr[-2000:]


# ---------------------------------------------------------------- the setup cell
@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_first_code_cell_is_the_setup_cell(path):
    cells = read_notebook(path)["cells"]
    code = [c for c in cells if c["cell_type"] == "code"]
    assert src(code[0]) == setup_source(), (f"{path.name}: the first code cell is not the current setup "
                                            "cell; run `python -m nstlib.course sync-setup`")
    assert sum(is_setup_cell(c) for c in cells) == 1, f"{path.name}: more than one setup cell"


def test_sync_setup_inserts_updates_and_moves_the_setup_cell():
    nb = {"nbformat": 4, "nbformat_minor": 5, "metadata": {}, "cells": [
        {"cell_type": "markdown", "id": "t", "metadata": {}, "source": ["# 07 · new"]},
        {"cell_type": "code", "id": "c", "metadata": {}, "outputs": [], "execution_count": None,
         "source": ["x = 1"]}]}
    assert sync_setup(nb) is True
    assert [c["cell_type"] for c in nb["cells"]] == ["markdown", "code", "code"]
    assert src(nb["cells"][1]) == setup_source() and src(nb["cells"][2]) == "x = 1"
    assert sync_setup(nb) is False  # idempotent
    nb["cells"][1]["source"] = [MARKER + "\nold = True\n"]  # an outdated copy is rewritten in place
    assert sync_setup(nb) is True and src(nb["cells"][1]) == setup_source()
    nb["cells"] = [nb["cells"][0], nb["cells"][2], nb["cells"][1]]  # a setup cell below code moves up
    assert sync_setup(nb) is True
    assert src(nb["cells"][1]) == setup_source() and sum(map(is_setup_cell, nb["cells"])) == 1


def test_repository_address_is_written_in_one_place():
    """The address lives in nstlib/course/setup_cell.py; the notebooks carry rendered copies only."""
    assert setup_source().count(f"REPOSITORY = {json.dumps(REPOSITORY)}") == 1
    pattern = re.compile(r"^\s*(REPOSITORY|COURSE_REPO)\s*=", re.M)
    own = {"nstlib/course/setup_cell.py"}
    for f in _tracked_files():
        if not f.endswith((".py", ".ipynb", ".md", ".toml", ".txt", ".cfg")) or f.startswith("tests/"):
            continue
        text = (ROOT / f).read_text(encoding="utf-8", errors="replace")
        if f.endswith(".ipynb"):
            text = "\n".join(src(c) for c in json.loads(text)["cells"] if not is_setup_cell(c))
        if f not in own:
            assert not pattern.search(text), f"{f} sets a repository address of its own"
            assert not (REPOSITORY and REPOSITORY in text), f"{f} repeats the repository address"
    assert "OWNER/nstlib\"" not in (ROOT / "nstlib" / "course" / "setup_cell.py").read_text()


def _setup_cell_run(py: Path, where: Path, source: str, **env: str) -> subprocess.CompletedProcess:
    script = where / "cell.py"
    script.write_text(source)
    return _run([py, script], where, timeout=300, **env)


def test_setup_cell_says_what_to_do_in_two_lines_without_a_traceback(tmp_path):
    py = _venv(tmp_path)
    # no address configured, no NSTLIB_SOURCE
    run = _setup_cell_run(py, tmp_path, setup_source(""))
    assert run.returncode == 0 and "Traceback" not in run.stdout + run.stderr, run.stderr
    lines = run.stdout.strip().splitlines()
    assert len(lines) == 2 and "NSTLIB_SOURCE" in lines[1], lines
    # an address that pip cannot install from (the configured repository, then NSTLIB_SOURCE)
    for source, env in ((setup_source("file:///nonexistent/nstlib"), {}),
                        (setup_source(""), {"NSTLIB_SOURCE": str(tmp_path / "no-such-clone")})):
        run = _setup_cell_run(py, tmp_path, source, **env)
        assert run.returncode == 0 and "Traceback" not in run.stdout + run.stderr, run.stderr
        lines = run.stdout.strip().splitlines()
        assert lines[0].startswith("Installing nstlib from") and len(lines) == 3, lines
        assert lines[1].startswith("Could not install nstlib from") and "run this cell again" in lines[2]


def test_setup_cell_only_reports_when_nstlib_is_installed_and_tells_colab_how_to_get_a_gpu(tmp_path):
    fake_colab = "import sys, types; sys.modules['google.colab'] = types.ModuleType('google.colab')\n"
    env = {"PYTHONPATH": str(ROOT), "NSTLIB_SOURCE": str(tmp_path / "must-not-be-used")}
    run = _setup_cell_run(Path(sys.executable), tmp_path, setup_source(), **env)
    assert run.returncode == 0, run.stderr
    assert "Installing" not in run.stdout and re.search(r"^torch\s+\d", run.stdout, re.M), run.stdout
    assert re.search(r"^device\s+\w", run.stdout, re.M) and "Change runtime type" not in run.stdout
    run = _setup_cell_run(Path(sys.executable), tmp_path, fake_colab + setup_source(), **env)
    assert run.returncode == 0, run.stderr
    if importlib.util.find_spec("torch") and not __import__("torch").cuda.is_available():
        assert "Runtime > Change runtime type" in run.stdout, run.stdout


def test_notebook_runs_where_nstlib_is_missing_after_its_setup_cell_installs_it(clone, tmp_path):
    """A fresh runtime: nstlib is not installed; the setup cell installs it from NSTLIB_SOURCE (a
    local clone) and the notebook passes. (PIP_NO_BUILD_ISOLATION=0 -- pip's env spelling of
    --no-build-isolation -- and PIP_NO_INDEX: built with the layer's setuptools, nothing downloaded.)"""
    py = _venv(tmp_path)
    assert _run([py, "-c", "import nstlib"], tmp_path).returncode != 0
    work = tmp_path / "colab"
    work.mkdir()
    shutil.copy(NOTEBOOKS[0], work)  # no conftest.py: it imports nstlib before the setup cell runs
    run = _run([py, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--nbval-lax", "--nbval-current-env",
                NOTEBOOKS[0].name], work, timeout=600,
               NSTLIB_SOURCE=str(clone), PIP_NO_BUILD_ISOLATION="0", PIP_NO_INDEX="1")
    assert run.returncode == 0 and " passed" in run.stdout, run.stdout[-3000:] + run.stderr[-2000:]
    where = _run([py, "-c", "import nstlib; print(nstlib.__file__)"], tmp_path)
    assert Path(where.stdout.strip()).is_relative_to(py.parent.parent), where.stdout + where.stderr


# ---------------------------------------------------------------- the notebook format
@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_is_nbformat_4_5_with_unique_cell_ids(path):
    """JupyterLab upgrades an older notebook on open and marks it modified (autosave would then
    rewrite the tracked file); tests/browser/test_install_lab.py checks that in the browser."""
    text = path.read_text(encoding="utf-8")
    nb = json.loads(text)
    assert (nb["nbformat"], nb["nbformat_minor"]) >= (4, 5) and nb["nbformat"] == 4, path.name
    ids = [c.get("id") for c in nb["cells"]]
    assert all(isinstance(i, str) and CELL_ID.match(i) for i in ids), f"{path.name}: a cell without a valid id"
    assert len(set(ids)) == len(ids), f"{path.name}: repeated cell ids"
    nbformat = pytest.importorskip("nbformat")
    nbformat.validate(nbformat.reads(text, as_version=nbformat.NO_CONVERT))
    assert json.dumps(clean_notebook(json.loads(text)), indent=1, ensure_ascii=False) + "\n" == text, \
        f"{path.name} is not stored as `python -m nstlib.course clean` writes it"
