r"""Large images on bounded memory: the exact objective and gradient, computed tile by tile.

Every term of the objective is a sum over positions, so the full image's objective and its
*exact* gradient can be assembled from tiles (:class:`TiledObjective`), in two passes:

1. without gradients, each style layer's global Gram matrix from the tiles' *core* features,
   :math:`G_l = \frac{1}{C_l H_l W_l} \sum_{tiles} F_{core} F_{core}^T`, then
   :math:`D_l = \partial \mathcal{L}_{style} / \partial G_l` (autograd on :math:`G_l`);
2. tile by tile with gradients, the backward pass of the surrogate
   :math:`\alpha \mathcal{L}_c^{core} + \beta \sum_l \langle D_l, G_l^{core} \rangle + \gamma \mathcal{L}_{tv}^{core}`,
   whose gradient equals the core features' share of :math:`\partial \mathcal{L} / \partial x`.
   The tile's pixel gradient (halo included) is *added* into ``x.grad``: halos overlap and the
   contributions of neighbouring cores add up to the exact gradient.

**Normalizers.** nstlib's losses are means (:mod:`nstlib.losses`): content
:math:`\frac{1}{C_l H_l W_l}\sum (F-P)^2`, Gram :math:`/(C_l H_l W_l)`, TV
:math:`\frac12(\frac{\sum|x_{i+1,j}-x_{ij}|}{3(H-1)W} + \frac{\sum|x_{i,j+1}-x_{ij}|}{3H(W-1)})`.
Every tile sum is divided by the *full* image's counts (:math:`H_l = \lfloor H / s_l \rfloor`).
TV seams are exact: a core's vertical pairs are those whose upper pixel lies in the core (the
pixel below may be the next core's), likewise for horizontal pairs.

**Halo and alignment.** A feature at the tile's edge sees the tile's zero padding instead of
the neighbouring pixels; the error creeps inwards by one position per 3x3 convolution and is
halved (rounded up) by each 2x2 pooling. Counting ``d`` in positions of the current
resolution: ``d <- d + 1`` per convolution, ``d <- ceil(d / 2)`` per pooling, up to the deepest
layer L in use; the halo is :math:`h = d_L \, s_L` pixels, with :math:`s_L = 2^{\#pools}` the
total stride at L. VGG19: relu5_1 -> d=5, s=16, **h = 80 px** (its receptive field is 156 px:
half-width 78, rounded up to the stride); relu4_2 -> 5 x 8 = 40 px. Crop origins and core edges
are multiples of :math:`s_L`, so every pooling window of a tile is one of the full image's;
a core feature is then the same function of the pixels as in the full image, and value and
gradient match to float rounding (measured: relative error ~1e-6, tests/test_tiling.py).
A smaller halo leaves an error at the seams, larger in the gradient (the pixels a core feature
sees beyond the crop get none of its gradient) than in the loss. Measured with relu5_1 (exact
halo 80 px), 48 px tiles on a 100 x 140 image, random weights (:data:`SMALL_HALO_GRAD_ERROR`):

=========  =====================  ======================  ======================
halo (px)  loss error (max, avg)  gradient error, max     gradient error, avg
=========  =====================  ======================  ======================
80         0, 1e-7                2e-6                    1e-6
48         0, 1e-7                5e-2                    4e-5
32         4e-4, 2e-5             0.2                     4e-2
0          7e-3, 8e-3             1.1                     0.35
=========  =====================  ======================  ======================

(relative errors: ``|L_tiled - L| / L`` and ``||g_tiled - g|| / ||g||``).

**Passes.** The content targets (full-size feature maps: 32 bytes per pixel at relu4_2) and the
style Gram matrices are computed tile by tile too (no gradient): no step needs an untiled pass.
Pass 1 has no graph (~1/3 the memory per pixel), so its tiles are larger (``tile_nograd``) --
unless covering every pass-2 tile but the last costs fewer pixels: then the last tile runs first
in pass 2, its graph features complete the Gram sums, and pass 1 keeps each crop's graph after a
pooling (:func:`~nstlib.tiles.keep_split`: the deep layers, small at their stride), so that pass
2 recomputes only the layers above it (with a single tile there is no pass 1 at all).

**Cost.** Pass 1 is a forward pass (~0.4 of a forward + backward on this CPU) and every crop
carries its halo: a step costs about ``(1 + 0.4) x`` the crops' total area over the image's, less
the kept layers' share; figures in ``docs/benchmarks.md`` ("Large images: tiling"). Memory: one
crop's activations (plus at most :data:`~nstlib.tiles.KEEP_SHARE` of them kept), image-sized
buffers (the image, its gradient, the content targets) and the optimizer's state (L-BFGS: 2 x
history image-sized vectors; tiled stages keep 10 pairs). Tile geometry: :mod:`nstlib.tiles`.

Refused with a ``ValueError``: masks (spatial control) and batches / per-image weights
(:func:`nstlib.sweep`): run those untiled, one image at a time.

:func:`nstlib.checkpoint.checkpointed` is the simpler option for sizes in between: the same
network with gradient checkpointing (activations recomputed in the backward pass).
"""
from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import torch

