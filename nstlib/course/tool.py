"""Course tooling: student versions of the notebooks, and clean notebooks for committing.

::

    python -m nstlib.course lab [NOTEBOOK] [JUPYTER_OPTION ...]    # open the course in JupyterLab
    python -m nstlib.course student OUT_DIR [NOTEBOOK_OR_DIR ...]   # default: notebooks/
    python -m nstlib.course clean [NOTEBOOK_OR_DIR ...]             # in place; default: notebooks/
    python -m nstlib.course sync-setup [NOTEBOOK_OR_DIR ...]        # in place; default: notebooks/

*Lab*: starts JupyterLab on notebook 00 (or ``NOTEBOOK``) with this Python, adding ``--allow-root``
when run as root (containers, CI), so the README's first command works as written everywhere.

*Sync-setup*: makes the first code cell of every notebook the shared setup cell rendered from
:mod:`nstlib.course.setup_cell` (inserting it into a notebook that has none); ``clean`` rewrites an
existing setup cell too, so the copies never drift from the template.

*Student version*: in every code cell, the lines from ``### BEGIN SOLUTION`` to ``### END SOLUTION``
(nbgrader's markers) become ``# YOUR CODE HERE`` and ``raise NotImplementedError()`` at the marker's
indentation; all outputs are removed.

*Clean*: every output and execution count is removed. The text printed (stdout) by a cell marked
``# NBVAL_CHECK_OUTPUT`` is first recorded in the cell's metadata (``metadata.nstlib.expected_output``,
see :func:`expected_output`); the project's ``conftest.py`` gives it back to nbval as the reference
output, so ``pytest --nbval-lax`` still compares that cell with a fresh run. Cleaning a cell that has
no output keeps the recorded text. Notebooks are read and written as plain JSON (nbformat 4), so this
needs nothing beyond the standard library.
"""
from __future__ import annotations

import argparse
import hashlib
import importlib.util
import json
import os
import re
import subprocess
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from .setup_cell import is_setup_cell, sync_setup

__all__ = ["BEGIN", "END", "CHECK_OUTPUT", "strip_solutions", "student_notebook", "clean_notebook",
           "is_check_output", "expected_output", "ensure_cell_ids", "read_notebook", "write_notebook", "find_notebooks",
           "lab", "main"]

BEGIN, END = "### BEGIN SOLUTION", "### END SOLUTION"
CHECK_OUTPUT = "# NBVAL_CHECK_OUTPUT"
Notebook = dict[str, Any]


def _source(cell: dict) -> str:
    src = cell.get("source", "")
    return "".join(src) if isinstance(src, list) else src


def _set_source(cell: dict, text: str) -> None:
    cell["source"] = text.splitlines(keepends=True)


def strip_solutions(source: str, where: str = "cell") -> str:
    """Replace each ``### BEGIN SOLUTION`` ... ``### END SOLUTION`` block of ``source``.

    Raises:
        ValueError: unbalanced or nested markers (``where`` names the cell in the message).
    """
    out: list[str] = []
    inside = False
    for line in source.splitlines(keepends=True):
        stripped = line.strip()
        if stripped == BEGIN:
            if inside:
                raise ValueError(f"{where}: nested '{BEGIN}' (close the first block with '{END}')")
            inside = True
            indent = line[:len(line) - len(line.lstrip())]
            out += [f"{indent}# YOUR CODE HERE\n", f"{indent}raise NotImplementedError()\n"]
        elif stripped == END:
            if not inside:
                raise ValueError(f"{where}: '{END}' without a '{BEGIN}' before it")
            inside = False
        elif not inside:
            out.append(line)
    if inside:
        raise ValueError(f"{where}: '{BEGIN}' is never closed by '{END}'")
    return "".join(out).rstrip("\n")


def is_check_output(cell: dict) -> bool:
    """Whether ``cell`` is a code cell marked ``# NBVAL_CHECK_OUTPUT``."""
    return cell.get("cell_type") == "code" and CHECK_OUTPUT in _source(cell)


def expected_output(cell: dict) -> str | None:
    """The stdout text recorded for a ``# NBVAL_CHECK_OUTPUT`` cell by :func:`clean_notebook`, or None."""
    lines = cell.get("metadata", {}).get("nstlib", {}).get("expected_output")
    return None if lines is None else "".join(lines)  # stored as a list of lines, for readable diffs


