"""Image I/O: everything becomes a float tensor of shape [1, 3, H, W] with values in [0, 1].

The network never sees anything else: ImageNet mean/std normalization happens inside
:class:`nstlib.VGGFeatures`, so images stay displayable and savable at every step.
"""
from __future__ import annotations

import io
import urllib.error
import urllib.request
import warnings
from pathlib import Path
from typing import Any, Union

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, ImageOps, UnidentifiedImageError

from .config import resolve_device
from .errors import ImageError

__all__ = ["load_image", "save_image", "to_pil", "free_path", "ImageSource", "Size"]

ImageSource = Union[str, Path, Image.Image, np.ndarray, torch.Tensor]
Size = Union[int, tuple[int, int], None]

URL_TIMEOUT = 20.0  # seconds
MAX_DOWNLOAD_BYTES = 64 * 2**20
MAX_PIXELS = 20_000 * 20_000  # refuse anything larger (decompression bombs)


def load_image(src: ImageSource, size: Size = None,
               device: str | torch.device | None = None) -> torch.Tensor:
    """Load an image as a float32 tensor of shape [1, 3, H, W] with values in [0, 1].

    Args:
        src: a file path; an ``http(s)://`` URL (fetched with a timeout); the name of a
            bundled example (``"starry_night"``, see :func:`nstlib.examples`); a PIL image;
            a numpy array of shape (H, W), (H, W, 3) or (H, W, 4), uint8 or uint16, or
            float in [0, 1]; or a tensor of shape [C, H, W] or [1, C, H, W] with C in {1, 3, 4}.
        size: ``None`` keeps the size; an int sets the longest side (aspect kept);
            ``(H, W)`` sets both.
        device: where the tensor goes (default: :func:`nstlib.default_device`).

    EXIF orientation is applied; grayscale, palette, CMYK and 16-bit images are converted
    to RGB; transparency is composited on white.

    Raises:
        ImageError: the input cannot be read or is not a valid image; the message names it.
    """
    dev = resolve_device(device)
    if isinstance(src, torch.Tensor):
        img = _from_tensor(src)
    elif isinstance(src, np.ndarray):
        img = _from_array(src, "the array")
    elif isinstance(src, Image.Image):
        img = _from_array(_pil_to_array(src, "the PIL image"), "the PIL image")
    elif isinstance(src, (str, Path)):
        pil = _open(src, size)
        img = _from_array(_pil_to_array(pil, repr(str(src))), repr(str(src)))
    else:
        raise ImageError(f"cannot load an image from a {type(src).__name__}; pass a path, "
                         "a URL, an example name, a PIL image, a numpy array or a tensor")
    if size is not None:
        img = resize(img, size)
    return img.to(dev)


def resize(img: torch.Tensor, size: Size) -> torch.Tensor:
    """Resize [B, 3, H, W] to ``size`` (int: longest side; (H, W): exact), antialiased."""
    if size is None:
        return img
    h, w = img.shape[-2:]
    if isinstance(size, int) and not isinstance(size, bool):
        if size < 1:
            raise ValueError(f"size must be a positive int or (H, W), got {size!r}")
        scale = size / max(h, w)
        new = (max(1, round(h * scale)), max(1, round(w * scale)))
    else:
        try:
            new = (int(size[0]), int(size[1]))
        except (TypeError, IndexError, ValueError):
            raise ValueError(f"size must be an int (longest side) or (H, W), got {size!r}") from None
        if min(new) < 1:
            raise ValueError(f"size must be positive, got {size!r}")
    if new == (h, w):
        return img
    out = F.interpolate(img, size=new, mode="bilinear", align_corners=False, antialias=True)
    return out.clamp_(0.0, 1.0)


