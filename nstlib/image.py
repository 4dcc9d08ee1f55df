"""Image I/O: everything becomes a float tensor of shape [1, 3, H, W] with values in [0, 1].

The network never sees anything else: ImageNet mean/std normalization happens inside
:class:`nstlib.VGGFeatures`, so images stay displayable and savable at every step.
"""
from __future__ import annotations

import io
import re
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Union, cast

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, UnidentifiedImageError

from .config import resolve_device
from .errors import ImageError
from .fetch import download, is_url
from .pixels import draft_box, from_array, from_tensor, pil_to_array

__all__ = ["load_image", "example", "resize", "check_size", "ImageSource", "Size", "FORMATS"]

ImageSource = Union[str, Path, bytes, Image.Image, np.ndarray, torch.Tensor]
Size = Union[int, tuple[int, int], None]

MAX_PIXELS = 20_000 * 20_000  # refuse anything larger (decompression bombs)
#: The only formats decoded (Pillow's names): no EPS/PDF (Ghostscript), no exotic decoders.
FORMATS = ("JPEG", "MPO", "PNG", "GIF", "BMP", "DIB", "TIFF", "WEBP", "PPM", "TGA", "ICO")
_BARE_NAME = re.compile(r"[\w-]+")  # what may name a bundled example: no folder, no suffix


def load_image(src: ImageSource, size: Size = None,
               device: str | torch.device | None = None) -> torch.Tensor:
    """Load an image as a float32 tensor of shape [1, 3, H, W] with values in [0, 1].

    Args:
        src: a file path; an ``http(s)://`` URL (fetched within a deadline and a size cap, see
            :mod:`nstlib.fetch`); the bare name of a bundled example (``"starry_night"``: no
            folder, no suffix; see :func:`nstlib.examples`); the bytes of an
            image file or a binary file object (e.g. an upload widget's content); a PIL image;
            a numpy array of shape (H, W), (H, W, 3) or (H, W, 4), uint8 or uint16, or
            float in [0, 1]; or a tensor of shape [C, H, W] or [1, C, H, W] with C in {1, 3, 4}.
        size: ``None`` keeps the size; an int sets the longest side (aspect kept);
            ``(H, W)`` sets both.
        device: where the tensor goes (default: :func:`nstlib.default_device`).

    EXIF orientation is applied; grayscale, palette, CMYK and 16-bit images are converted
    to RGB (how each mode maps to [0, 1]: :mod:`nstlib.pixels`); transparency is composited on
    white. Only the formats in :data:`FORMATS` are decoded. With a ``size``, a large image is
    decoded at reduced scale (JPEG draft mode, else an integer box reduction to >= 2x ``size``
    in the image's own mode), so peak memory is about the decoded file plus the output.

    Raises:
        ImageError: the input cannot be read or is not a valid image; the message names it.
    """
    dev = resolve_device(device)
    size = check_size(size)
    if isinstance(src, torch.Tensor):
        img = from_tensor(src)
    elif isinstance(src, np.ndarray):
        img = from_array(src, f"the {src.dtype} array")
    elif isinstance(src, Image.Image):
        img = from_array(pil_to_array(src, "the PIL image", size), "the PIL image")
    elif isinstance(src, (str, Path, bytes, bytearray, memoryview)) or hasattr(src, "read"):
        pil, name = _open(src, size)
        img = from_array(pil_to_array(pil, name, size), name)
    else:
        raise ImageError(f"cannot load an image from a {type(src).__name__}; pass a path, a URL, "
                         "an example name, bytes, a PIL image, a numpy array or a tensor")
    if size is not None:
        img = resize(img, size)
    return img.to(dev)


def resize(img: torch.Tensor, size: Size) -> torch.Tensor:
    """Resize [B, 3, H, W] to ``size`` (int: longest side; (H, W): exact), antialiased."""
    if size is None:
        return img
    h, w = img.shape[-2:]
    size = check_size(size)
    if isinstance(size, int):
        scale = size / max(h, w)
        new = (max(1, round(h * scale)), max(1, round(w * scale)))
    else:
        new = size  # type: ignore[assignment]
    if new == (h, w):
        return img
    out = F.interpolate(img, size=new, mode="bilinear", align_corners=False, antialias=True)
    return out.clamp_(0.0, 1.0)


def check_size(size: object) -> Size:
    """``size`` checked: None, a positive int (the longest side) or (H, W) of positive ints, with at
    most :data:`MAX_PIXELS` pixels; anything else is a ValueError naming it (before any memory is used)."""
    if size is None:
        return None
    if isinstance(size, (int, np.integer)) and not isinstance(size, bool):
        if size < 1:
            raise ValueError(f"size must be a positive int (the longest side in px) or (H, W), got {size!r}")
        if size * size > MAX_PIXELS:
            raise ValueError(f"size={size!r} is larger than nstlib handles (at most "
                             f"{int(MAX_PIXELS ** 0.5)} px on a side); use a smaller size")
        return int(size)
    try:
        seq = cast("Sequence[Any]", size)  # anything else fails below with TypeError
        new = (int(seq[0]), int(seq[1]))
        ok = len(seq) == 2 and all(float(v) == int(v) for v in seq)
    except (TypeError, IndexError, ValueError, OverflowError):
        ok = False
    if not ok or isinstance(size, (str, bytes)):
        raise ValueError(f"size must be an int (longest side) or (H, W), got {size!r}")
    if min(new) < 1:
        raise ValueError(f"size must be positive, got {size!r}")
    if new[0] * new[1] > MAX_PIXELS:
        raise ValueError(f"size={size!r} is larger than nstlib handles (at most {MAX_PIXELS:,} pixels); "
                         "use a smaller size")
    return new


