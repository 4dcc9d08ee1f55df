"""Speed settings of the VGG extractor: mixed precision and the channels-last memory layout.

*Mixed precision* runs the network's convolutions under ``torch.autocast`` in bfloat16 or
float16, while the image, the features handed to the losses and the losses themselves stay in
float32 (:func:`to_fp32`). float16 has a narrow exponent range, so its backward pass is run with
the gradients scaled by :data:`FP16_GRAD_SCALE` (multiplied where the features leave the network,
divided where the image enters it: the image's gradient is unchanged). bfloat16 has float32's
range and needs no scaling. ``"auto"`` picks bfloat16 (or float16) on CUDA and float32 elsewhere;
the default everywhere is float32 (see ``docs/benchmarks.md`` for the measured differences).

*Channels last* (NHWC) stores each pixel's channels together; oneDNN's CPU convolutions run
faster on it (measured in ``docs/benchmarks.md``), so it is on by default on the CPU. There the
extractor also runs its convolutions from conv2_1 on by Winograd's algorithm (:mod:`nstlib.winograd`).
"""
from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch

from .errors import check_choice

__all__ = ["PRECISIONS", "FP16_GRAD_SCALE", "amp_dtype", "use_channels_last", "autocast",
           "scale_grad", "to_fp32"]

PRECISIONS = ("fp32", "bf16", "fp16", "auto")
FP16_GRAD_SCALE = 2.0 ** 12
_DTYPES = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}


def amp_dtype(precision: str, device: torch.device) -> torch.dtype | None:
    """The autocast dtype for ``precision`` on ``device`` (None = plain float32).

    ``"auto"``: bfloat16 on CUDA devices that support it, else float16 on CUDA; float32 on the CPU
    and on MPS.
    """
    check_choice("precision", precision, PRECISIONS)
    if precision != "auto":
        return _DTYPES[precision]
    if device.type != "cuda":
        return None
    return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16


def use_channels_last(channels_last: bool | None, device: torch.device, dtype: torch.dtype | None) -> bool:
    """``None`` (auto): on for the CPU (faster there) and for reduced precision on CUDA."""
    if channels_last is not None:
        return bool(channels_last)
    return device.type == "cpu" or (device.type == "cuda" and dtype is not None)


def autocast(device: torch.device, dtype: torch.dtype | None) -> contextlib.AbstractContextManager:
    """``torch.autocast`` for ``dtype``, or a no-op context for float32."""
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device.type, dtype=dtype)


class _ScaleGrad(torch.autograd.Function):
    """Identity forward; multiplies the incoming gradient by ``factor`` on the way back."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, factor: float) -> torch.Tensor:  # type: ignore[override]
        ctx.factor = factor
        return x.view_as(x)

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> tuple[torch.Tensor, None]:  # type: ignore[override]
        return grad * ctx.factor, None


def scale_grad(x: torch.Tensor, dtype: torch.dtype | None) -> torch.Tensor:
    """Where the image enters a float16 network: divide the gradient by :data:`FP16_GRAD_SCALE`."""
    if dtype is torch.float16 and x.requires_grad:
        return _ScaleGrad.apply(x, 1.0 / FP16_GRAD_SCALE)
    return x


def to_fp32(features: dict[str, torch.Tensor], dtype: torch.dtype | None) -> dict[str, torch.Tensor]:
    """Features leaving the network: cast to float32 (float16: gradient multiplied by the scale)."""
    if dtype is None:
        return features
    out = {k: v.float() for k, v in features.items()}
    if dtype is torch.float16:
        out = {k: _ScaleGrad.apply(v, FP16_GRAD_SCALE) if v.requires_grad else v for k, v in out.items()}
    return out


def iter_precisions() -> Iterator[str]:
    """The precisions that autocast supports on this machine's CPU (for tests and benchmarks)."""
    for name in ("bf16", "fp16"):
        try:
            with torch.autocast("cpu", dtype=_DTYPES[name]):
                torch.nn.functional.conv2d(torch.ones(1, 1, 3, 3), torch.ones(1, 1, 3, 3))
        except (RuntimeError, TypeError):
            continue
        yield name
