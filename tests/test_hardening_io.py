"""Issue 15, hardening (round two): inputs that hang, use too much memory or load the wrong thing.

Slow and oversized downloads (a local server on 127.0.0.1 that trickles bytes), missing paths that
must not fall back to a bundled image, peak memory of a reduced load for every PIL mode, the range
each mode maps to, the format allow-list (EPS never reaches Ghostscript), masked arrays and exotic
tensors. Saving under concurrency: tests/test_save_concurrency.py. The 9000x9000 figure:
benchmarks/load_memory.py.
"""
from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
import time
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import EpsImagePlugin, Image

import nstlib
from nstlib import ImageError

LIB = Path(nstlib.__file__).resolve().parents[1]  # the nstlib under test, also in subprocesses


def _png_bytes(color: str = "red", size: tuple[int, int] = (30, 20)) -> bytes:
    import io
    buf = io.BytesIO()
    Image.new("RGB", size, color).save(buf, format="PNG")
    return buf.getvalue()


@pytest.fixture
def raw_server(monkeypatch):
    """A raw TCP server on 127.0.0.1: ``start(behaviour)`` serves each connection with
    ``behaviour(conn, stop)`` in a thread and returns the base URL."""
    for var in ("http_proxy", "HTTP_PROXY", "all_proxy", "ALL_PROXY", "no_proxy", "NO_PROXY"):
        monkeypatch.delenv(var, raising=False)
    stop = threading.Event()
    socks = []

    def start(behaviour):
        srv = socket.socket()
        srv.bind(("127.0.0.1", 0))
        srv.listen(8)
        srv.settimeout(0.2)
        socks.append(srv)

        def loop():
            while not stop.is_set():
                try:
                    conn, _ = srv.accept()
                except OSError:
                    continue
                threading.Thread(target=_handle, args=(conn, behaviour, stop), daemon=True).start()
        threading.Thread(target=loop, daemon=True).start()
        return f"http://127.0.0.1:{srv.getsockname()[1]}"
    yield start
    stop.set()
    for s in socks:
        s.close()


def _handle(conn, behaviour, stop):
    try:
        conn.settimeout(5)
        conn.recv(65536)  # the request
        behaviour(conn, stop)
    except OSError:  # the client gave up: what a deadline does
        pass
    finally:
        conn.close()


def _trickle(data: bytes, every: float):
    def behaviour(conn, stop):
        for i in range(len(data)):
            if stop.is_set():
                return
            conn.sendall(data[i:i + 1])
            time.sleep(every)
    return behaviour


def _load_in_thread(url: str, limit: float):
    """load_image(url) in a thread; (exception or result, seconds); the test fails if it hangs."""
    out = {}

    def run():
        t0 = time.perf_counter()
        try:
            out["value"] = nstlib.load_image(url, device="cpu")
        except BaseException as e:  # noqa: BLE001 - handed back to the test
            out["value"] = e
        out["seconds"] = time.perf_counter() - t0
    th = threading.Thread(target=run, daemon=True)
    th.start()
    th.join(limit)
    assert not th.is_alive(), f"load_image({url!r}) still running after {limit} s: no deadline"
    return out["value"], out["seconds"]


# ---------------------------------------------------------------- downloads: deadline and size cap
@pytest.mark.parametrize("phase", ["body", "headers"])
def test_a_server_that_trickles_bytes_hits_the_whole_transfer_deadline(raw_server, monkeypatch, phase):
    """Each byte arrives well within any per-read timeout; only a deadline for the whole transfer stops it."""
    monkeypatch.setattr("nstlib.fetch.URL_DEADLINE", 1.5)
    body = _png_bytes()
    head = f"HTTP/1.1 200 OK\r\nContent-Type: image/png\r\nContent-Length: {len(body)}\r\n\r\n".encode()
    if phase == "body":
        def behaviour(conn, stop):
            conn.sendall(head)
            _trickle(body, 0.2)(conn, stop)
    else:
        behaviour = _trickle(head + body, 0.2)
    url = raw_server(behaviour) + "/slow.png"
    err, seconds = _load_in_thread(url, limit=15)
    assert isinstance(err, ImageError), err
    assert "1.5 s" in str(err) and url in str(err) and "whole transfer" in str(err)
    assert 1.4 < seconds < 6, seconds


