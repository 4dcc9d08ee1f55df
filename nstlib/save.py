"""Saving images: a tensor to a file, never overwriting one and never leaving half a file behind."""
from __future__ import annotations

import hashlib
import itertools
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch
from PIL import Image

from .errors import ImageError

__all__ = ["save_image", "to_pil", "free_path", "fit_name", "SAVE_SUFFIXES"]

SAVE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp")  # what save_image writes


def to_pil(img: torch.Tensor) -> Image.Image:
    """A [1, 3, H, W] or [3, H, W] tensor in [0, 1] -> an RGB PIL image (values clamped)."""
    if img.dim() == 4:
        if img.shape[0] != 1:
            raise ImageError(f"to_pil takes one image, got a batch of {img.shape[0]}")
        img = img[0]
    if img.dim() != 3 or img.shape[0] != 3:
        raise ImageError(f"to_pil expects [1, 3, H, W] or [3, H, W], got {tuple(img.shape)}")
    arr = img.detach().float().clamp(0, 1).mul(255).round().byte().permute(1, 2, 0).cpu().numpy()
    return Image.fromarray(arr, "RGB")


def free_path(path: str | Path) -> Path:
    """``path`` if nothing is there, else the first free ``name_1.ext``, ``name_2.ext``, ...

    Only a hint (another process may take the name next); :func:`save_image` creates its file
    exclusively instead."""
    for cand in _numbered(Path(path)):
        if not cand.exists():
            return cand
    raise AssertionError("unreachable")


def _numbered(path: Path) -> Iterator[Path]:
    """``path``, then ``name_1.ext``, ``name_2.ext``, ... without end."""
    yield path
    for i in itertools.count(1):
        yield path.with_name(f"{path.stem}_{i}{path.suffix}")


def fit_name(path: Path, reserve: int = 8) -> Path:
    """``path`` with its file name shortened, if needed, to fit the filesystem's name limit
    (``NAME_MAX``, usually 255 bytes) with ``reserve`` bytes to spare for a ``_N`` suffix.

    The name keeps its start and its end (for a default name: the content name and the
    parameters) around a ``~`` and 8 hex digits of its SHA-1, so different long names stay different."""
    try:
        limit = os.pathconf(path.parent if path.parent.is_dir() else ".", "PC_NAME_MAX")
    except (OSError, ValueError, AttributeError):  # no pathconf (Windows) or an unknown folder
        limit = 255
    limit = max(32, min(int(limit), 255)) - reserve
    if len(path.name.encode()) <= limit:
        return path
    stem, suffix = path.stem, path.suffix
    tag = "~" + hashlib.sha1(stem.encode()).hexdigest()[:8] + "~"
    room = limit - len(suffix.encode()) - len(tag)
    tail = min(len(stem) // 2, room // 3)
    head = room - tail
    while len((stem[:head] + tag + stem[len(stem) - tail:] + suffix).encode()) > limit:
        head, tail = max(0, head - 1), tail - (head == 0)  # multi-byte characters: shrink further
    return path.with_name(stem[:head] + tag + stem[len(stem) - tail:] + suffix)


def save_image(img: torch.Tensor, path: str | Path, overwrite: bool = False) -> Path:
    """Save a [1, 3, H, W] tensor in [0, 1] to ``path`` (format from the suffix; JPEG quality 95).

    Never overwrites an existing file unless ``overwrite=True``: the file is created exclusively,
    so an existing name, even one taken by a save running at the same time, gets a suffix
    (``out.jpg`` -> ``out_1.jpg``). A name too long for the filesystem is shortened
    (:func:`fit_name`). A failed save leaves no file behind; with ``overwrite=True`` the old file
    is replaced only once the new one is complete. Missing folders are created.

    Returns:
        The path actually written.
    """
    path = Path(path).expanduser()
    if path.suffix.lower() not in SAVE_SUFFIXES:
        raise ImageError(f"cannot save to {str(path)!r}: use a .png or .jpg file name")
    pil = to_pil(img)
    fmt = Image.registered_extensions().get(path.suffix.lower())
    kwargs = {"quality": 95} if path.suffix.lower() in {".jpg", ".jpeg", ".webp"} else {}
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        path = fit_name(path)
        if overwrite:
            fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".nstlib-", suffix=path.suffix)
            _write(pil, os.fdopen(fd, "wb"), Path(tmp), fmt, kwargs)
            os.replace(tmp, path)
            return path
        for cand in _numbered(path):
            try:
                f = open(cand, "xb")  # O_CREAT | O_EXCL: exactly one saver gets each name
            except FileExistsError:
                continue
            _write(pil, f, cand, fmt, kwargs)
            return cand
    except OSError as e:
        raise ImageError(f"could not write {str(path)!r} ({e}); check the folder is writable "
                         "and the disk is not full") from None
    raise AssertionError("unreachable")


def _write(pil: Image.Image, f: Any, path: Path, fmt: str | None, kwargs: dict) -> None:
    """Encode ``pil`` into the open file ``f`` (at ``path``); on any failure remove the file."""
    try:
        with f:
            pil.save(f, format=fmt, **kwargs)
    except BaseException as e:
        path.unlink(missing_ok=True)
        if isinstance(e, Exception) and not isinstance(e, OSError):  # an encoder's ValueError, ...
            raise OSError(f"{type(e).__name__}: {e}") from None
        raise
