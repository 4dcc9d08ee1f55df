"""The notebooks store the kernel metadata JupyterLab writes when their kernel starts (issue 12).

JupyterLab 4 copies the kernel's spec (``kernelspec``) and its ``kernel_info`` reply
(``language_info``) into the notebook's metadata once the kernel is up, and marks the notebook
modified unless each value is deep-equal to the stored one. The values it copies are taken here
from ipykernel itself (the installed kernel spec and ``IPythonKernel.language_info``), a second
source beside the literal in :func:`nstlib.course.notebook_files.kernel_metadata`. The browser check is
tests/browser/test_install_lab.py.
"""
from __future__ import annotations

import re
import sys

import pytest

from nstlib.course.notebook_files import find_notebooks, kernel_metadata, read_notebook
from nstlib.course.tool import clean_notebook

NOTEBOOKS = find_notebooks()


def _ipykernel_metadata() -> tuple[dict, dict]:
    """(kernelspec, language_info) as JupyterLab would write them for ipykernel's python3 kernel."""
    kernelspec = pytest.importorskip("ipykernel.kernelspec")
    ipkernel = pytest.importorskip("ipykernel.ipkernel")
    spec = kernelspec.get_kernel_dict()
    return ({"name": kernelspec.KERNEL_NAME, "display_name": spec["display_name"], "language": spec["language"]},
            dict(ipkernel.IPythonKernel.language_info))


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_stores_what_jupyterlab_writes_when_the_kernel_starts(path):
    spec, info = _ipykernel_metadata()
    meta = read_notebook(path)["metadata"]
    assert meta["kernelspec"] == spec, f"{path.name}: run `python -m nstlib.course clean {path}`"
    stored = dict(meta["language_info"])
    assert re.fullmatch(r"3\.\d+\.\d+", stored.pop("version")), path.name
    info.pop("version")  # the kernel's Python: see the next test
    assert stored == info, f"{path.name}: run `python -m nstlib.course clean {path}`"


def test_every_notebook_stores_one_python_version():
    versions = {read_notebook(p)["metadata"]["language_info"]["version"] for p in NOTEBOOKS}
    assert len(versions) == 1, f"the notebooks store different Python versions: {sorted(versions)}"


def test_kernel_metadata_fixes_the_spec_and_keeps_a_stored_version():
    old = {"metadata": {"kernelspec": {"display_name": "Python 3", "language": "python", "name": "python3"},
                        "language_info": {"name": "python", "version": "3.10.12"}}, "cells": []}
    meta = kernel_metadata(old)["metadata"]
    assert meta["kernelspec"] == {"display_name": "Python 3 (ipykernel)", "language": "python", "name": "python3"}
    assert meta["language_info"]["version"] == "3.10.12"  # cleaning does not depend on who cleans
    assert meta["language_info"]["pygments_lexer"] == "ipython3"
    assert meta["language_info"]["codemirror_mode"] == {"name": "ipython", "version": 3}
    fresh = clean_notebook({"nbformat": 4, "nbformat_minor": 5, "metadata": {}, "cells": []})
    assert fresh["metadata"]["language_info"]["version"] == sys.version.split()[0]
