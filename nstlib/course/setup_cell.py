"""The setup cell: the first code cell of every notebook, the same in all of them.

The course repository's address is written here, and only here (:data:`REPOSITORY`);
``python -m nstlib.course sync-setup`` (and ``clean``) renders :data:`TEMPLATE` with it into every
notebook, so the notebooks carry generated copies (``tests/test_install.py`` checks they match).
Teachers publishing their own copy set :data:`REPOSITORY` and run ``python -m nstlib.course sync-setup``.

What the cell does: when ``nstlib`` can be imported (a clone with ``pip install -e .``, a wheel), it
only reports the versions and the device. When it cannot (a fresh Colab runtime), it installs the
course with pip from ``$NSTLIB_SOURCE`` if set (any pip requirement: a local path, a ``git+`` URL, a
wheel), else from :data:`REPOSITORY`. When no address is configured or pip fails, it prints what to do
in two lines, without a traceback. On Colab without a GPU it says how to switch to one.
"""
from __future__ import annotations

import json
from typing import Any

__all__ = ["REPOSITORY", "MARKER", "SETUP_ID", "TEMPLATE", "setup_source", "is_setup_cell", "sync_setup"]

#: The course repository (a ``git`` URL pip understands after ``git+``), e.g.
#: ``"https://github.com/you/nstlib"``. Empty: not configured, the setup cell then asks for
#: ``NSTLIB_SOURCE``. The one place the address is written; run ``python -m nstlib.course sync-setup``
#: after changing it.
REPOSITORY = ""

#: The first line of the setup cell: how the course tool recognises it.
MARKER = "# Course setup (the same cell opens every notebook; written by `python -m nstlib.course sync-setup`)"
SETUP_ID = "nstlib-setup"

TEMPLATE = MARKER + '''
# With nstlib installed it only reports versions and device. On a fresh runtime (Colab) it installs
# the course with pip: from $NSTLIB_SOURCE if set (a path, a git+ URL or a wheel), else from REPOSITORY.
import importlib
import importlib.util
import os
import subprocess
import sys

REPOSITORY = {repository}

if importlib.util.find_spec("nstlib") is None:
    source = os.getenv("NSTLIB_SOURCE") or (f"nstlib @ git+{{REPOSITORY}}" if REPOSITORY else "")
    if not source:
        print("nstlib is not installed here, and this copy of the course names no repository to install it from.")
        print("Set NSTLIB_SOURCE to its pip address in a cell, e.g. %env NSTLIB_SOURCE=git+https://github.com/OWNER/nstlib, then run this cell again.")
    else:
        print(f"Installing nstlib from {{source}} (a minute or two) ...")
        pip = subprocess.run([sys.executable, "-m", "pip", "install", "-q", source], capture_output=True, text=True)
        importlib.invalidate_caches()
        if pip.returncode != 0:
            print(f"Could not install nstlib from {{source}}: {{(pip.stderr.strip().splitlines() or ['pip failed'])[-1]}}")
            print("Check the address (NSTLIB_SOURCE, or REPOSITORY in nstlib/course/setup_cell.py) and the connection, then run this cell again.")

if importlib.util.find_spec("nstlib") is not None:
    from nstlib.course.report import environment_report, gpu_advice

    for key, value in environment_report().items():
        print(f"{{key:12}} {{value}}")
    print(gpu_advice(), end="")'''

Notebook = dict[str, Any]


def setup_source(repository: str = REPOSITORY) -> str:
    """The setup cell's source code, with ``repository`` as the course address."""
    return TEMPLATE.format(repository=json.dumps(repository))


def _source(cell: dict) -> str:
    src = cell.get("source", "")
    return "".join(src) if isinstance(src, list) else src


def is_setup_cell(cell: dict) -> bool:
    """Whether ``cell`` is a setup cell (a code cell starting with :data:`MARKER`), in any version."""
    return cell.get("cell_type") == "code" and _source(cell).startswith(MARKER)


def sync_setup(nb: Notebook, repository: str = REPOSITORY) -> bool:
    """Make ``nb``'s first code cell the current setup cell (in place); True if ``nb`` changed.

    An existing setup cell is rewritten where it stands if it is the first code cell; otherwise every
    setup cell is removed and a new one is inserted just before the first code cell (or at the end of
    a notebook without code), so a new notebook gets one too.
    """
    cells = nb.setdefault("cells", [])
    text = setup_source(repository)
    code = [i for i, c in enumerate(cells) if c.get("cell_type") == "code"]
    if code and is_setup_cell(cells[code[0]]) and not any(is_setup_cell(cells[i]) for i in code[1:]):
        cell = cells[code[0]]
        changed = _source(cell) != text
        if changed:
            cell["source"] = text.splitlines(keepends=True)
        return changed
    kept = [c for c in cells if not is_setup_cell(c)]
    first = next((i for i, c in enumerate(kept) if c.get("cell_type") == "code"), len(kept))
    taken = {c.get("id") for c in kept}
    cell = {"cell_type": "code", "execution_count": None, "id": SETUP_ID if SETUP_ID not in taken else None,
            "metadata": {}, "outputs": [], "source": text.splitlines(keepends=True)}
    if cell["id"] is None:
        del cell["id"]  # clean assigns a free one
    nb["cells"] = kept[:first] + [cell] + kept[first:]
    return True
