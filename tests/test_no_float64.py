"""No float64 on a device (issue 12): Apple's MPS has no float64, so a ``.double()`` of a device tensor
fails there. Statistics that need float64 move to the CPU first.

This machine has no GPU, so the device is emulated: :class:`OnDevice` is a tensor subclass that
marks a tensor as living on the accelerator. Every result computed from it stays marked (as a real
device tensor would), except through ``.cpu()``; a marked float64 result raises at once. The
functions that compute float64 statistics run on marked inputs, and a scan of the package's source
catches the forms of the same mistake no test calls.
"""
from __future__ import annotations

import re
from pathlib import Path

import pytest
import torch

import nstlib
from nstlib.course import analysis
from nstlib.color import color_stats, combine_luminance, match_color, match_luminance, rgb_to_yiq, yiq_to_rgb

PACKAGE = Path(nstlib.__file__).resolve().parent


class Float64OnDevice(AssertionError):
    pass


def _tensors(obj):
    if isinstance(obj, torch.Tensor):
        yield obj
    elif isinstance(obj, (tuple, list)):
        for o in obj:
            yield from _tensors(o)
    elif isinstance(obj, dict):
        for o in obj.values():
            yield from _tensors(o)


class OnDevice(torch.Tensor):
    """A CPU tensor standing for one on an accelerator without float64 (MPS)."""

    @classmethod
    def __torch_function__(cls, func, types, args=(), kwargs=None):
        if func is torch.Tensor.cpu:  # the way off the device
            with torch._C.DisableTorchFunctionSubclass():
                out = func(*args, **(kwargs or {}))  # on the CPU already: returns the tensor itself
                return out.as_subclass(torch.Tensor)
        out = super().__torch_function__(func, types, args, kwargs or {})
        for t in _tensors(out):
            if isinstance(t, OnDevice) and t.dtype == torch.float64:
                raise Float64OnDevice(f"{getattr(func, '__name__', func)} made a float64 tensor on the device")
        return out


def on_device(t: torch.Tensor) -> OnDevice:
    return t.as_subclass(OnDevice)


def test_the_emulated_device_catches_float64():
    """The detector itself: the forms of the mistake fail, the CPU route passes."""
    x = on_device(torch.rand(1, 3, 8, 8))
    for bad in (lambda: x.double(), lambda: x.to(torch.float64), lambda: x.detach().double(),
                lambda: x * torch.ones(1, dtype=torch.float64), lambda: x.type(torch.float64)):
        with pytest.raises(Float64OnDevice):
            bad()
    assert x.cpu().double().dtype == torch.float64 and type(x.cpu()) is torch.Tensor
    assert isinstance(x * 2, OnDevice)  # results stay on the device


def test_colour_functions_keep_float64_off_the_device():
    torch.manual_seed(0)
    a, b = torch.rand(1, 3, 16, 20), torch.rand(1, 3, 12, 12)
    mu, cov = color_stats(on_device(a))
    assert mu.dtype == torch.float64 and not isinstance(mu, OnDevice)
    ref_mu, ref_cov = color_stats(a)
    assert torch.allclose(mu, ref_mu) and torch.allclose(cov, ref_cov)
    out = match_color(on_device(a), on_device(b))
    assert out.dtype == torch.float32 and out.device == a.device  # back on the source's device
    assert torch.allclose(out.as_subclass(torch.Tensor), match_color(a, b))
    for fn in (lambda: rgb_to_yiq(on_device(a)), lambda: yiq_to_rgb(on_device(a)),
               lambda: match_luminance(on_device(a), on_device(b)),
               lambda: combine_luminance(on_device(a), on_device(a))):
        assert fn().dtype == torch.float32


def test_gradient_statistics_keep_float64_off_the_device():
    """analysis.gradient_flow (notebook 03) on an image and features on the device."""
    ext = nstlib.VGGFeatures("vgg19", layers=["relu1_1", "relu2_1"], weights=None)
    image = on_device(torch.rand(1, 3, 32, 32))
    flow = analysis.gradient_flow(ext, image, lambda f: sum(v.pow(2).mean() for v in f.values()))
    assert set(flow) == {"relu1_1", "relu2_1", "image"}
    for row in flow.values():
        assert 0 < row["density"] <= 1 and row["norm"] > 0


# the source scan: float64 may only be made on the CPU
DOUBLE = re.compile(r"\.double\(\)|torch\.float64|torch\.double\b|dtype=torch\.float64|\.to\(torch\.float64")
ALLOWED = (
    re.compile(r"\.cpu\(\)\.double\(\)"),                           # moved off the device first
    re.compile(r"torch\.tensor\([^()]*(\([^()]*\))*[^()]*dtype=torch\.float64\)"),  # a CPU constant, no device=
)


def test_no_float64_reaches_a_device_in_the_package_source():
    found = []
    for py in sorted(PACKAGE.rglob("*.py")):
        for n, line in enumerate(py.read_text(encoding="utf-8").splitlines(), 1):
            code = line.split("#", 1)[0]
            if '"""' in code or code.strip().startswith(("r\"\"\"", "\"\"\"")):
                continue
            rest = code
            for pattern in ALLOWED:
                rest = pattern.sub("", rest)
            if DOUBLE.search(rest) and "device=" not in code.replace("device=None", ""):
                found.append(f"{py.relative_to(PACKAGE.parent)}:{n}: {line.strip()}")
            elif DOUBLE.search(code) and "device=" in code:
                found.append(f"{py.relative_to(PACKAGE.parent)}:{n}: {line.strip()}")
    assert not found, ("float64 on a possibly non-CPU tensor (MPS has none; write .cpu().double()):\n"
                       + "\n".join(found))
