"""Create a throw-away venv layered over the packages of the Python that runs this script.

    python .ci/overlay_venv.py DEST [--hide NAME ...]

``python -m venv --system-site-packages`` layers a venv over the *base* interpreter, so when CI's
packages live in a venv themselves (torch, jupyter, ...) the new venv does not see them. This
script works whether the running Python is a venv or the system interpreter: it makes a plain
venv (``--without-pip``: pip comes from the layer below) and gives it a ``.pth`` file that adds a
folder of links to every entry of this interpreter's site-packages, processed like a site folder
(its ``.pth`` files run too, as with ``--system-site-packages``). Packages installed into the new
venv come first on ``sys.path`` and shadow the ones below.

``--hide NAME`` leaves a distribution out of the layer: its package folder, its ``.dist-info``
and its editable-install hooks, so the venv neither imports it nor reports it installed (the wheel
and Colab tests use ``--hide nstlib``: an editable nstlib of the developer must not be visible).
Prints the new venv's Python. Needs only the standard library.
"""
from __future__ import annotations

import argparse
import os
import re
import site
import subprocess
import sys
from pathlib import Path


def _site_dirs() -> list[Path]:
    dirs = []
    if site.ENABLE_USER_SITE and os.path.isdir(site.getusersitepackages()):
        dirs.append(site.getusersitepackages())
    dirs += site.getsitepackages()
    return [Path(d) for d in dict.fromkeys(dirs) if os.path.isdir(d)]


def _hidden(entry: str, names: list[str]) -> bool:
    low = entry.lower().replace("-", "_")
    for name in names:
        n = re.escape(name.lower().replace("-", "_"))
        if re.match(rf"^{n}($|[._])", low) or re.match(rf"^__editable__[._]+{n}[._]", low):
            return True
    return False


def overlay_venv(dest: Path, hide: list[str] = ()) -> Path:
    """Create the venv at ``dest`` (must not exist) and return its Python."""
    dest = Path(dest).resolve()
    if dest.exists():
        raise SystemExit(f"overlay_venv: {dest} already exists")
    python = sys.executable
    base = getattr(sys, "_base_executable", python)
    subprocess.run([base, "-m", "venv", "--without-pip", str(dest)], check=True)
    layer = dest / "layer"
    layer.mkdir()
    for folder in _site_dirs():  # the first folder holding a name wins, as on sys.path
        for entry in sorted(os.listdir(folder)):
            if entry.startswith(".") or entry == "__pycache__" or _hidden(entry, list(hide)):
                continue
            link = layer / entry
            if not link.exists() and not link.is_symlink():
                link.symlink_to(folder / entry)
    new_python = dest / ("Scripts/python.exe" if os.name == "nt" else "bin/python")
    purelib = subprocess.run([str(new_python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                             check=True, capture_output=True, text=True).stdout.strip()
    Path(purelib, "_overlay.pth").write_text(f"import site; site.addsitedir({str(layer)!r})\n")
    for name in hide:
        probe = subprocess.run([str(new_python), "-c", f"import importlib.util as u; print(u.find_spec({name!r}))"],
                               capture_output=True, text=True, cwd=dest, env={**os.environ, "PYTHONPATH": ""})
        if probe.stdout.strip() != "None":
            raise SystemExit(f"overlay_venv: {name} is still importable in {dest}: {probe.stdout.strip()}")
    return new_python


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("dest", type=Path)
    parser.add_argument("--hide", action="append", default=[], metavar="NAME",
                        help="a distribution to leave out of the layer (repeatable)")
    args = parser.parse_args(argv)
    print(overlay_venv(args.dest, args.hide))
    return 0


if __name__ == "__main__":
    sys.exit(main())