def _stdout(cell: dict) -> str:
    text = ""
    for out in cell.get("outputs", []):
        if out.get("output_type") == "stream" and out.get("name") == "stdout":
            chunk = out.get("text", "")
            text += "".join(chunk) if isinstance(chunk, list) else chunk
    return text


_CELL_ID = re.compile(r"^[a-zA-Z0-9_-]{1,64}$")


def ensure_cell_ids(nb: Notebook) -> Notebook:
    """Store ``nb`` as nbformat 4.5 with a valid, unique id on every cell (in place; returns ``nb``).

    JupyterLab upgrades an older notebook (4.4, no ids) when it opens it and marks it modified, so
    autosave would rewrite the tracked file in front of the class. Ids already present are kept; a
    missing, invalid or repeated one gets a stable id derived from the cell's position and source.
    """
    nb["nbformat"], nb["nbformat_minor"] = 4, max(5, int(nb.get("nbformat_minor", 0)))
    seen: set[str] = set()
    for i, cell in enumerate(nb.get("cells", [])):
        cid = cell.get("id")
        if not (isinstance(cid, str) and _CELL_ID.match(cid)) or cid in seen:
            digest = hashlib.sha1(f"{i}\n{_source(cell)}".encode()).hexdigest()
            cid = digest[:8]
            while cid in seen:
                digest = hashlib.sha1(digest.encode()).hexdigest()
                cid = digest[:8]
            cell["id"] = cid
        seen.add(cid)
    return nb


def clean_notebook(nb: Notebook, keep_checked: bool = True) -> Notebook:
    """Remove outputs, execution counts and run metadata (in place; returns ``nb``), and store it
    as nbformat 4.5 with cell ids (:func:`ensure_cell_ids`).

    With ``keep_checked``, a ``# NBVAL_CHECK_OUTPUT`` cell's stdout text is first recorded in its
    metadata (``metadata["nstlib"]["expected_output"]``); a cell with no stdout keeps what was
    recorded before. Without it (student versions), recorded texts are dropped too.
    """
    for cell in nb.get("cells", []):
        meta = cell.setdefault("metadata", {})
        for key in ("execution", "collapsed", "scrolled"):
            meta.pop(key, None)
        if cell.get("cell_type") != "code":
            cell.pop("outputs", None)
            cell.pop("execution_count", None)
            continue
        text = _stdout(cell)
        if keep_checked and is_check_output(cell) and text:
            meta.setdefault("nstlib", {})["expected_output"] = text.splitlines(keepends=True)
        elif not keep_checked or not is_check_output(cell):
            meta.get("nstlib", {}).pop("expected_output", None)
        if meta.get("nstlib") == {}:
            del meta["nstlib"]
        cell["outputs"] = []
        cell["execution_count"] = None
    nb.get("metadata", {}).pop("widgets", None)
    return ensure_cell_ids(nb)


def student_notebook(nb: Notebook, name: str = "notebook") -> Notebook:
    """The student version of ``nb`` (in place; returns it): solutions stripped, no outputs."""
    for i, cell in enumerate(nb.get("cells", [])):
        if cell.get("cell_type") == "code" and (BEGIN in _source(cell) or END in _source(cell)):
            _set_source(cell, strip_solutions(_source(cell), f"{name}, cell {i}"))
    return clean_notebook(nb, keep_checked=False)


def read_notebook(path: str | Path) -> Notebook:
    """Read an .ipynb file as a dict (clear error for a missing or damaged file)."""
    path = Path(path)
    try:
        nb = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise FileNotFoundError(f"notebook {str(path)!r} does not exist") from None
    except json.JSONDecodeError as e:
        raise ValueError(f"{str(path)!r} is not a valid notebook (bad JSON: {e})") from None
    if not isinstance(nb, dict) or "cells" not in nb:
        raise ValueError(f"{str(path)!r} is not a Jupyter notebook (no 'cells')")
    return nb


