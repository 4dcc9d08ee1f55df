"""Winograd's minimal filtering F(4x4, 3x3): VGG's frozen 3x3 convolutions with 4x fewer multiplications.

A 3x3 convolution (stride 1, zero padding 1) computes each 4 x 4 block of its output from a 6 x 6
window of the input. Winograd's algorithm (Lavin & Gray, "Fast Algorithms for Convolutional Neural
Networks", 2016) transforms the window ``d`` and the kernel ``g`` so that the block is an
elementwise product in between:

    Y = A^T [ (G g G^T) * (B^T d B) ] A           (36 multiplications instead of 16 * 9 = 144)

Summed over the input channels, the 36 elementwise products become 36 matrix products
``[tiles, C_in] @ [C_in, C_out]``, which is where the time goes. The kernel's transform
``U = G g G^T`` is computed once (the extractor is frozen); the input's and the output's
transforms are two small matrix products over all windows at once.

Why write it here: PyTorch's CPU convolution (oneDNN) runs the direct algorithm, already at the
machine's peak arithmetic rate, and exposes no Winograd path; style transfer spends most of its time
in these convolutions (``docs/benchmarks.md``). The backward pass is the exact adjoint of the
forward one (transposed transforms, ``U`` transposed), so the gradient is the gradient of what the
forward pass computed, and nothing of the input is saved for it. In float32 the result differs from
the direct convolution by a few 1e-6 of its largest value (the direct one: about 2e-6).

:class:`nstlib.VGGFeatures` builds its layers with at least :data:`MIN_CHANNELS` output channels as
:class:`WinogradConv2d` and, on the CPU in float32, prepares them (``winograd=False`` does not).
The transformed kernels take 4 x the memory of the weights (VGG19 to conv5_1: about 200 MB).
"""
from __future__ import annotations

import torch

__all__ = ["MIN_CHANNELS", "BAND_BYTES", "Winograd", "WinogradConv2d", "kernel_transform"]

#: Output channels from which a layer runs Winograd (VGG's conv2_1 on). Block 1's layers have too few
#: channels for the matrix products to pay for the transforms on their large feature maps: fwd + bwd
#: of conv1_2 at 256 x 256 took 1.41 x the direct convolution's time, conv2_2 at 128 x 128 0.78 x,
#: conv4_2 at 32 x 32 0.43 x (2 threads; ``benchmarks/winograd_layers.py`` measures it per layer).
MIN_CHANNELS = 128
#: Bytes of transformed windows processed at once (see :func:`_bands`).
BAND_BYTES = 16 << 20

# F(4x4, 3x3) with the interpolation points 0, 1, -1, 2, -2 and infinity (Lavin & Gray, eq. 8-10)
_BT = ((4, 0, -5, 0, 1, 0), (0, -4, -4, 1, 1, 0), (0, 4, -4, -1, 1, 0),
       (0, -2, -1, 2, 1, 0), (0, 2, -1, -2, 1, 0), (0, 4, 0, -5, 0, 1))
_G = ((1 / 4, 0, 0), (-1 / 6, -1 / 6, -1 / 6), (-1 / 6, 1 / 6, -1 / 6),
      (1 / 24, 1 / 12, 1 / 6), (1 / 24, -1 / 12, 1 / 6), (0, 0, 1))
_AT = ((1, 1, 1, 1, 1, 0), (0, 1, -1, 2, -2, 0), (0, 1, 1, 4, 4, 0), (0, 1, -1, 8, -8, 1))


def kernel_transform(weight: torch.Tensor) -> torch.Tensor:
    """``U = G g G^T`` of every kernel: weight [C_out, C_in, 3, 3] -> U [36, C_in, C_out]
    (computed in float64 on the CPU, 32 output channels at a time so that nothing but U stays in
    memory; returned in the weight's dtype and on its device)."""
    c_out, c_in = weight.shape[:2]
    g = torch.tensor(_G, dtype=torch.float64)
    u = torch.empty(36, c_in, c_out, dtype=weight.dtype, device=weight.device)
    for o in range(0, c_out, 32):
        part = torch.einsum("aj,oijk,bk->abio", g, weight[o:o + 32].detach().cpu().double(), g)
        u[:, :, o:o + 32] = part.reshape(36, c_in, -1).to(u.device, u.dtype)
    return u


class Winograd:
    """One frozen 3 x 3 convolution (stride 1, padding 1, with bias) run by F(4x4, 3x3).

    ``Winograd(conv)(x)`` equals ``conv(x)`` for x [B, C_in, H, W] (any H, W >= 1) up to float
    rounding, and returns [B, C_out, H, W] in channels-last memory. Its transforms are fixed when it
    is built: build it after the weights are loaded and moved.
    """

    def __init__(self, conv: torch.nn.Conv2d) -> None:
        w = conv.weight.detach()
        if tuple(w.shape[2:]) != (3, 3) or conv.stride != (1, 1) or conv.padding != (1, 1) or conv.bias is None:
            raise ValueError("Winograd F(4x4, 3x3) runs 3 x 3 convolutions with stride 1, padding 1 and a bias")
        bt, at = (torch.tensor(m, dtype=w.dtype, device=w.device) for m in (_BT, _AT))
        self.weight, self.version, self.ptr = conv.weight, conv.weight._version, w.data_ptr()
        self.u = kernel_transform(w)                  # [36, C_in, C_out]
        self.bias = conv.bias.detach()
        self.kb = torch.kron(bt, bt)                  # vec(B^T d B) = kb @ vec(d), [36, 36]
        self.ka = torch.kron(at, at)                  # vec(A^T m A) = ka @ vec(m), [16, 36]

    def applies_to(self, x: torch.Tensor) -> bool:
        """Whether ``x`` can take this path: same device and dtype, no autocast in force, and the
        convolution's weight still frozen and unchanged (not moved, cast, reloaded or trained);
        otherwise the caller runs the convolution itself."""
        w = self.weight
        return (x.device == self.u.device and x.dtype == self.u.dtype and not w.requires_grad
                and w._version == self.version and w.data_ptr() == self.ptr
                and not torch.is_autocast_enabled(x.device.type))

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        return _WinogradConv.apply(x, self)