def _open(src: str | Path, size: Size) -> Image.Image:
    """Open a path, URL or example name with PIL and fully decode it."""
    text = str(src)
    name = repr(text)
    if text.startswith(("http://", "https://")):
        data = _download(text)
        fp: Any = io.BytesIO(data)
    else:
        path = Path(text).expanduser()
        if not path.exists():
            from .examples import example_path, suggest
            found = example_path(text)
            if found is None:
                hint = suggest(text)
                raise ImageError(f"image file {name} does not exist; check the path"
                                 + (f", or use a bundled example such as {hint}" if hint else ""))
            path = found
        if path.is_dir():
            raise ImageError(f"{name} is a folder, not an image file; pass the path of a "
                             ".jpg or .png file inside it")
        if path.stat().st_size == 0:
            raise ImageError(f"image file {name} is empty (0 bytes); re-copy or re-download it")
        fp = path
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            pil = Image.open(fp)
            if pil.width * pil.height > MAX_PIXELS:
                raise ImageError(f"image {name} is {pil.width}x{pil.height} pixels, too large "
                                 "to load safely; shrink it with an image editor first")
            if isinstance(size, int) and pil.format == "JPEG":
                pil.draft("RGB", (size, size))  # decode a large JPEG at reduced scale
            pil.load()
    except ImageError:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise ImageError(f"image {name} declares an enormous size (a decompression bomb?); "
                         "refusing to decode it. Use a normal photo or shrink it first") from None
    except UnidentifiedImageError:
        raise ImageError(f"{name} is not an image PIL can read (is it really a .jpg/.png?); "
                         "open it in an image viewer and re-save it as PNG or JPEG") from None
    except (OSError, SyntaxError, ValueError) as e:
        raise ImageError(f"image {name} could not be decoded ({e}); the file is probably "
                         "truncated or damaged: re-download or re-export it") from None
    return pil


def _download(url: str) -> bytes:
    try:
        req = urllib.request.Request(url, headers={"User-Agent": "nstlib"})
        with urllib.request.urlopen(req, timeout=URL_TIMEOUT) as r:
            data = r.read(MAX_DOWNLOAD_BYTES + 1)
    except (urllib.error.URLError, OSError, ValueError) as e:
        reason = getattr(e, "reason", e)
        raise ImageError(f"could not download image {url!r} ({reason}); check the address and "
                         "your connection, or download it yourself and pass the file path") from None
    if len(data) > MAX_DOWNLOAD_BYTES:
        raise ImageError(f"image {url!r} is larger than {MAX_DOWNLOAD_BYTES // 2**20} MB; "
                         "download and shrink it first")
    if not data:
        raise ImageError(f"image {url!r} downloaded as 0 bytes; check the address")
    return data


def _pil_to_array(pil: Image.Image, name: str) -> np.ndarray:
    """A decoded PIL image -> float32 array (H, W, 3) in [0, 1]; orientation, modes, alpha."""
    try:
        pil = ImageOps.exif_transpose(pil)
    except Exception:  # a damaged EXIF block must not stop a valid image from loading
        pass
    mode = pil.mode
    if mode.startswith("I;16") or mode == "I":
        arr = np.asarray(pil, dtype=np.float64) / 65535.0
        return np.repeat(np.clip(arr, 0, 1)[..., None], 3, axis=2).astype(np.float32)
    if mode == "F":
        arr = np.asarray(pil, dtype=np.float64)
        arr = arr / 255.0 if arr.max(initial=0) > 1 else arr
        return np.repeat(np.clip(arr, 0, 1)[..., None], 3, axis=2).astype(np.float32)
    if mode == "P":
        pil = pil.convert("RGBA" if "transparency" in pil.info else "RGB")
    elif mode in ("LA", "PA", "La", "RGBa"):
        pil = pil.convert("RGBA")
    elif mode != "RGBA" and mode != "RGB":
        pil = pil.convert("RGB")  # L, 1, CMYK, YCbCr, LAB, HSV, ...
    return np.asarray(pil, dtype=np.float32) / 255.0  # (H, W, 3|4): alpha handled below


