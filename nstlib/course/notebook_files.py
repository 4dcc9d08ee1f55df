"""Notebook files as plain JSON (nbformat 4.5): read, write, find; cell ids and the kernel metadata
JupyterLab writes, so opening a course notebook does not mark it modified. Standard library only."""
from __future__ import annotations

import hashlib
import json
import re
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import Any

__all__ = ["Notebook", "cell_source", "ensure_cell_ids", "kernel_metadata", "read_notebook", "write_notebook",
           "find_notebooks"]

Notebook = dict[str, Any]


def cell_source(cell: dict) -> str:
    """A cell's source as one string (nbformat stores a string or a list of lines)."""
    src = cell.get("source", "")
    return "".join(src) if isinstance(src, list) else src


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
            digest = hashlib.sha1(f"{i}\n{cell_source(cell)}".encode()).hexdigest()
            cid = digest[:8]
            while cid in seen:
                digest = hashlib.sha1(digest.encode()).hexdigest()
                cid = digest[:8]
            cell["id"] = cid
        seen.add(cid)
    return nb


def kernel_metadata(nb: Notebook) -> Notebook:
    """Store the ``kernelspec`` and ``language_info`` that JupyterLab writes when the course's
    kernel (ipykernel's ``python3``) starts (in place; returns ``nb``).

    JupyterLab (4.x, ``NotebookPanel._updateSpec``/``_updateLanguage``) copies the kernel's spec
    and ``kernel_info`` into the notebook's metadata as soon as the kernel is up, and marks the
    notebook modified unless each value is deep-equal to the stored one (key order aside). The
    spec and every field but the version are the same on every Python 3 with ipykernel >= 6; the
    version is ``sys.version.split()[0]`` of the kernel, so a stored version is kept (cleaning
    must not depend on who cleans) and only a missing one is taken from this Python. A class on
    another Python sees the notebook marked modified once: JupyterLab compares the version too.
    """
    meta = nb.setdefault("metadata", {})
    meta["kernelspec"] = {"display_name": "Python 3 (ipykernel)", "language": "python", "name": "python3"}
    version = (meta.get("language_info") or {}).get("version") or sys.version.split()[0]
    meta["language_info"] = {"codemirror_mode": {"name": "ipython", "version": 3}, "file_extension": ".py",
                             "mimetype": "text/x-python", "name": "python", "nbconvert_exporter": "python",
                             "pygments_lexer": "ipython3", "version": version}
    return nb


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
        paths = [here if here.is_dir() else Path(__file__).resolve().parents[2] / "notebooks"]
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