def write_notebook(nb: Notebook, path: str | Path) -> Path:
    """Write ``nb`` the way Jupyter does (1-space indent, UTF-8, final newline)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(nb, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    return path


def find_notebooks(paths: Iterable[str | Path] = ()) -> list[Path]:
    """The .ipynb files named by ``paths`` (files, or folders searched non-recursively).

    With no paths: ``notebooks/`` under the current folder, else the course repository's.
    """
    paths = list(paths)
    if not paths:
        here = Path("notebooks")
        paths = [here if here.is_dir() else Path(__file__).resolve().parent.parent / "notebooks"]
    found: list[Path] = []
    for p in map(Path, paths):
        if p.is_dir():
            found += sorted(q for q in p.glob("*.ipynb") if not q.name.startswith("."))
        elif p.suffix == ".ipynb" and p.is_file():
            found.append(p)
        else:
            raise FileNotFoundError(f"{str(p)!r} is neither a notebook (.ipynb) nor a folder of them")
    if not found:
        raise FileNotFoundError(f"no notebooks found in {', '.join(map(str, paths))}")
    return found


def lab(notebook: str | Path | None = None, options: Iterable[str] = ()) -> int:
    """Start JupyterLab (this Python's) on ``notebook`` (default: notebook 00); returns its exit status.

    Adds ``--allow-root`` when run as root, which Jupyter otherwise refuses. Does not return on POSIX
    (the process becomes JupyterLab, so Ctrl-C and its shutdown prompt work as usual).
    """
    path = Path(notebook) if notebook else find_notebooks()[0]
    if not path.is_file():
        raise FileNotFoundError(f"notebook {str(path)!r} does not exist")
    if importlib.util.find_spec("jupyterlab") is None:
        raise ValueError('JupyterLab is not installed for this Python; run: pip install -e ".[course]"')
    cmd = [sys.executable, "-m", "jupyterlab", *options]
    if hasattr(os, "geteuid") and os.geteuid() == 0 and "--allow-root" not in cmd:
        cmd.append("--allow-root")
    root = Path.cwd().resolve()
    if root not in path.resolve().parents:  # outside the current folder: serve the notebook's folder
        root = path.resolve().parent
        cmd.append(f"--ServerApp.root_dir={root}")
    # the URL JupyterLab prints and opens is the notebook's (a file argument would only open /lab)
    cmd.append(f"--LabApp.default_url=/lab/tree/{path.resolve().relative_to(root).as_posix()}")
    sys.stdout.flush()
    if os.name == "posix":
        os.execv(sys.executable, cmd)  # does not return (but a test may replace it)
        return 0
    return subprocess.call(cmd)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m nstlib.course", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="cmd", required=True)
    lb = sub.add_parser("lab", help="open the course in JupyterLab (adds --allow-root as root)")
    lb.add_argument("notebook", nargs="?", help="the notebook to open (default: notebooks/00_...)")
    sy = sub.add_parser("sync-setup", help="make the shared setup cell the first code cell (in place)")
    sy.add_argument("paths", nargs="*", help="notebooks or folders (default: notebooks/)")
    st = sub.add_parser("student", help="write student versions (solutions removed) to OUT_DIR")
    st.add_argument("out_dir")
    st.add_argument("paths", nargs="*", help="notebooks or folders (default: notebooks/)")
    cl = sub.add_parser("clean", help="strip outputs in place (records NBVAL_CHECK_OUTPUT text in metadata)")
    cl.add_argument("paths", nargs="*", help="notebooks or folders (default: notebooks/)")
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv[:1] == ["lab"] and not {"-h", "--help"} & set(argv):  # the rest goes to JupyterLab as is
        notebook = next((a for a in argv[1:] if a.endswith(".ipynb") and not a.startswith("-")), None)
        try:
            return lab(notebook, [a for a in argv[1:] if a is not notebook])
        except (OSError, ValueError) as e:
            print(f"error: {e}", file=sys.stderr)
            return 2
    args = parser.parse_args(argv)
    try:
        notebooks = find_notebooks(args.paths)
        for path in notebooks:
            nb = read_notebook(path)
            if args.cmd == "student":
                out = Path(args.out_dir) / path.name
                if out.resolve() == path.resolve():
                    raise ValueError(f"refusing to overwrite the solution notebook {str(path)!r}; "
                                     "choose another OUT_DIR")
                write_notebook(student_notebook(nb, path.name), out)
                print(f"wrote {out}")
            elif args.cmd == "sync-setup":
                changed = sync_setup(nb)
                write_notebook(clean_notebook(nb), path)
                print(f"{'wrote the setup cell of' if changed else 'setup cell current in'} {path}")
            else:
                if any(is_setup_cell(c) for c in nb.get("cells", [])):
                    sync_setup(nb)  # keep the copy current; a notebook without one gets it from sync-setup
                write_notebook(clean_notebook(nb), path)
                print(f"cleaned {path}")
    except (OSError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
