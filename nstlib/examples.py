"""The bundled images: content photos, paintings and textures (credits in images/CREDITS.md).

Names and paths only; :func:`nstlib.example` (in :mod:`nstlib.image`) loads one."""
from __future__ import annotations

import difflib
import os
from pathlib import Path

from .errors import ImageError, check_choice

__all__ = ["examples", "example_path", "images_dir", "KINDS"]

KINDS = ("content", "style", "texture")
_SUFFIXES = (".jpg", ".jpeg", ".png")


def images_dir() -> Path:
    """The folder holding ``content/``, ``style/`` and ``texture/``.

    ``NSTLIB_IMAGES`` overrides it; otherwise the copy installed inside the package (``nstlib/images``,
    from a wheel) or, in a clone or an editable install, the repository's ``images/``.
    """
    env = os.environ.get("NSTLIB_IMAGES")
    here = Path(__file__).resolve().parent
    for cand in ([Path(env)] if env else []) + [here / "images", here.parent / "images"]:
        if (cand / "content").is_dir():
            return cand
    raise ImageError("the bundled images were not found; install nstlib from a clone of the "
                     "course repository (pip install -e .) or set NSTLIB_IMAGES to its images/ folder")


def _index() -> dict[str, tuple[str, Path]]:
    root = images_dir()
    out: dict[str, tuple[str, Path]] = {}
    for kind in KINDS:
        for p in sorted((root / kind).glob("*")):
            if p.suffix.lower() in _SUFFIXES:
                out[p.stem] = (kind, p)
    return out


def examples(kind: str | None = None) -> list[str]:
    """Names of the bundled images, optionally only one kind: ``content``, ``style`` or ``texture``."""
    if kind is not None:
        check_choice("kind", kind, KINDS, " or None")
    return [n for n, (k, _) in _index().items() if kind is None or k == kind]


def example_path(name: str) -> Path | None:
    """The file of bundled image ``name`` (the stem, e.g. ``"starry_night"``), or None."""
    try:
        hit = _index().get(Path(name).stem if Path(name).suffix.lower() in _SUFFIXES else name)
    except ImageError:
        return None
    return hit[1] if hit else None


def suggest(name: str, n: int = 3) -> str:
    """A short "a, b or c" list of bundled names close to ``name`` ('' if none)."""
    try:
        names = list(_index())
    except ImageError:
        return ""
    close = difflib.get_close_matches(Path(name).stem, names, n=n, cutoff=0.5) or names[:n]
    return ", ".join(repr(c) for c in close)
