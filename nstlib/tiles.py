"""The geometry of tiles: the halo, the alignment to the network's stride, the tiles' spans, the
tile side that fits a memory budget, and the TV term of one core. The reasoning is in
:mod:`nstlib.tiling`'s docstring.
"""
from __future__ import annotations

import math
from collections.abc import Sequence

import torch

from .checkpoint import bytes_per_pixel
from .losses import gram_matrix
from .memory import available_bytes
from .vgg import VGGFeatures, check_layers, layer_names, min_side

__all__ = ["Span", "halo_and_stride", "stride_of", "tile_spans", "auto_tile", "tile_sides", "needs_tiles",
           "grid", "crops_area", "keep_split", "KEEP_SHARE", "core_features", "core_grams", "add_grams", "keep_pass",
           "at_core", "crop_core", "tv_core"]

Span = tuple[int, int, int, int]  # crop start, crop end, core start, core end (image pixels)

#: The graphs that pass 1 keeps (:func:`keep_split`) take at most this share of one pass-2 crop's
#: activations.
KEEP_SHARE = 0.5


def halo_and_stride(layers: Sequence[str], arch: str = "vgg19") -> tuple[int, int]:
    """``(h, s)``: the halo (px) that makes the features of ``layers`` exact in a tile's core, and
    the total stride at the deepest of them (the recursion: :mod:`nstlib.tiling`)."""
    names = layer_names(arch)
    deepest = max(names.index(n) for n in check_layers(layers, arch))
    d, s = 0, 1
    for n in names[:deepest + 1]:
        if n.startswith("conv"):
            d += 1
        elif n.startswith("pool"):
            d, s = -(-d // 2), 2 * s
    return d * s, s


def stride_of(name: str, arch: str) -> int:
    """The stride of layer ``name``'s output (px of the image per position)."""
    return min_side([name], arch)


def tile_spans(n: int, tile: int, halo: int, stride: int) -> list[Span]:
    """Split one image dimension of ``n`` px into cores of about ``tile`` px (equal, multiples of
    ``stride``) and their crops (the core plus ``halo`` on each side, clipped to the image)."""
    if halo % stride:
        raise ValueError(f"halo must be a multiple of the network's stride {stride}, got {halo}")
    t = max(stride, int(tile) // stride * stride)
    k = -(-n // t)
    per_tile = -(-n // k)  # ceil(n / k)
    core = -(-per_tile // stride) * stride  # rounded up to the stride
    starts = list(range(0, n, core))
    if len(starts) > 1 and n - starts[-1] < stride:  # a sliver: merge it into the previous core
        starts.pop()
    ends = starts[1:] + [n]
    return [(max(0, a - halo), min(n, b + halo), a, b) for a, b in zip(starts, ends)]


def auto_tile(ext: VGGFeatures, layers: Sequence[str], max_memory: int | None = None) -> int:
    """The largest core side (px, a multiple of the stride) whose crop's pass with gradients fits
    ``max_memory`` bytes of activations (default: half the device's available memory):
    ``(core + 2 h)^2 * bytes_per_pixel(grad=True) <= max_memory``."""
    if max_memory is None:
        free = available_bytes(ext.device)
        max_memory = free // 2 if free else 2 ** 30
    if not (isinstance(max_memory, (int, float)) and max_memory > 0):
        raise ValueError(f"max_memory must be a positive number of bytes, got {max_memory!r}")
    h, s = halo_and_stride(layers, ext.arch)
    side = math.sqrt(max_memory / bytes_per_pixel(ext, layers, grad=True))
    return max(s, int(side - 2 * h) // s * s)


def tile_sides(ext: VGGFeatures, layers: Sequence[str], tile: object,
               max_memory: int | None = None) -> tuple[int, int]:
    """``tile`` (a side, ``(h, w)`` or ``"auto"``: :func:`auto_tile` for ``max_memory``) as ``(h, w)``."""
    if isinstance(tile, str) and tile == "auto":
        tile = auto_tile(ext, layers, max_memory) if layers else 1 << 30
    sides = (tile, tile) if isinstance(tile, int) else tuple(tile) if isinstance(tile, (tuple, list)) else ()
    if len(sides) != 2 or not all(isinstance(t, int) and not isinstance(t, bool) and t > 0 for t in sides):
        raise ValueError(f"tile must be a side in px (e.g. 512), (height, width) or 'auto', got {tile!r}")
    return sides  # type: ignore[return-value]


def needs_tiles(shape: Sequence[int], tile: tuple[int, int], layers: Sequence[str], arch: str) -> bool:
    """Whether an image of ``shape`` (..., H, W) takes more than one ``tile`` core: the stages that
    fit in one run untiled (the same values, no tiling cost)."""
    halo, stride = halo_and_stride(layers, arch) if layers else (0, 1)
    return len(grid(shape, tile, halo, stride)) > 1


def grid(shape: Sequence[int], tile: Sequence[int], halo: int, stride: int) -> list[tuple[Span, Span]]:
    return [(r, c) for r in tile_spans(shape[-2], tile[0], halo, stride)
            for c in tile_spans(shape[-1], tile[1], halo, stride)]


def crops_area(tiles: list[tuple[Span, Span]]) -> int:
    """The pixels of the crops of ``tiles`` (what a pass over them costs)."""
    return sum((r[1] - r[0]) * (c[1] - c[0]) for r, c in tiles)


def keep_split(ext: VGGFeatures, layers: Sequence[str], kept: list[tuple[Span, Span]],
               tiles: list[tuple[Span, Span]], max_memory: int | None = None) -> str | None:
    """The pooling layer after which pass 1 keeps, for the crops of ``kept``, the graph of the
    deeper layers, so that pass 2 recomputes only the layers up to it: the earliest pooling (not a
    tap, above the deepest of ``layers``) whose kept graphs take at most :data:`KEEP_SHARE` of the
    activations of the largest crop of ``tiles`` -- and, with ``max_memory``, at most what that
    crop leaves of it; None when no pooling qualifies."""
    names = ext.layers_in_body
    deepest = max(names.index(n) for n in layers)
    crop = max(crops_area([t]) for t in tiles) * bytes_per_pixel(ext, layers)
    limit = min(KEEP_SHARE * crop, math.inf if max_memory is None else max_memory - crop)
    for n in names[:deepest]:
        if n.startswith("pool") and n not in layers and crops_area(kept) * bytes_per_pixel(ext, layers, after=n) \
                <= limit:
            return n
    return None


def at_core(f: torch.Tensor, r: Span, c: Span, s: int) -> torch.Tensor:
    """A core's positions in a full-image feature map at stride ``s``."""
    return f[..., r[2] // s:r[3] // s, c[2] // s:c[3] // s]


class _Core(torch.autograd.Function):
    """``f[..., rows, cols]`` (a view), whose backward writes the gradient into zeros of ``f``'s
    memory layout. (Autograd's slice backward allocates its zeros NCHW: for
    channels-last features every tap's gradient then changes layout twice, and adding it to the
    next layer's channels-last gradient is a strided sum; measured, that was a fifth of a tiled
    evaluation on the CPU: docs/benchmarks.md, "Large images: tiling".)"""

    @staticmethod
    def forward(ctx, f: torch.Tensor, rows: slice, cols: slice) -> torch.Tensor:  # type: ignore[override]
        fmt = torch.channels_last if f.dim() == 4 and f.is_contiguous(memory_format=torch.channels_last) \
            else torch.contiguous_format
        ctx.meta = f.shape, fmt, rows, cols
        return f[..., rows, cols]

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> tuple[torch.Tensor, None, None]:  # type: ignore[override]
        shape, fmt, rows, cols = ctx.meta
        out = torch.empty(shape, dtype=grad.dtype, device=grad.device, memory_format=fmt)
        out[..., rows, cols] = grad
        # zeros only around the core (the halo ring): the core is written once
        for ring in (out[..., :rows.start, :], out[..., rows.stop:, :], out[..., rows, :cols.start],
                     out[..., rows, cols.stop:]):
            ring.zero_()
        return out, None, None


def crop_core(f: torch.Tensor, r: Span, c: Span, s: int) -> torch.Tensor:
    """The core positions [B, C, h, w] of a crop's features ``f`` [B, C, H, W] at stride ``s``: a
    view, whose gradient flows back into ``f`` in ``f``'s memory layout."""
    rows = slice((r[2] - r[0]) // s, (r[3] - r[0]) // s)
    cols = slice((c[2] - c[0]) // s, (c[3] - c[0]) // s)
    return _Core.apply(f, rows, cols)


def tv_core(x: torch.Tensor, grad: torch.Tensor, r: Span, c: Span, gamma: float) -> torch.Tensor:
    """TV of the pairs whose first pixel is in the core (full-image normalizers); adds
    ``gamma`` times its gradient into ``grad``. Returns the (detached) value."""
    H, W = x.shape[-2:]
    re, ce = min(r[3] + 1, H), min(c[3] + 1, W)
    h, w = r[3] - r[2], c[3] - c[2]
    with torch.enable_grad():
        p = x[..., r[2]:re, c[2]:ce].clone().requires_grad_(True)
        dh = (p[..., 1:, :w] - p[..., :-1, :w]).abs().sum() / (3 * (H - 1) * W)
        dw = (p[..., :h, 1:] - p[..., :h, :-1]).abs().sum() / (3 * H * (W - 1))
        tv = 0.5 * (dh + dw)
        (gamma * tv).backward()
    assert p.grad is not None
    grad[..., r[2]:re, c[2]:ce] += p.grad
    return tv.detach()


def core_features(ext: VGGFeatures, img: torch.Tensor, layers: Sequence[str], tiles: list[tuple[Span, Span]]):
    """Yield ``(r, c, {layer: core features})`` for the ``tiles`` of ``img``, without gradients."""
    for r, c in tiles:
        with torch.no_grad():
            f = ext(img[..., r[0]:r[1], c[0]:c[1]], layers)
        yield r, c, {n: crop_core(v, r, c, stride_of(n, ext.arch)) for n, v in f.items()}


def core_grams(core: dict[str, torch.Tensor], layers: Sequence[str], arch: str,
               shape: Sequence[int]) -> dict[str, torch.Tensor]:
    """Each of ``layers``' (those in ``core``) core share of the Gram matrix [1, C, C] of the full image
    of ``shape`` (..., H, W): ``gram_matrix(core) * h w / (H_l W_l)``, the full image's normalizer."""
    out = {}
    for n in (n for n in layers if n in core):
        s, (h, w) = stride_of(n, arch), core[n].shape[-2:]
        out[n] = gram_matrix(core[n]) * (h * w / ((shape[-2] // s) * (shape[-1] // s)))
    return out


def add_grams(sums: dict[str, torch.Tensor], core: dict[str, torch.Tensor], layers: Sequence[str], arch: str,
              shape: Sequence[int]) -> None:
    """Add the :func:`core_grams` of ``core`` into ``sums`` (a layer's first share starts its sum)."""
    for n, g in core_grams(core, layers, arch, shape).items():
        sums[n] = g if n not in sums else sums[n] + g


def keep_pass(ext: VGGFeatures, x: torch.Tensor, tiles: list[tuple[Span, Span]], split: str,
              layers: Sequence[str], style_layers: Sequence[str]):
    """Pass 1 over ``tiles`` of ``x`` that keeps each crop's graph after layer ``split``
    (:func:`keep_split`): the sums of the style layers' :func:`core_grams`, and ``{(r, c): (the
    leaf at split, {deeper layer: core features with their graph})}``."""
    names = ext.layers_in_body
    deep = [n for n in layers if names.index(n) > names.index(split)]
    sums: dict[str, torch.Tensor] = {}
    kept = {}
    for r, c in tiles:
        with torch.no_grad():
            f = ext(x[..., r[0]:r[1], c[0]:c[1]], [n for n in style_layers if n not in deep] + [split])
        leaf = f.pop(split).requires_grad_(True)
        with torch.enable_grad():
            f.update(ext.resume(leaf, split, deep))
        core = {n: crop_core(v, r, c, stride_of(n, ext.arch)) for n, v in f.items()}
        with torch.no_grad():
            add_grams(sums, core, style_layers, ext.arch, x.shape)
        kept[r, c] = leaf, {n: core[n] for n in deep}
    return sums, kept
