"""Pixels: PIL images, numpy arrays and tensors -> a float32 tensor [1, 3, H, W] in [0, 1].

Used by :func:`nstlib.load_image`; every failure is an :class:`~nstlib.ImageError` naming the input.

How each PIL mode maps to [0, 1] (``docs/reliability.md``):

- 8-bit modes (``1``, ``L``, ``P``, ``RGB``, ``RGBA``, ``CMYK``, ...): value / 255 after conversion
  to RGB; transparency is composited on white.
- 16-bit modes (``I;16``, ``I;16B``, ...): value / 65535.
- ``I`` (32-bit signed integers) declares no range, so the values decide: all in 0..255 means 8-bit
  data (/ 255, so a mode-``I`` image holding 8-bit values is not nearly black), all in 0..65535
  means 16-bit data (/ 65535); negative values or values above 65535 are refused.
- ``F`` (32-bit float): values in [0, 1] are used as they are, like float arrays; anything else
  (and NaN/inf) is refused with the range found: nstlib does not guess a scale.

With a ``size``, a large image is box-reduced in its own mode (band by band where a conversion
is needed) before any float copy is made, so peak memory stays near the decoded file's own size.
"""
from __future__ import annotations

import math
from typing import Union, cast

import numpy as np
import torch
from PIL import Image

from .errors import ImageError

__all__ = ["pil_to_array", "from_array", "from_tensor", "reduce_factor", "draft_box"]

Size = Union[int, tuple[int, int], None]
BAND_PIXELS = 2**21  # pixels per band when a large image is converted before reduction (~8 MB RGBA)
_TURN = {2: Image.Transpose.FLIP_LEFT_RIGHT, 3: Image.Transpose.ROTATE_180,  # EXIF orientation
         4: Image.Transpose.FLIP_TOP_BOTTOM, 5: Image.Transpose.TRANSPOSE,   # (as ImageOps does)
         6: Image.Transpose.ROTATE_270, 7: Image.Transpose.TRANSVERSE, 8: Image.Transpose.ROTATE_90}
_ALPHA = ("LA", "PA", "La", "RGBa", "RGBA")


def draft_box(size: Size) -> tuple[int, int] | None:
    """``size`` as the (width, height) box an image must cover, or None (no size, or an invalid
    one: :func:`nstlib.image.resize` names it)."""
    if isinstance(size, bool) or size is None:
        return None
    try:
        box = (size, size) if isinstance(size, int) else (int(size[1]), int(size[0]))
    except (TypeError, ValueError, IndexError):
        return None
    return box if min(box) > 0 else None