def _open(src: Any, size: Size) -> tuple[Image.Image, str]:
    """Open a path, URL, example name, bytes or binary file object with PIL; fully decode it.

    Returns the image and the name error messages use for the input."""
    if isinstance(src, (bytes, bytearray, memoryview)) or hasattr(src, "read"):
        label = getattr(src, "name", None)
        name = repr(str(label)) if isinstance(label, (str, Path)) else f"the {type(src).__name__} input"
        try:
            data = bytes(src) if not hasattr(src, "read") else src.read()
        except (OSError, ValueError) as e:  # a closed or unreadable file object
            raise ImageError(f"could not read {name} ({e}); open the file again in binary mode ('rb')") from None
        if not isinstance(data, bytes):
            raise ImageError(f"{name} gave {type(data).__name__}, not bytes; open the file in binary mode ('rb')")
        if not data:
            raise ImageError(f"{name} is empty (0 bytes); upload or read the image file again")
        return _decode(io.BytesIO(data), name, size), name
    text = str(src)
    name = repr(text)
    if is_url(text):
        fp: Any = io.BytesIO(download(text))
    else:
        try:
            path = Path(text).expanduser()
            exists = path.exists()
        except (OSError, ValueError, RuntimeError) as e:  # a NUL byte, a name too long, ~nobody, ...
            raise ImageError(f"{name} is not a usable file path ({e}); check the path") from None
        if not exists:
            path = _bundled(text, name)
        if path.is_dir():
            raise ImageError(f"{name} is a folder, not an image file; pass the path of a "
                             ".jpg or .png file inside it")
        if path.stat().st_size == 0:
            raise ImageError(f"image file {name} is empty (0 bytes); re-copy or re-download it")
        fp = path
    return _decode(fp, name, size), name


def _bundled(text: str, name: str) -> Path:
    """The bundled example a missing path names; only a bare name (no folder, no suffix) may."""
    from .examples import example_path, suggest
    found = example_path(text) if _BARE_NAME.fullmatch(text) else None
    if found is not None:
        return found
    hint = suggest(text)
    bundled = example_path(Path(text).name)
    raise ImageError(f"image file {name} does not exist; check the path"
                     + (f" (the bundled example of that name is {Path(text).stem!r}, without folder "
                        "or suffix)" if bundled else f", or use a bundled example such as {hint}" if hint else ""))


def _formats() -> list[str]:
    """:data:`FORMATS` this Pillow has a decoder for (all its plugins registered first)."""
    Image.init()
    return [f for f in FORMATS if f in Image.OPEN]


def _decode(fp: Any, name: str, size: Size) -> Image.Image:
    """Decode a file or buffer with PIL: only :data:`FORMATS`, bombs refused, a large JPEG
    decoded at reduced scale (the box reduction of other formats: :func:`pil_to_array`)."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            pil = Image.open(fp, formats=_formats())
            if pil.width * pil.height > MAX_PIXELS:
                raise ImageError(f"image {name} is {pil.width}x{pil.height} pixels, too large "
                                 "to load safely; shrink it with an image editor first")
            box = draft_box(size)
            if box is not None and pil.format in ("JPEG", "MPO"):
                pil.draft("RGB", box)  # decode a large JPEG at reduced scale
            pil.load()
    except ImageError:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise ImageError(f"image {name} declares an enormous size (a decompression bomb?); "
                         "refusing to decode it. Use a normal photo or shrink it first") from None
    except UnidentifiedImageError:
        raise ImageError(f"{name} is not an image nstlib reads (it decodes only {', '.join(FORMATS)}; "
                         "is it really a .jpg/.png? EPS/PDF files and iPhone .heic photos must be "
                         "exported as JPEG); open it in an image viewer and re-save it as PNG or JPEG") from None
    except PermissionError:
        raise ImageError(f"image file {name} cannot be read (permission denied); copy it to a "
                         "folder of yours or fix its permissions") from None
    except MemoryError:
        raise ImageError(f"image {name} is too large to decode in memory; pass a smaller size= "
                         "or shrink it with an image editor first") from None
    except Exception as e:  # PIL's decoders raise many types on damaged data (OSError, struct.error, ...)
        raise ImageError(f"image {name} could not be decoded ({type(e).__name__}: {str(e)[:100]}); "
                         "the file is probably truncated or damaged: re-download or re-export it") from None
    return pil


def example(name: str, size: int | tuple[int, int] | None = None,
            device: str | torch.device | None = None) -> torch.Tensor:
    """Load bundled image ``name`` as [1, 3, H, W] in [0, 1], e.g. ``example("starry_night", 256)``."""
    from .examples import example_path, suggest
    path = example_path(name)
    if path is None:
        raise ImageError(f"there is no bundled image {name!r}; try {suggest(name)} "
                         "(nstlib.examples() lists them all)")
    return load_image(path, size=size, device=device)