def _from_array(arr: np.ndarray, name: str) -> torch.Tensor:
    """(H, W), (H, W, 3) or (H, W, 4) array -> [1, 3, H, W] float32 in [0, 1]."""
    if arr.ndim == 3 and arr.shape[2] == 1:
        arr = arr[..., 0]
    if arr.ndim not in (2, 3) or (arr.ndim == 3 and arr.shape[2] not in (3, 4)):
        raise ImageError(f"{name} has shape {arr.shape}; expected (H, W), (H, W, 3) or (H, W, 4)")
    if arr.shape[0] < 1 or arr.shape[1] < 1:
        raise ImageError(f"{name} is empty (shape {arr.shape})")
    if arr.dtype == np.uint8:
        x = arr.astype(np.float32) / 255.0
    elif arr.dtype == np.uint16:
        x = arr.astype(np.float32) / 65535.0
    elif arr.dtype == np.bool_:
        x = arr.astype(np.float32)
    elif np.issubdtype(arr.dtype, np.floating):
        x = arr.astype(np.float32)
        if not np.isfinite(x).all():
            raise ImageError(f"{name} contains NaN or infinite values; fix the array first")
        if x.min() < 0 or x.max() > 1:
            raise ImageError(f"{name} has float values in [{x.min():.3g}, {x.max():.3g}]; "
                             "float images must lie in [0, 1] (divide uint8 data by 255)")
    else:
        raise ImageError(f"{name} has dtype {arr.dtype}; use uint8 (0-255), uint16, "
                         "or float in [0, 1]")
    if x.ndim == 2:
        x = np.repeat(x[..., None], 3, axis=2)
    if x.shape[2] == 4:  # composite on white
        alpha = x[..., 3:4]
        x = x[..., :3] * alpha + (1.0 - alpha)
    t = torch.from_numpy(np.ascontiguousarray(x)).permute(2, 0, 1).unsqueeze(0)
    return t.contiguous()


def _from_tensor(t: torch.Tensor) -> torch.Tensor:
    if t.dim() == 4 and t.shape[0] == 1:
        t = t[0]
    if t.dim() == 2:
        t = t.unsqueeze(0)
    if t.dim() != 3 or t.shape[0] not in (1, 3, 4):
        raise ImageError(f"the tensor has shape {tuple(t.shape)}; expected [3, H, W] or "
                         "[1, 3, H, W] (1 or 4 channels are converted)")
    arr = t.detach().cpu().permute(1, 2, 0).numpy()
    return _from_array(arr, f"the tensor of shape {tuple(t.shape)}")


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
    """``path`` if nothing is there, else the first free ``name_1.ext``, ``name_2.ext``, ..."""
    path = Path(path)
    if not path.exists():
        return path
    i = 1
    while True:
        cand = path.with_name(f"{path.stem}_{i}{path.suffix}")
        if not cand.exists():
            return cand
        i += 1


def save_image(img: torch.Tensor, path: str | Path, overwrite: bool = False) -> Path:
    """Save a [1, 3, H, W] tensor in [0, 1] to ``path`` (format from the suffix; JPEG quality 95).

    Never overwrites an existing file unless ``overwrite=True``: an existing name gets a
    suffix (``out.jpg`` -> ``out_1.jpg``). Missing folders are created.

    Returns:
        The path actually written.
    """
    path = Path(path).expanduser()
    if path.suffix.lower() not in {".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp"}:
        raise ImageError(f"cannot save to {str(path)!r}: use a .png or .jpg file name")
    if not overwrite:
        path = free_path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    pil = to_pil(img)
    kwargs = {"quality": 95} if path.suffix.lower() in {".jpg", ".jpeg", ".webp"} else {}
    try:
        pil.save(path, **kwargs)
    except OSError as e:
        raise ImageError(f"could not write {str(path)!r} ({e}); check the folder is writable") from None
    return path
