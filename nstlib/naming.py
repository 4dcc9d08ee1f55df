"""File names that encode a run: ``tower_bridge+starry_night_lbfgs_cw1_sw1e4_tv44_s256_avg.jpg``."""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

__all__ = ["format_name", "option_tags", "label"]


def label(src: object, fallback: str) -> str:
    """A short name for an image in file names: a path's stem, else ``fallback``."""
    return Path(str(src)).stem if isinstance(src, (str, Path)) else fallback


def _num(v: float) -> str:
    """1 -> '1', 0.5 -> '0.5', 10000 -> '1e4': short numbers for file names."""
    if v == 0:
        return "0"
    if 0.01 <= abs(v) < 1000:
        return f"{v:g}"
    mant, exp = f"{v:e}".split("e")
    return f"{float(mant):g}e{int(exp)}"


def option_tags(params: Mapping[str, Any]) -> list[str]:
    """File-name tags for the options that differ from the defaults (from ``Result.params``):
    ``vgg16``, ``avg``, ``lum``/``hist`` (preserve_color), ``blend0.7-0.3``, ``ss0.5``
    (style_scale), ``mask``."""
    tags = []
    if params.get("arch", "vgg19") != "vgg19":
        tags.append(str(params["arch"]))
    if params.get("pooling", "max") != "max":
        tags.append(str(params["pooling"]))
    color = params.get("preserve_color")
    if color:
        tags.append({"luminance": "lum", "histogram": "hist"}.get(str(color), str(color)))
    blend = params.get("style_blend")
    if blend and len(blend) > 1:
        tags.append("blend" + "-".join(_num(round(float(b), 3)) for b in blend))
    if float(params.get("style_scale", 1.0) or 1.0) != 1.0:
        tags.append(f"ss{_num(float(params['style_scale']))}")
    if params.get("mask"):
        tags.append("mask")
    return tags


def format_name(content: str, style: str | None, optimizer: str, alpha: float, beta: float,
                gamma: float, size: int, ext: str = ".jpg", tags: Sequence[str] = ()) -> str:
    """``tower_bridge+starry_night_lbfgs_cw1_sw1e4_tv10_s256.jpg``: a file name encoding the run;
    ``tags`` (see :func:`option_tags`) are appended before the extension, e.g. ``..._s256_avg_lum.jpg``."""
    pair = content + (f"+{style}" if style else "")
    extra = "".join(f"_{t}" for t in tags)
    return f"{pair}_{optimizer}_cw{_num(alpha)}_sw{_num(beta)}_tv{_num(gamma)}_s{size}{extra}{ext}"
