"""Pixels: PIL images, numpy arrays and tensors -> a float32 tensor [1, 3, H, W] in [0, 1].

Used by :func:`nstlib.load_image`; every failure is an :class:`~nstlib.ImageError` naming the input.
"""
from __future__ import annotations

import numpy as np
import torch
from PIL import Image, ImageOps

from .errors import ImageError

__all__ = ["pil_to_array", "from_array", "from_tensor"]


def pil_to_array(pil: Image.Image, name: str) -> np.ndarray:
    """A PIL image -> float32 array (H, W, 3|4) in [0, 1] (alpha, if any, is composited later)."""
    try:
        return _pixels(pil)
    except Exception as e:  # an exotic mode, or a lazy image whose data turns out damaged
        raise ImageError(f"image {name} (mode {pil.mode!r}) could not be converted to RGB pixels "
                         f"({type(e).__name__}: {str(e)[:100]}); re-save it as an RGB PNG or JPEG") from None


def _pixels(pil: Image.Image) -> np.ndarray:
    """Orientation (EXIF), then modes: 16-bit, float, palette, alpha, CMYK, ... -> RGB(A)."""
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


def from_array(arr: np.ndarray, name: str) -> torch.Tensor:
    """(H, W), (H, W, 3) or (H, W, 4) array -> [1, 3, H, W] float32 in [0, 1]."""
    if arr.ndim == 3 and arr.shape[2] == 1:
        arr = arr[..., 0]
    if arr.ndim not in (2, 3) or (arr.ndim == 3 and arr.shape[2] not in (3, 4)):
        hint = " (channels first? use arr.transpose(1, 2, 0))" if arr.ndim == 3 and arr.shape[0] in (3, 4) else ""
        raise ImageError(f"{name} has shape {arr.shape}; expected (H, W), (H, W, 3) or (H, W, 4){hint}")
    if arr.shape[0] < 1 or arr.shape[1] < 1:
        raise ImageError(f"{name} is empty (shape {arr.shape})")
    kind, nbytes = arr.dtype.kind, arr.dtype.itemsize  # any byte order
    if kind == "u" and nbytes == 1:
        x = arr.astype(np.float32) / 255.0
    elif kind == "u" and nbytes == 2:
        x = arr.astype(np.float32) / 65535.0
    elif kind == "b":
        x = arr.astype(np.float32)
    elif kind == "f":
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


def from_tensor(t: torch.Tensor) -> torch.Tensor:
    if t.is_floating_point() or t.is_complex():
        t = t.detach().to("cpu", torch.complex64 if t.is_complex() else torch.float32)  # bfloat16 has no numpy dtype
    if t.dim() == 4 and t.shape[0] == 1:
        t = t[0]
    if t.dim() == 2:
        t = t.unsqueeze(0)
    if t.dim() != 3 or t.shape[0] not in (1, 3, 4):
        raise ImageError(f"the tensor has shape {tuple(t.shape)}; expected [3, H, W] or "
                         "[1, 3, H, W] (1 or 4 channels are converted)")
    arr = t.detach().cpu().permute(1, 2, 0).numpy()
    return from_array(arr, f"the tensor of shape {tuple(t.shape)}")
