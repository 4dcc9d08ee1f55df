"""Automatic checks for the course's exercises: ``nstlib.checks.check_<name>(fn)``.

Each check calls the student's function on small inputs, compares it with the library's
reference, and prints a clear PASS or FAIL with a hint. It never lets a traceback from deep
inside torch reach the student: an exception raised by the student's code (including the
``NotImplementedError`` of an unsolved exercise) is reported as a FAIL with the hint.

Returns True on pass, False on fail, so a notebook cell can also ``assert`` it.
"""
from __future__ import annotations

from typing import Callable

__all__ = ["report", "run_check"]


def report(name: str, ok: bool, hint: str = "", detail: str = "") -> bool:
    """Print ``PASS``/``FAIL`` for exercise ``name`` (with the hint on failure); return ``ok``."""
    if ok:
        print(f"PASS: {name}" + (f" ({detail})" if detail else ""))
    else:
        print(f"FAIL: {name}" + (f": {detail}" if detail else ""))
        if hint:
            print(f"Hint: {hint}")
    return ok


def run_check(name: str, hint: str, body: Callable[[], tuple[bool, str]]) -> bool:
    """Run ``body() -> (ok, detail)``; an exception from the student's code becomes a FAIL."""
    try:
        ok, detail = body()
    except NotImplementedError:
        return report(name, False, hint, "not implemented yet (replace `raise NotImplementedError`)")
    except Exception as e:  # the student's code may raise anything; report it, don't crash
        return report(name, False, hint, f"your function raised {type(e).__name__}: {e}")
    return report(name, bool(ok), hint, detail)


# --- Notebook 01-02 checks (content loss, Gram matrix) go below this line ---


# --- Notebook 03-04 checks (pooling, optimization) go below this line ---


# --- Notebook 05-06 checks go below this line ---