def reduce_factor(width: int, height: int, size: Size) -> int:
    """The integer box-reduction that keeps an image at >= 2x ``size`` (1: no reduction);
    an int ``size`` is the longest side, ``(H, W)`` both sides."""
    box = draft_box(size)
    if box is None:
        return 1
    if isinstance(size, int):
        return max(1, max(width, height) // (2 * size))
    return max(1, min(width // (2 * box[0]), height // (2 * box[1])))


def pil_to_array(pil: Image.Image, name: str, size: Size = None) -> np.ndarray:
    """A PIL image -> float32 array (H, W, 3|4) in [0, 1] (alpha, if any, is composited later).

    With ``size``, a large image is first box-reduced to >= 2x ``size`` (:func:`reduce_factor`)."""
    try:
        try:
            turn = _TURN.get(pil.getexif().get(0x0112, 1))
        except Exception:  # a damaged EXIF block must not stop a valid image from loading
            turn = None
        scale = _scale(pil, name)
        pil = _reduce(pil, reduce_factor(pil.width, pil.height, size))
        if turn is not None:
            pil = pil.transpose(turn)
        return _pixels(pil, scale, name)
    except ImageError:
        raise
    except Exception as e:  # an exotic mode, or a lazy image whose data turns out damaged
        raise ImageError(f"image {name} (mode {pil.mode!r}) could not be converted to RGB pixels "
                         f"({type(e).__name__}: {str(e)[:100]}); re-save it as an RGB PNG or JPEG") from None


def _scale(pil: Image.Image, name: str) -> float:
    """What the mode's values are divided by to lie in [0, 1] (the module docstring's rules)."""
    mode = pil.mode
    if mode.startswith("I;16"):
        return 65535.0
    if mode not in ("I", "F"):
        return 255.0
    lo, hi = cast("tuple[float, float]", pil.getextrema())  # one band (mode I or F): a pair
    if mode == "I":
        if lo >= 0 and hi <= 255:
            return 255.0
        if lo >= 0 and hi <= 65535:
            return 65535.0
        raise ImageError(f"image {name} holds 32-bit integer pixels in [{lo}, {hi}], which have no "
                         "standard range; save it as an 8- or 16-bit image (values 0..255 or 0..65535)")
    if not (math.isfinite(lo) and math.isfinite(hi)):
        raise ImageError(f"image {name} holds NaN or infinite float pixels; fix the file first")
    if lo < 0 or hi > 1:
        raise ImageError(f"image {name} holds float pixels in [{lo:.4g}, {hi:.4g}]; float images must "
                         "lie in [0, 1]: rescale it (e.g. divide by 255 for 8-bit data) or save it as 8/16-bit")
    return 1.0


def _work_mode(mode: str, info: dict) -> str:
    """The mode a large image is reduced in: its own where Pillow can box-average it."""
    if mode.startswith("I;16"):
        return "I"
    if mode == "1":
        return "L"
    if mode == "P":
        return "RGBA" if "transparency" in info else "RGB"
    return "RGBA" if mode in _ALPHA else mode


def _on_white(band: Image.Image, work: str) -> Image.Image:
    """``band`` in mode ``work``; with transparency, composited on white (RGB)."""
    band = band.convert(work) if band.mode != work else band
    if work != "RGBA":
        return band
    return Image.alpha_composite(Image.new("RGBA", band.size, (255, 255, 255, 255)), band).convert("RGB")


def _reduce(pil: Image.Image, factor: int) -> Image.Image:
    """Box-reduce ``pil`` by ``factor``; a mode conversion, if needed, runs on bands of rows so
    that no full-size converted copy exists. Transparency is composited on white first."""
    if factor < 2:
        return pil
    pil.load()
    work = _work_mode(pil.mode, pil.info)
    if work == pil.mode and work != "RGBA":
        return pil.reduce(factor)
    w, h = pil.size
    rows = factor * max(1, BAND_PIXELS // (w * factor))
    out = Image.new("RGB" if work == "RGBA" else work, (-(-w // factor), -(-h // factor)))
    for top in range(0, h, rows):
        band = _on_white(pil.crop((0, top, w, min(h, top + rows))), work)
        out.paste(band.reduce(factor), (0, top // factor))
    return out


def _pixels(pil: Image.Image, scale: float, name: str) -> np.ndarray:
    """Modes: 16/32-bit and float by ``scale``; palette, alpha, CMYK, ... -> RGB(A), / 255."""
    mode = pil.mode
    if mode in ("I", "F") or mode.startswith("I;16"):
        arr = np.asarray(pil, dtype=np.float32) / np.float32(scale)
        if not np.isfinite(arr).all():
            raise ImageError(f"image {name} holds NaN or infinite float pixels; fix the file first")
        return np.repeat(np.clip(arr, 0, 1)[..., None], 3, axis=2)
    if mode == "P":
        pil = pil.convert("RGBA" if "transparency" in pil.info else "RGB")
    elif mode in ("LA", "PA", "La", "RGBa"):
        pil = pil.convert("RGBA")
    elif mode != "RGBA" and mode != "RGB":
        pil = pil.convert("RGB")  # L, 1, CMYK, YCbCr, LAB, HSV, ...
    return np.asarray(pil, dtype=np.float32) / 255.0  # (H, W, 3|4): alpha handled below
def from_array(arr: np.ndarray, name: str) -> torch.Tensor:
    """(H, W), (H, W, 3) or (H, W, 4) array -> [1, 3, H, W] float32 in [0, 1].

    A numpy masked array is refused if any element is masked (the mask would hide NaN or
    out-of-range values from the checks); other ndarray subclasses are read as plain arrays."""
    if np.ma.isMaskedArray(arr):
        if np.ma.getmaskarray(arr).any():
            raise ImageError(f"{name} is a masked array with masked pixels; fill them first, "
                             "e.g. arr.filled(0), so that every pixel has a value")
        arr = np.ma.getdata(arr)
    arr = np.asarray(arr)
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
    """[C, H, W], [1, C, H, W] or [H, W] tensor (C in 1, 3, 4) -> [1, 3, H, W] float32 in [0, 1].

    Sparse tensors are made dense and quantized ones dequantized; a meta tensor (no data) or a
    nested tensor is refused. The values then follow :func:`from_array`'s rules."""
    if t.is_nested:
        raise ImageError("the tensor is a nested tensor; pass one image as a regular [3, H, W] tensor")
    what = f"the tensor of shape {tuple(t.shape)}"
    if t.is_meta:
        raise ImageError(f"{what} is on the 'meta' device and holds no pixel values; "
                         "pass a tensor with data (e.g. one made on 'cpu')")
    try:
        t = t.detach()
        if t.is_quantized:
            t = t.dequantize()
        if t.layout != torch.strided:  # sparse COO/CSR/...
            t = t.to_dense()
        if t.is_floating_point() or t.is_complex():
            t = t.to("cpu", torch.complex64 if t.is_complex() else torch.float32)  # bfloat16 has no numpy dtype
        t = t.cpu()
    except Exception as e:  # an exotic tensor type torch cannot copy to a plain CPU tensor
        raise ImageError(f"{what} ({t.layout}, {t.dtype}) could not be read as pixels "
                         f"({type(e).__name__}: {str(e)[:100]}); pass a regular CPU tensor") from None
    if t.dim() == 4 and t.shape[0] == 1:
        t = t[0]
    if t.dim() == 2:
        t = t.unsqueeze(0)
    if t.dim() != 3 or t.shape[0] not in (1, 3, 4):
        raise ImageError(f"the tensor has shape {tuple(t.shape)}; expected [3, H, W] or "
                         "[1, 3, H, W] (1 or 4 channels are converted)")
    return from_array(t.permute(1, 2, 0).numpy(), what)
