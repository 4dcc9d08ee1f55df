"""Issue 6, hardening (part 1): bad images, huge images, broken weights, bad layers and parameters.

Every bad file is made by the test itself; no remote host is contacted (URLs point at 127.0.0.1).
Weights, layers and parameters: tests/test_hardening_weights.py; runs that go wrong (NaN, Ctrl-C,
out of memory) and never overwriting: tests/test_hardening_run.py; fuzzing: tests/test_fuzz.py.
"""
from __future__ import annotations

import functools
import http.server
import io
import os
import socket
import struct
import subprocess
import sys
import threading
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import nstlib
from nstlib import ImageError

ROOT = Path(__file__).resolve().parents[1]
PHOTO = ROOT / "images" / "content" / "tower_bridge.jpg"  # a real JPEG
TEXTURE = ROOT / "images" / "texture" / "brick.png"  # a real PNG


@pytest.fixture(scope="module")
def ext():
    """A random-weights VGG19 with stylize's default layers, built once."""
    layers = list(nstlib.transfer.CONTENT_LAYERS) + list(nstlib.transfer.STYLE_LAYERS)
    return nstlib.VGGFeatures("vgg19", layers, weights="random", device="cpu")


# ---------------------------------------------------------------- images: bad files and URLs
def _bomb_png(width: int, height: int) -> bytes:
    """A valid, tiny PNG whose header declares width x height pixels."""
    def chunk(tag: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data))
    ihdr = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)  # 1-bit greyscale
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 64))
            + chunk(b"IEND", b""))


def _write(tmp: Path, name: str, data: bytes) -> Path:
    (tmp / name).write_bytes(data)
    return tmp / name