from .checkpoint import bytes_per_pixel
from .losses import content_loss
from .styles import as_list, blend_weights
from .tiles import (
    Span,
    add_grams,
    at_core,
    core_features,
    core_grams,
    crop_core,
    crops_area,
    grid,
    halo_and_stride,
    keep_pass,
    keep_split,
    stride_of,
    tile_sides,
    tv_core,
)
from .vgg import VGGFeatures

__all__ = ["TiledObjective", "SMALL_HALO_GRAD_ERROR"]

#: ``{(pooling, halo px): the gradient's relative error}`` with relu5_1 (exact halo 80 px), as
#: measured in the module docstring's table; tests/test_tiling.py checks the orders of magnitude.
SMALL_HALO_GRAD_ERROR = {("max", 48): 5e-2, ("avg", 48): 4e-5, ("max", 0): 1.1, ("avg", 0): 0.35}


class TiledObjective:
    """:class:`nstlib.objective.Objective`'s ``alpha * content + beta * style + gamma * tv``, evaluated
    tile by tile with its exact gradient (module docstring). The arguments are ``Objective``'s, plus:

    Args:
        tile: core side in px (int or (h, w); rounded down to a multiple of the stride) or
            ``"auto"`` (:func:`nstlib.tiles.auto_tile` for ``max_memory`` bytes).
        halo: px added around each core (default: :func:`halo_and_stride`'s exact one); a
            multiple of the stride.
        max_memory: the activation budget of one tile (``tile="auto"``; pass 1's kept graphs fit too).
        tile_nograd: core side of the passes without gradients (pass 1, the targets); default:
            the side whose crop takes the memory of a ``tile`` crop with gradients (~1.7 x).

    ``loss_and_grad(x)`` (x [1, 3, H, W] in [0, 1]) adds d(total)/dx into ``x.grad`` and returns
    the detached scalars ``{"total", "content", "style", "tv"}``. ``objective(x)`` returns the same
    values with a ``"total"`` whose backward pass gives that gradient (the current engine's contract).
    """

    def __init__(self, extractor: VGGFeatures, content: torch.Tensor | None,
                 style: torch.Tensor | Sequence[torch.Tensor] | None,
                 content_layers: Sequence[str], style_layers: Sequence[str],
                 content_weight: float, style_weight: float, tv_weight: float,
                 style_layer_weights: Mapping[str, float] | None = None, *,
                 style_blend: Sequence[float] | None = None, mask: torch.Tensor | None = None,
                 style_outside: torch.Tensor | None = None, tile: int | tuple[int, int] | str = 512,
                 halo: int | None = None, max_memory: int | None = None,
                 tile_nograd: int | tuple[int, int] | None = None) -> None:
        if mask is not None or style_outside is not None:
            raise ValueError("tiling does not support a mask or style_outside; run masked transfers untiled")
        weights = [torch.as_tensor(w) for w in (content_weight, style_weight, tv_weight)]
        if any(w.dim() for w in weights):
            raise ValueError("tiling takes one weight per term, not per-image weights (sweeps); "
                             "run sweeps untiled")
        self.ext, self.weights = extractor, tuple(float(w) for w in weights)
        self.content_layers = list(content_layers) if content is not None and self.weights[0] else []
        self.style_layers = list(style_layers) if style is not None and self.weights[1] else []
        self.style_layer_weights = dict(style_layer_weights or {})
        self.use_tv = bool(self.weights[2])
        self._configure(tile, halo, max_memory, tile_nograd)
        self.content_targets = self._targets(content) if content is not None and self.content_layers else {}
        self.style_grams: dict[str, torch.Tensor] = {}
        for b, img in zip(blend_weights(style_blend, len(as_list(style))) if self.style_layers else [],
                          as_list(style)):
            for n, g in self._grams(img).items():
                self.style_grams[n] = b * g + self.style_grams.get(n, 0)

    @classmethod
    def from_objective(cls, objective, *, tile: int | tuple[int, int] | str = 512, halo: int | None = None,
                       max_memory: int | None = None,
                       tile_nograd: int | tuple[int, int] | None = None) -> TiledObjective:
        """The same objective as an :class:`~nstlib.objective.Objective` (its targets reused), tiled."""
        if objective.mask is not None or objective.per_image:
            raise ValueError("tiling does not support a mask or per-image weights; run those untiled")
        self = cls.__new__(cls)
        self.ext, self.weights = objective.ext, tuple(float(w) for w in objective.weights)
        self.content_layers, self.style_layers = list(objective.content_layers), list(objective.style_layers)
        self.style_layer_weights, self.use_tv = dict(objective.style_layer_weights), objective.use_tv
        self.content_targets, self.style_grams = dict(objective.content_targets), dict(objective.style_grams)
        self._configure(tile, halo, max_memory, tile_nograd)
        return self

    def _configure(self, tile: int | tuple[int, int] | str, halo: int | None, max_memory: int | None,
                   tile_nograd: int | tuple[int, int] | None) -> None:
        self.layers = list(dict.fromkeys(self.content_layers + self.style_layers))
        h, self.stride = halo_and_stride(self.layers, self.ext.arch) if self.layers else (0, 1)
        self.halo = h if halo is None else int(halo)
        self.tile, self.max_memory = tile_sides(self.ext, self.layers, tile, max_memory), max_memory
        if tile_nograd is not None:
            self.tile_nograd = ((tile_nograd,) * 2 if isinstance(tile_nograd, int) else tuple(tile_nograd))
            return
        # pass 1 (no graph) needs ~1/3 the memory per pixel: a larger core with the same crop memory
        k = (math.sqrt(bytes_per_pixel(self.ext, self.layers) / bytes_per_pixel(self.ext, self.layers, False))
             if self.layers else 1.0)
        self.tile_nograd = tuple(int(k * (t + 2 * self.halo) - 2 * self.halo) for t in self.tile)

    @property
    def loss_weights(self) -> dict[str, object]:
        """The weights in force: ``{content_weight, style_weight, tv_weight, style_layer_weights}``."""
        return dict(zip(("content_weight", "style_weight", "tv_weight"), self.weights),
                    style_layer_weights=self.style_layer_weights or None)

    def set_weights(self, content_weight: float | None = None, style_weight: float | None = None,
                    tv_weight: float | None = None, style_layer_weights: Mapping[str, float] | None = None) -> None:
        """Change alpha, beta, gamma and/or the per-layer style weights (None keeps a value), live.
        A term that was 0 when the objective was made has no targets: it cannot be switched on."""
        new = tuple(o if w is None else float(w) for w, o in zip((content_weight, style_weight, tv_weight),
                                                                  self.weights))
        if (new[0] and not self.content_targets) or (new[1] and not self.style_grams):
            raise ValueError("a tiled objective cannot switch on a term (content or style) that started at "
                             "weight 0: its targets were not computed; start a new run with that weight")
        self.weights, self.use_tv = new, bool(new[2])
        if style_layer_weights is not None:
            self.style_layer_weights = dict(style_layer_weights)

    @torch.no_grad()
    def _targets(self, content: torch.Tensor) -> dict[str, torch.Tensor]:
        out: dict[str, torch.Tensor] = {}
        tiles = grid(content.shape, self.tile_nograd, self.halo, self.stride)
        for r, c, f in core_features(self.ext, content, self.content_layers, tiles):
            for n, v in f.items():
                s = stride_of(n, self.ext.arch)
                if n not in out:
                    out[n] = v.new_zeros(1, v.shape[1], content.shape[-2] // s, content.shape[-1] // s)
                at_core(out[n], r, c, s).copy_(v)
        return out

    @torch.no_grad()
    def _grams(self, img: torch.Tensor, tiles: list | None = None) -> dict[str, torch.Tensor]:
        """The Gram matrices [1, C, C] of the style layers, summed over the cores of ``tiles``
        (default: all of ``img``'s, in pass-1 tiles): the full image's when they cover it."""
        out: dict[str, torch.Tensor] = {}
        tiles = grid(img.shape, self.tile_nograd, self.halo, self.stride) if tiles is None else tiles
        for _r, _c, f in core_features(self.ext, img, self.style_layers, tiles):
            add_grams(out, f, self.style_layers, self.ext.arch, img.shape)
        return out

    def _style_grad(self, grams: dict[str, torch.Tensor]) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """The style loss of the full image's Gram matrices and its gradient D_l w.r.t. each."""
        with torch.enable_grad():
            g = {n: v.detach().requires_grad_(True) for n, v in grams.items()}
            style = torch.stack([self.style_layer_weights.get(n, 1.0) * ((g[n] - t) ** 2).mean()
                                 for n, t in self.style_grams.items()]).sum()
            return style.detach(), dict(zip(g, torch.autograd.grad(style, list(g.values()))))

    def _check(self, x: torch.Tensor) -> None:
        if x.dim() != 4 or x.shape[0] != 1 or x.shape[1] != 3:
            raise ValueError(f"TiledObjective takes one image [1, 3, H, W], got {tuple(x.shape)}; "
                             "run batches untiled")

    def loss_and_grad(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """Add d(total)/dx into ``x.grad`` (created if None); return the detached losses."""
        self._check(x)
        if x.grad is None:
            x.grad = torch.zeros_like(x)
        return self._evaluate(x.detach(), x.grad)

    def __call__(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """The losses, with a ``"total"`` whose gradient w.r.t. ``x`` is the tiled exact one."""
        self._check(x)
        grad = torch.zeros_like(x, requires_grad=False)
        losses = self._evaluate(x.detach(), grad)
        lin = (x * grad).sum()
        return dict(losses, total=losses["total"] + lin - lin.detach())

    def _terms(self, core: dict[str, torch.Tensor], grams: dict[str, torch.Tensor], r: Span, c: Span,
               d_gram: dict[str, torch.Tensor], zero: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(alpha * content + beta * sum_l <D_l, G_l^core>, content)`` of one core's features and Grams."""
        content = sum((content_loss(core[n], at_core(t, r, c, stride_of(n, self.ext.arch)))
                       * (core[n].numel() / t.numel()) for n, t in self.content_targets.items() if n in core), zero)
        style = sum(((d_gram[n] * g).sum() for n, g in grams.items()), zero)
        return self.weights[0] * content + self.weights[1] * style, content

    def _evaluate(self, x: torch.Tensor, grad: torch.Tensor) -> dict[str, torch.Tensor]:
        alpha, beta, gamma = self.weights
        zero = x.new_zeros(())
        tiles, style = grid(x.shape, self.tile, self.halo, self.stride), zero
        d_gram: dict[str, torch.Tensor] | None = {}
        partial: dict[str, torch.Tensor] = {}
        kept: dict = {}
        split = None
        if self.style_grams:
            # pass 1 over every pass-2 tile but the last when that costs less than the pass-1 tiles, keeping
            # their deep layers' graph where it fits; the last one's graph features complete the sums
            t1 = grid(x.shape, self.tile_nograd, self.halo, self.stride)
            if crops_area(tiles[:-1]) <= crops_area(t1):
                split = keep_split(self.ext, self.layers, tiles[:-1], tiles, self.max_memory) if tiles[1:] else None
                partial, kept = (keep_pass(self.ext, x, tiles[:-1], split, self.layers, self.style_layers) if split
                                 else (self._grams(x, tiles[:-1]), {}))
                d_gram, tiles = None, tiles[-1:] + tiles[:-1]
            else:
                style, d_gram = self._style_grad(self._grams(x, t1))
        content, tv = zero, zero
        for r, c in tiles:
            with torch.enable_grad():
                crop = x[..., r[0]:r[1], c[0]:c[1]].clone().requires_grad_(True)
                leaf, deep = kept.pop((r, c), (None, {}))
                names = [n for n in self.layers if n not in deep] + ([split] if deep else [])
                f = self.ext(crop, names) if names else {}
                top = f.pop(split) if deep else zero  # this crop's features at the split (the leaf's value)
                core = {n: crop_core(v, r, c, stride_of(n, self.ext.arch)) for n, v in f.items()}
                grams = core_grams(core, self.style_layers, self.ext.arch, x.shape) if self.style_grams else {}
                if d_gram is None:
                    style, d_gram = self._style_grad({n: partial.get(n, 0) + g.detach() for n, g in grams.items()})
                surrogate, c_t = self._terms(core, grams, r, c, d_gram, zero)
                if deep:  # the kept graph's gradient at the split joins this crop's backward pass there
                    d_grams = core_grams(deep, self.style_layers, self.ext.arch, x.shape) if self.style_grams else {}
                    s_deep, c_deep = self._terms(deep, d_grams, r, c, d_gram, zero)
                    surrogate = surrogate + (top * torch.autograd.grad(s_deep, leaf)[0]).sum()
                    c_t = c_t + c_deep
                if surrogate.requires_grad:
                    surrogate.backward()
                    assert crop.grad is not None
                    grad[..., r[0]:r[1], c[0]:c[1]] += crop.grad
            content = content + c_t.detach()
            if self.use_tv:
                tv = tv + tv_core(x, grad, r, c, gamma)
        total = alpha * content + beta * style + gamma * tv
        return {"total": total.detach(), "content": content.detach(), "style": style.detach(), "tv": tv}