class WinogradConv2d(torch.nn.Conv2d):
    """A 3 x 3 ``nn.Conv2d`` (same weights, same state dict) that runs by Winograd once
    :meth:`prepare` has been called, and falls back to ``nn.Conv2d`` whenever the plan does not
    apply (:meth:`Winograd.applies_to`)."""

    plan: Winograd | None = None

    def prepare(self) -> None:
        """Build the plan from the current weights (call it after loading and moving them)."""
        self.plan = Winograd(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.plan is not None and self.plan.applies_to(x):
            return self.plan(x)
        return super().forward(x)


def _windows(xp: torch.Tensor, th: int, tw: int) -> torch.Tensor:
    """The 6 x 6 windows (stride 4) of a padded [B, 4 th + 2, 4 tw + 2, C] image as [6, 6, B, th, tw, C] (a view)."""
    sb, sh, sw, _ = xp.stride()
    b, c = xp.shape[0], xp.shape[3]
    return xp.as_strided((6, 6, b, th, tw, c), (sh, sw, sb, 4 * sh, 4 * sw, 1), xp.storage_offset())


def _bands(b: int, th: int, tw: int, channels: int) -> list[slice]:
    """Rows of windows taken at once: as many as keep the transformed windows of the band
    ([36, tiles, channels] floats) within :data:`BAND_BYTES`, so that its products run in the cache."""
    rows = max(1, BAND_BYTES // (36 * b * tw * channels * 4))
    return [slice(i, min(th, i + rows)) for i in range(0, th, rows)]


class _WinogradConv(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: torch.Tensor, plan: Winograd) -> torch.Tensor:  # type: ignore[override]
        b, c, h, w = x.shape
        th, tw, co = -(-h // 4), -(-w // 4), plan.u.shape[2]
        ctx.plan, ctx.shape = plan, (b, c, h, w)
        xp = x.new_zeros(b, 4 * th + 2, 4 * tw + 2, c)             # zero padding 1, then up to whole blocks
        xp[:, 1:h + 1, 1:w + 1] = x.permute(0, 2, 3, 1)
        out = torch.empty(b, co, 4 * th, 4 * tw, dtype=x.dtype, device=x.device, memory_format=torch.channels_last)
        windows, blocks = _windows(xp, th, tw), out.permute(0, 2, 3, 1).view(b, th, 4, tw, 4, co)
        for rows in _bands(b, th, tw, c + co):
            v = plan.kb @ windows[:, :, :, rows].reshape(36, -1)   # B^T d B of every window and channel
            m = torch.bmm(v.view(36, -1, c), plan.u)               # [36, tiles, C_out]: the products
            y = (plan.ka @ m.view(36, -1)).view(4, 4, b, -1, tw, co)  # A^T m A: the 4 x 4 output blocks
            torch.add(y.permute(2, 3, 0, 4, 1, 5), plan.bias, out=blocks[:, rows])
        return out if h == 4 * th and w == 4 * tw else out[:, :, :h, :w].clone(memory_format=torch.channels_last)

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> tuple[torch.Tensor, None]:  # type: ignore[override]
        plan, (b, c, h, w) = ctx.plan, ctx.shape
        th, tw, co = -(-h // 4), -(-w // 4), plan.u.shape[2]
        if h == 4 * th and w == 4 * tw:
            blocks = grad.permute(0, 2, 3, 1).reshape(b, th, 4, tw, 4, co)
        else:
            blocks = grad.new_zeros(b, th, 4, tw, 4, co)
            blocks.view(b, 4 * th, 4 * tw, co)[:, :h, :w] = grad.permute(0, 2, 3, 1)
        gxp = grad.new_zeros(b, 4 * th + 2, 4 * tw + 2, c)
        windows = _windows(gxp, th, tw)
        for rows in _bands(b, th, tw, c + co):
            g = blocks[:, rows].permute(2, 4, 0, 1, 3, 5).reshape(16, -1)
            gm = plan.ka.t() @ g                                    # adjoint of A^T m A
            gv = torch.bmm(gm.view(36, -1, co), plan.u.transpose(1, 2))
            gd = (plan.kb.t() @ gv.view(36, -1)).view(6, 6, b, -1, tw, c)  # adjoint of B^T d B
            # adjoint of taking overlapping windows: add each window back where it was read (in
            # four parts, none overlapping itself: the 4 x 4 corners tile the image, the last two
            # rows and columns fall on the next windows' first ones)
            for a, bb in ((slice(0, 4), slice(0, 4)), (slice(4, 6), slice(0, 4)),
                          (slice(0, 4), slice(4, 6)), (slice(4, 6), slice(4, 6))):
                windows[a, bb, :, rows].add_(gd[a, bb])
        gx = gxp[:, 1:h + 1, 1:w + 1].permute(0, 3, 1, 2)
        return gx.contiguous(memory_format=torch.channels_last), None