def test_download_size_cap_is_stated_with_and_without_a_content_length(raw_server, monkeypatch):
    monkeypatch.setattr("nstlib.fetch.MAX_DOWNLOAD_BYTES", 1000)
    big = b"\0" * 5000

    def announced(conn, stop):
        conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 5000\r\n\r\n" + big)

    def unannounced(conn, stop):  # no length: the cap is checked while reading
        conn.sendall(b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n" + big)
    for behaviour in (announced, unannounced):
        url = raw_server(behaviour) + "/big.png"
        err, _ = _load_in_thread(url, limit=15)
        assert isinstance(err, ImageError), err
        assert "download limit" in str(err) and "0.000953674 MB" in str(err), str(err)


def test_upper_case_scheme_is_a_url_and_other_schemes_are_refused(raw_server):
    body = _png_bytes("blue")
    url = raw_server(lambda conn, stop: conn.sendall(
        b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % len(body) + body))
    img, _ = _load_in_thread(url.replace("http://", "HTTP://") + "/b.png", limit=15)
    assert isinstance(img, torch.Tensor), img
    assert img.shape == (1, 3, 20, 30) and torch.equal(img[0, :, 0, 0], torch.tensor([0.0, 0.0, 1.0]))
    for bad in ("ftp://example.org/a.png", "FILE:///etc/passwd", "Https:/x"):
        with pytest.raises(ImageError) as err:
            nstlib.load_image(bad)
        assert bad in str(err.value)
    from nstlib.fetch import is_url
    assert is_url("HtTpS://x") and not is_url("C://photos/a.png")


# ---------------------------------------------------------------- missing paths never load a bundled image
@pytest.mark.parametrize("src", ["/home/me/photos/starry_night.jpg", "starry_night.jpg", "./starry_night",
                                 "photos/tower_bridge", "starry_night.png", "~/starry_night.jpg",
                                 Path("nowhere") / "starry_night.jpg"])
def test_a_missing_path_is_an_error_even_if_its_name_is_a_bundled_example(src, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HOME", str(tmp_path))
    with pytest.raises(ImageError, match="does not exist") as err:
        nstlib.load_image(src, device="cpu")
    assert str(src) in str(err.value)


def test_a_bare_name_still_means_the_bundled_example_and_a_real_file_wins(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert nstlib.load_image("starry_night", size=32, device="cpu").shape[-1] == 32
    Image.new("RGB", (8, 4), "red").save(tmp_path / "starry_night.jpg")  # a real file of that name
    assert nstlib.load_image("starry_night.jpg", device="cpu").shape == (1, 3, 4, 8)
    assert nstlib.example("starry_night.jpg", size=16).shape[-1] == 16  # example() names examples only


def test_cli_with_a_missing_path_that_names_an_example_fails_and_saves_nothing(tmp_path, monkeypatch, capsys):
    from nstlib import cli
    monkeypatch.chdir(tmp_path)
    code = cli.main([str(tmp_path / "photos" / "starry_night.jpg"), "tower_bridge", "--weights", "random",
                     "--steps", "1", "--size", "32", "--quiet"])
    assert code == 1 and "does not exist" in capsys.readouterr().err
    assert not list(tmp_path.glob("*.jpg"))


# ---------------------------------------------------------------- peak memory of a reduced load, every mode
def _make(mode: str, side: int) -> Image.Image:
    """A side x side image in ``mode`` whose pixels are not constant (so nothing compresses away)."""
    ramp = (np.add.outer(np.arange(side), np.arange(side)) % 251).astype(np.uint8)
    if mode in ("I;16", "I"):  # 16-bit values (uint16 -> I;16, int32 -> I)
        return Image.fromarray(ramp.astype(np.uint16 if mode == "I;16" else np.int32) * 257)
    if mode == "F":
        return Image.fromarray(ramp.astype(np.float32) / 255.0, "F")
    rgba = Image.merge("RGBA", [Image.fromarray(ramp)] * 3 + [Image.fromarray(255 - ramp)])
    if mode == "P":
        return rgba.convert("RGB").quantize(64)
    return rgba.convert(mode)


_MODES = {"RGBA": "png", "LA": "png", "P": "png", "I;16": "png", "I": "tif", "F": "tif", "CMYK": "tif",
          "RGB": "png", "L": "png"}


@pytest.mark.parametrize("mode", list(_MODES))
def test_peak_memory_of_a_reduced_load_is_bounded_for_every_mode(tmp_path, mode):
    """3000x3000 at size=64: the decoded file itself is 9-34 MB; a float copy at full size is
    103 MB (RGB) and more for RGBA/16-bit. The load must stay within the decoded size + 60 MB.
    (The 9000x9000 figure the issue asks for: benchmarks/load_memory.py.)"""
    side = 3000
    path = tmp_path / f"big.{_MODES[mode]}"
    img = _make(mode, side)
    img.save(path, **({"compress_level": 1} if path.suffix == ".png" else {}))
    decoded_mb = side * side * {"L": 1, "P": 1, "I;16": 2}.get(mode, 4) / 2**20  # Pillow's own storage
    code = ("import resource, sys, nstlib\n"
            "def status(key):\n"
            "    with open('/proc/self/status') as f:\n"
            "        return next(int(l.split()[1]) for l in f if l.startswith(key + ':'))\n"
            "try:\n"  # VmHWM reset to now; ru_maxrss would start at the size of pytest's process
            "    open('/proc/self/clear_refs', 'w').write('5')\n"
            "    before, peak = status('VmRSS'), lambda: status('VmHWM')\n"
            "except OSError:\n"
            "    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss\n"
            "    peak = lambda: resource.getrusage(resource.RUSAGE_SELF).ru_maxrss\n"
            f"img = nstlib.load_image({str(path)!r}, size=64, device='cpu')\n"
            "print(*img.shape, (peak() - before) // 1024)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300,
                         env={**os.environ, "NSTLIB_OFFLINE": "1", "PYTHONPATH": str(LIB)}, cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    *shape, grown_mb = map(int, out.stdout.split())
    assert Image.open(path).mode == mode and shape == [1, 3, 64, 64]
    assert grown_mb < decoded_mb + 60, f"{mode}: {grown_mb} MB above the baseline (decoded {decoded_mb:.0f} MB)"


@pytest.mark.parametrize("mode", ["RGBA", "LA", "PA", "P", "I;16", "I", "F", "CMYK", "1", "RGB"])
def test_a_reduced_load_gives_the_same_colours_as_a_full_load(mode):
    """The box reduction (band by band, composited on white) agrees with loading at full size
    and resizing: a constant image stays that constant, a ramp stays close."""
    rgba = Image.new("RGBA", (400, 300), (200, 40, 90, 128))
    img = {"RGBA": rgba, "LA": rgba.convert("LA"), "PA": rgba.convert("LA").convert("PA"),
           "P": rgba.convert("P"), "I;16": Image.new("I;16", (400, 300), 30000),
           "I": Image.new("I", (400, 300), 200), "F": Image.new("F", (400, 300), 0.25),
           "CMYK": Image.new("CMYK", (400, 300), (10, 200, 30, 40)), "1": Image.new("1", (400, 300), 1),
           "RGB": Image.new("RGB", (400, 300), (1, 128, 255))}[mode]
    assert img.mode == mode
    full = nstlib.load_image(img, device="cpu")
    small = nstlib.load_image(img, size=50, device="cpu")  # factor 4: the band path
    assert small.shape == (1, 3, 38, 50)
    assert torch.allclose(small, full[..., :38, :50], atol=1.5 / 255), (small[0, :, 0, 0], full[0, :, 0, 0])
    ramp = _make("RGBA", 300)
    a, b = nstlib.load_image(ramp, size=40, device="cpu"), nstlib.resize(nstlib.load_image(ramp, device="cpu"), 40)
    assert (a - b).abs().mean() < 0.02


# ---------------------------------------------------------------- mode and range
def test_float_tiffs_outside_0_1_are_refused_with_their_range(tmp_path):
    Image.new("F", (4, 3), 40000.0).save(tmp_path / "c.tif")
    with pytest.raises(ImageError, match=r"float pixels in \[4e\+04, 4e\+04\]"):
        nstlib.load_image(tmp_path / "c.tif", device="cpu")
    Image.fromarray(np.array([[-0.5, 0.5]], np.float32), "F").save(tmp_path / "neg.tif")
    with pytest.raises(ImageError, match="must lie in"):
        nstlib.load_image(tmp_path / "neg.tif", device="cpu")
    Image.fromarray(np.array([[np.nan, 0.5]], np.float32), "F").save(tmp_path / "nan.tif")
    with pytest.raises(ImageError, match="NaN"):
        nstlib.load_image(tmp_path / "nan.tif", device="cpu")
    Image.fromarray(np.array([[0.0, 0.25, 1.0]], np.float32), "F").save(tmp_path / "ok.tif")
    ok = nstlib.load_image(tmp_path / "ok.tif", device="cpu")
    assert torch.equal(ok[0, 1], torch.tensor([[0.0, 0.25, 1.0]]))


def test_32_bit_integer_images_map_by_their_values_or_are_refused(tmp_path):
    eight = Image.fromarray(np.array([[0, 51, 255]], np.int32), "I")  # 8-bit values: not nearly black
    assert torch.allclose(nstlib.load_image(eight, device="cpu")[0, 0], torch.tensor([[0.0, 0.2, 1.0]]))
    eight.save(tmp_path / "eight.tif")
    assert torch.allclose(nstlib.load_image(tmp_path / "eight.tif", device="cpu")[0, 2],
                          torch.tensor([[0.0, 0.2, 1.0]]))
    sixteen = Image.fromarray(np.array([[0, 13107, 65535]], np.int32), "I")
    assert torch.allclose(nstlib.load_image(sixteen, device="cpu")[0, 1], torch.tensor([[0.0, 0.2, 1.0]]))
    for vals in ([[0, 100_000]], [[-5, 10]]):
        Image.fromarray(np.array(vals, np.int32), "I").save(tmp_path / "wide.tif")
        with pytest.raises(ImageError, match="32-bit integer pixels") as err:
            nstlib.load_image(tmp_path / "wide.tif", device="cpu")
        assert str(vals[0][0]) in str(err.value) and "16-bit" in str(err.value)


# ---------------------------------------------------------------- only allowed formats are decoded
class _Reached(BaseException):
    """Raised by a decoder that must never run (a BaseException: no except Exception hides it)."""


def test_an_eps_file_never_reaches_the_eps_decoder_or_ghostscript(tmp_path, monkeypatch):
    def trap(*a, **k):
        raise _Reached("the EPS plugin ran")
    monkeypatch.setattr(EpsImagePlugin.EpsImageFile, "_open", trap)
    monkeypatch.setattr(EpsImagePlugin, "Ghostscript", trap)
    eps = (b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 10 10\n%%EndComments\n"
           b"0 0 moveto 10 10 lineto stroke\nshowpage\n%%EOF\n")
    (tmp_path / "art.eps").write_bytes(eps)
    (tmp_path / "disguised.jpg").write_bytes(eps)
    for src in (tmp_path / "art.eps", tmp_path / "disguised.jpg", eps):
        with pytest.raises(ImageError, match="decodes only JPEG"):
            nstlib.load_image(src, device="cpu")


def test_every_allowed_format_still_loads(tmp_path):
    for ext in ("jpg", "png", "gif", "bmp", "tif", "webp", "ppm", "tga", "ico"):
        Image.new("RGB", (6, 4), (250, 0, 0)).save(tmp_path / f"x.{ext}")
        img = nstlib.load_image(tmp_path / f"x.{ext}", device="cpu")
        assert img.shape == (1, 3, 4, 6) and img[0, 0].mean() > 0.9, ext


# ---------------------------------------------------------------- arrays and tensors
def test_a_masked_array_cannot_hide_nan_past_validation():
    data = np.full((4, 4, 3), 0.5, np.float32)
    data[0, 0, 0] = np.nan
    hidden = np.ma.masked_invalid(data)
    with pytest.raises(ImageError, match="masked"):
        nstlib.load_image(hidden, device="cpu")
    out_of_range = np.ma.masked_greater(np.full((4, 4), 7.0, np.float32), 1.0)
    with pytest.raises(ImageError, match="masked"):
        nstlib.load_image(out_of_range, device="cpu")
    clean = np.ma.masked_array(np.full((4, 4), 0.25, np.float32), mask=False)
    assert torch.equal(nstlib.load_image(clean, device="cpu"), torch.full((1, 3, 4, 4), 0.25))


def test_meta_sparse_and_quantized_tensors_load_or_raise_image_error():
    t = torch.rand(3, 5, 6, generator=torch.Generator().manual_seed(0))
    with pytest.raises(ImageError, match="meta"):
        nstlib.load_image(t.to("meta"), device="cpu")
    assert torch.equal(nstlib.load_image(t.to_sparse(), device="cpu"), t[None])
    grey = t[0]
    assert torch.equal(nstlib.load_image(grey.to_sparse_csr(), device="cpu"), grey.expand(3, 5, 6)[None])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # quantized tensors are deprecated, not gone
        q = torch.quantize_per_tensor(t, 1 / 255, 0, torch.quint8)
    assert torch.allclose(nstlib.load_image(q, device="cpu"), t[None], atol=0.5 / 255 + 1e-6)
    with pytest.raises(ImageError, match="nested"):
        nstlib.load_image(torch.nested.nested_tensor([t, t]), device="cpu")

