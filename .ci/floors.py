"""Check that the declared minimum versions are the ones this environment runs (the floors CI stage).

    python .ci/floors.py

Reads the floors (``>=X``) of torch, torchvision and ipywidgets from pyproject.toml, checks that
requirements.txt declares the same ones, and that the installed versions are at those floors
(same release up to the floor's precision: floor 2.14 is met by 2.14.1, not by 2.15). CI's floors
stage runs it in a venv that has ipywidgets at its floor, then runs the widget tests there: so a
floor is only declared where it is tested. Fails (exit 1) with what to change otherwise.
"""
from __future__ import annotations

import re
import sys
from importlib.metadata import version
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CHECKED = ("torch", "torchvision", "ipywidgets")


def floors(text: str) -> dict[str, str]:
    return {m[0].lower(): m[1] for m in re.findall(r'^\s*"?([A-Za-z0-9_.-]+)\s*>=\s*([0-9][0-9.]*)', text, re.M)}


def main() -> int:
    deps = re.search(r"^dependencies = \[(.*?)^\]", (ROOT / "pyproject.toml").read_text(), re.S | re.M)
    declared, required = floors(deps.group(1)), floors((ROOT / "requirements.txt").read_text())
    problems = []
    for name in CHECKED:
        floor, installed = declared.get(name), version(name)
        if floor is None:
            problems.append(f"{name}: no floor (>=) in pyproject.toml")
            continue
        if required.get(name) != floor:
            problems.append(f"{name}: requirements.txt says >={required.get(name)}, pyproject.toml >={floor}")
        release = installed.split("+")[0].split(".")
        if release[:len(floor.split("."))] != floor.split("."):
            problems.append(f"{name}: the floor {floor} is not what runs here ({installed}); "
                            f"raise the floor to what CI tests, or test the floor")
        print(f"{name:12} floor {floor:8} installed {installed}")
    for p in problems:
        print(f"floors: {p}", file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
