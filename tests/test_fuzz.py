"""Fuzz (issue 6): whatever ``load_image`` is given, it returns a valid image or raises an NSTError.

Random bytes (as files, byte strings and BytesIO), real images with random damage, random paths,
numpy arrays and tensors of random shapes and dtypes. Nothing else may escape: no PIL, numpy or
torch exception. The example counts are bounded so that the whole file runs in well under 30 s.
"""
from __future__ import annotations

import io
import warnings

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from PIL import Image

import nstlib

FUZZ = settings(max_examples=100, deadline=None, database=None, derandomize=True,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
SIZES = st.one_of(st.none(), st.integers(1, 48))


def _load_or_nst_error(src, size=None):
    """The property: a float32 [1, 3, H, W] tensor in [0, 1] (longest side ``size``), or NSTError."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # numpy overflow warnings etc. are fine; exceptions are not
            img = nstlib.load_image(src, size=size, device="cpu")
    except nstlib.NSTError:
        return None
    assert isinstance(img, torch.Tensor) and img.dtype == torch.float32
    assert img.dim() == 4 and img.shape[:2] == (1, 3) and min(img.shape[2:]) >= 1
    assert torch.isfinite(img).all() and img.min() >= 0 and img.max() <= 1
    if size is not None:
        assert max(img.shape[2:]) == size
    return img


def _seeds() -> list[bytes]:
    """Small valid images in many formats and modes, the starting points of the damage."""
    rng = np.random.default_rng(0)
    rgb = Image.fromarray(rng.integers(0, 256, (12, 16, 3), dtype=np.uint8))
    rgba = Image.fromarray(rng.integers(0, 256, (12, 16, 4), dtype=np.uint8))
    g16 = Image.fromarray(rng.integers(0, 65536, (12, 16), dtype=np.uint16))
    out = []
    for im, fmt, kw in [(rgb, "PNG", {}), (rgb, "JPEG", {}), (rgb, "JPEG", {"progressive": True}),
                        (rgb, "GIF", {}), (rgb, "BMP", {}), (rgb, "TIFF", {}), (rgb, "WEBP", {}),
                        (rgb, "PPM", {}), (rgb, "ICO", {}), (rgb.convert("P"), "PNG", {}),
                        (rgba, "PNG", {}), (rgba, "TIFF", {}), (g16, "PNG", {}),
                        (rgb.convert("CMYK"), "JPEG", {}), (rgb.convert("L"), "JPEG", {})]:
        buf = io.BytesIO()
        im.save(buf, fmt, **kw)
        out.append(buf.getvalue())
    return out


SEEDS = _seeds()


@st.composite
def damaged_images(draw) -> bytes:
    data = bytearray(draw(st.sampled_from(SEEDS)))
    for _ in range(draw(st.integers(0, 6))):  # overwrite a few bytes, often in the header
        i = draw(st.integers(0, min(len(data) - 1, draw(st.sampled_from([64, len(data) - 1])))))
        data[i] = draw(st.integers(0, 255))
    if draw(st.booleans()):
        data = data[: draw(st.integers(0, len(data)))]
    return bytes(data)


def test_the_seed_images_load():
    for data in SEEDS:
        assert _load_or_nst_error(data) is not None


@FUZZ
@given(data=st.one_of(st.binary(max_size=2048), damaged_images()), size=SIZES)
def test_fuzz_bytes_as_bytes_and_bytesio(data, size):
    _load_or_nst_error(data, size)
    _load_or_nst_error(io.BytesIO(data), size)


@pytest.fixture(scope="module")
def fuzz_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("fuzz")


@FUZZ
@given(data=st.one_of(st.binary(max_size=2048), damaged_images()),
       suffix=st.sampled_from([".jpg", ".png", ".gif", ".webp", ".tif", ""]), size=SIZES)
def test_fuzz_bytes_as_files(fuzz_dir, data, suffix, size):
    path = fuzz_dir / f"input{suffix}"
    path.write_bytes(data)
    _load_or_nst_error(path, size)
    _load_or_nst_error(str(path), size)


@settings(FUZZ, max_examples=40)
@given(text=st.text(max_size=40))
def test_fuzz_path_strings(text):
    _load_or_nst_error(text, 16)


DTYPES = st.one_of(hnp.scalar_dtypes(), st.sampled_from([np.dtype("U2"), np.dtype("S2")]))
ANY_SHAPE = hnp.array_shapes(min_dims=0, max_dims=5, min_side=0, max_side=6)
IMAGE_SHAPE = st.tuples(st.integers(1, 9), st.integers(1, 9), st.sampled_from([1, 2, 3, 4, 5])).map(
    lambda s: s if s[2] != 5 else s[:2])  # (H, W, C) or (H, W)


@st.composite
def arrays(draw) -> np.ndarray:
    if draw(st.booleans()):  # anything at all
        return draw(hnp.arrays(DTYPES, ANY_SHAPE))
    dtype = draw(st.sampled_from(["uint8", "uint16", "float16", "float32", "float64", "bool", ">u2", ">f8"]))
    if np.dtype(dtype).kind == "f":  # mostly in [0, 1], sometimes NaN, inf or out of range
        elements = st.one_of(st.floats(0, 1, width=16), st.sampled_from([np.nan, np.inf, -1.0, 2.0]))
        return draw(hnp.arrays(dtype, IMAGE_SHAPE, elements=elements))
    return draw(hnp.arrays(dtype, IMAGE_SHAPE))


@FUZZ
@given(arr=arrays(), size=SIZES)
def test_fuzz_numpy_arrays(arr, size):
    _load_or_nst_error(arr, size)


TORCH_DTYPES = [torch.float32, torch.float64, torch.float16, torch.bfloat16, torch.uint8, torch.int8,
                torch.int16, torch.int32, torch.int64, torch.bool, torch.complex64, torch.uint16]


@FUZZ
@given(shape=st.lists(st.integers(0, 6), max_size=5), dtype=st.sampled_from(TORCH_DTYPES),
       kind=st.sampled_from(["unit", "any", "nan"]), grad=st.booleans(), size=SIZES)
def test_fuzz_tensors(shape, dtype, kind, grad, size):
    g = torch.Generator().manual_seed(len(shape) * 31 + sum(shape))
    t = torch.rand(shape, generator=g, dtype=torch.float64)
    if kind == "any":
        t = (t - 0.5) * 600
    elif kind == "nan" and t.numel():
        t.view(-1)[0] = float("nan")
    t = t.to(dtype)
    if grad and t.is_floating_point():
        t.requires_grad_(True)
    _load_or_nst_error(t, size)


@settings(FUZZ, max_examples=40)
@given(data=st.binary(max_size=1024))
def test_fuzz_weight_files_raise_weights_error(fuzz_dir, data):
    path = fuzz_dir / "weights.pth"
    path.write_bytes(data)
    with pytest.raises(nstlib.WeightsError, match="weights.pth"):
        nstlib.weights.load_file(path, "vgg19")