BAD_FILES = {  # name -> (make the input in tmp_path, words the message must contain)
    "missing": (lambda t: t / "holiday.jpg", ["does not exist", "check the path"]),
    "folder": (lambda t: (t / "photos").mkdir() or t / "photos", ["folder", "inside it"]),
    "empty": (lambda t: _write(t, "empty.jpg", b""), ["empty", "0 bytes", "re-"]),
    "truncated jpeg": (lambda t: _write(t, "half.jpg", PHOTO.read_bytes()[:PHOTO.stat().st_size // 2]),
                       ["truncated", "re-download"]),
    "truncated png": (lambda t: _write(t, "half.png", TEXTURE.read_bytes()[:TEXTURE.stat().st_size // 2]),
                      ["truncated", "re-download"]),
    "text named .jpg": (lambda t: _write(t, "notes.jpg", b"these are my notes, not a photo\n"),
                        ["not an image", "re-save"]),
    "bomb 1e10 px": (lambda t: _write(t, "bomb.png", _bomb_png(100_000, 100_000)),
                     ["decompression bomb", "shrink"]),
    "bomb 1e8 px": (lambda t: _write(t, "bomb8.png", _bomb_png(10_000, 10_000)),
                    ["decompression bomb", "shrink"]),
}


@pytest.mark.parametrize("case", list(BAD_FILES))
def test_bad_image_file_raises_image_error_naming_it(case, tmp_path):
    make, words = BAD_FILES[case]
    src = make(tmp_path)
    assert not src.exists() or src.is_dir() or src.stat().st_size < 1_000_000
    with pytest.raises(ImageError) as err:
        nstlib.load_image(src)
    msg = str(err.value)
    assert src.name in msg, msg
    for w in words:
        assert w in msg, (w, msg)


def test_unreachable_url_raises_image_error(monkeypatch):
    for var in ("http_proxy", "HTTP_PROXY", "https_proxy", "HTTPS_PROXY", "all_proxy", "ALL_PROXY"):
        monkeypatch.delenv(var, raising=False)
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()  # nothing listens there any more: connection refused
    url = f"http://127.0.0.1:{port}/photo.jpg"
    with pytest.raises(ImageError, match="could not download") as err:
        nstlib.load_image(url)
    assert url in str(err.value) and "check the address" in str(err.value)


@pytest.fixture
def local_server(tmp_path, monkeypatch):
    """An HTTP server on 127.0.0.1 serving tmp_path."""
    for var in ("http_proxy", "HTTP_PROXY", "all_proxy", "ALL_PROXY"):
        monkeypatch.delenv(var, raising=False)
    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args):
            pass
    handler = functools.partial(Quiet, directory=str(tmp_path))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_url_serving_a_page_or_nothing_raises_and_a_real_image_loads(local_server, tmp_path):
    (tmp_path / "page.html").write_text("<html>not an image</html>")
    Image.new("RGB", (30, 20), "red").save(tmp_path / "red.png")
    for url, words in [(f"{local_server}/page.html", "not an image"), (f"{local_server}/gone.jpg", "404")]:
        with pytest.raises(ImageError, match=words) as err:
            nstlib.load_image(url)
        assert url in str(err.value)
    img = nstlib.load_image(f"{local_server}/red.png", device="cpu")
    assert img.shape == (1, 3, 20, 30) and torch.allclose(img[0, :, 0, 0], torch.tensor([1.0, 0.0, 0.0]))


BAD_ARRAYS = {  # name -> (array, words the message must contain besides "array")
    "NaN": (np.full((8, 8, 3), np.nan, np.float32), ["NaN", "fix"]),
    "inf": (np.full((8, 8), np.inf), ["infinite"]),
    "2 channels": (np.zeros((8, 8, 2), np.uint8), ["(8, 8, 2)", "(H, W, 3)"]),
    "5 channels": (np.zeros((8, 8, 5), np.uint8), ["(H, W, 3)"]),
    "channels first": (np.zeros((3, 8, 8), np.float32), ["transpose(1, 2, 0)"]),
    "1-D": (np.zeros(8, np.uint8), ["(8,)", "expected"]),
    "0-D": (np.array(0.5), ["expected"]),
    "4-D": (np.zeros((2, 8, 8, 3), np.uint8), ["expected"]),
    "empty": (np.zeros((0, 8, 3), np.uint8), ["empty"]),
    "int64": (np.zeros((8, 8, 3), np.int64), ["int64", "uint8"]),
    "complex": (np.zeros((8, 8, 3), np.complex64), ["complex64", "uint8"]),
    "object": (np.full((4, 4), None, dtype=object), ["object", "uint8"]),
    "strings": (np.full((4, 4), "a"), ["uint8"]),
    "floats above 1": (np.full((8, 8, 3), 255.0), ["[0, 1]", "255"]),
}


@pytest.mark.parametrize("case", list(BAD_ARRAYS))
def test_bad_array_raises_image_error(case):
    arr, words = BAD_ARRAYS[case]
    with pytest.raises(ImageError) as err:
        nstlib.load_image(arr)
    msg = str(err.value)
    assert "array" in msg and all(w in msg for w in words), msg


BAD_TENSORS = {
    "NaN": (torch.full((3, 8, 8), float("nan")), ["NaN"]),
    "2 channels": (torch.zeros(2, 8, 8), ["(2, 8, 8)", "[3, H, W]"]),
    "batch of 2": (torch.zeros(2, 3, 8, 8), ["(2, 3, 8, 8)", "[1, 3, H, W]"]),
    "1-D": (torch.zeros(8), ["(8,)"]),
    "5-D": (torch.zeros(1, 1, 3, 8, 8), ["[3, H, W]"]),
    "int64": (torch.zeros(3, 8, 8, dtype=torch.int64), ["int64", "uint8"]),
    "complex": (torch.zeros(3, 8, 8, dtype=torch.complex64), ["complex64"]),
}


@pytest.mark.parametrize("case", list(BAD_TENSORS))
def test_bad_tensor_raises_image_error(case):
    t, words = BAD_TENSORS[case]
    with pytest.raises(ImageError) as err:
        nstlib.load_image(t)
    msg = str(err.value)
    assert "tensor" in msg and all(w in msg for w in words), msg


def test_bytes_file_objects_and_bfloat16_load():
    buf = io.BytesIO()
    Image.new("RGB", (30, 20), (0, 0, 255)).save(buf, "PNG")
    for src in (buf.getvalue(), io.BytesIO(buf.getvalue()), memoryview(buf.getvalue())):
        img = nstlib.load_image(src, device="cpu")
        assert img.shape == (1, 3, 20, 30) and img[0, 2].min() == 1.0
    half = nstlib.load_image(torch.full((3, 4, 5), 0.5, dtype=torch.bfloat16), device="cpu")
    assert half.dtype == torch.float32 and torch.allclose(half, torch.full_like(half, 0.5))
    with pytest.raises(ImageError, match="empty"):
        nstlib.load_image(b"")


# ---------------------------------------------------------------- images: very large ones
def _large(path: Path, w: int, h: int, **save) -> Path:
    arr = np.empty((h, w, 3), np.uint8)
    arr[..., 0] = (np.arange(w) % 256).astype(np.uint8)
    arr[..., 1] = (np.arange(h) % 256).astype(np.uint8)[:, None]
    arr[..., 2] = 128
    Image.fromarray(arr).save(path, **save)
    return path


@pytest.mark.parametrize("name, limit_mb", [("big.jpg", 64), ("big.png", 200)])
def test_very_large_image_is_downscaled_on_load_with_bounded_memory(tmp_path, name, limit_mb):
    """6000x4000 = 24 Mpx: decoded fully to float it takes ~900 MB; with size=256 a JPEG is decoded
    at 1/8 scale (draft) and a PNG is box-reduced before the float conversion."""
    big = _large(tmp_path / name, 6000, 4000, **({"quality": 85} if name.endswith("jpg") else {"compress_level": 1}))
    code = ("import resource, nstlib\n"
            "before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss\n"
            f"img = nstlib.load_image({str(big)!r}, size=256, device='cpu')\n"
            "after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss\n"
            "print(*img.shape, (after - before) // 1024)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300,
                         env={**os.environ, "NSTLIB_OFFLINE": "1"})
    assert out.returncode == 0, out.stderr
    *shape, grown_mb = map(int, out.stdout.split())
    assert shape == [1, 3, 171, 256]
    assert grown_mb < limit_mb, f"loading took {grown_mb} MB more peak memory"


@pytest.mark.parametrize("fmt", ["JPEG", "PNG"])
def test_large_exif_rotated_image_keeps_its_orientation_when_downscaled(tmp_path, fmt):
    exif = Image.Exif()
    exif[0x0112] = 6  # stored landscape, displayed rotated 90 degrees: portrait
    path = _large(tmp_path / f"rot.{fmt.lower()}", 3000, 2000, format=fmt, exif=exif)
    img = nstlib.load_image(path, size=256, device="cpu")
    assert img.shape == (1, 3, 256, 171)


# ---------------------------------------------------------------- images too small for the layers
def test_image_too_small_for_the_poolings_fails_early_stating_the_minimum(monkeypatch):
    def no_network(*a, **k):
        raise AssertionError("the network was built before the size check")
    monkeypatch.setattr(nstlib.stage, "VGGFeatures", no_network)
    with pytest.raises(ImageError) as err:  # relu5_1 sits after 4 poolings: 16 px
        nstlib.stylize(torch.rand(3, 40, 30), torch.rand(3, 40, 40), size=8, steps=1, device="cpu")
    assert "at least 16 px" in str(err.value) and "size" in str(err.value)
    with pytest.raises(ImageError, match="at least 4 px"):  # relu3_1 sits after 2 poolings: 4 px
        nstlib.stylize(torch.rand(3, 400, 6), None, size=64, content_layers=["relu3_1"], style_layers=[],
                       steps=1, device="cpu")
    with pytest.raises(ImageError, match="16 px"):  # an elongated style image
        nstlib.stylize(torch.rand(3, 64, 64), torch.rand(3, 4, 300), size=64, steps=1, device="cpu")


def test_extractor_states_the_minimum_for_the_requested_layers(ext):
    assert nstlib.vgg.min_side(["relu1_1"]) == 1 and nstlib.vgg.min_side(["relu5_1", "relu2_1"]) == 16
    assert ext(torch.rand(1, 3, 4, 4), ["relu2_1"])["relu2_1"].shape[-2:] == (2, 2)
    with pytest.raises(ImageError, match="at least 16 px"):
        ext(torch.rand(1, 3, 12, 40), ["relu5_1"])


def test_content_and_style_need_not_share_a_size(ext):
    res = nstlib.stylize(torch.rand(3, 48, 32), torch.rand(3, 30, 64), extractor=ext, size=48, steps=2)
    assert res.image.shape == (1, 3, 48, 32) and res.stopped == "done"
