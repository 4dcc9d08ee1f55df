"""Image I/O: every source becomes [1, 3, H, W] float32 in [0, 1], with modes, alpha and EXIF handled."""
from __future__ import annotations

import functools
import http.server
import io
import threading

import numpy as np
import pytest
import torch
from PIL import Image

import nstlib
from nstlib import ImageError, load_image, save_image, to_pil


def _rgb(h: int = 6, w: int = 10, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, size=(h, w, 3), dtype=np.uint8)


def _expected(arr: np.ndarray) -> torch.Tensor:
    """What load_image must return for a uint8 (H, W, 3) array."""
    return torch.from_numpy(arr.astype(np.float32) / 255.0).permute(2, 0, 1).unsqueeze(0)


def _check(img: torch.Tensor, h: int, w: int) -> None:
    assert img.shape == (1, 3, h, w)
    assert img.dtype == torch.float32
    assert img.device.type == "cpu"
    assert 0.0 <= float(img.min()) and float(img.max()) <= 1.0


# --- sources -------------------------------------------------------------------------------

def test_path_png_is_exact(tmp_path):
    arr = _rgb()
    Image.fromarray(arr).save(tmp_path / "a.png")
    for src in (tmp_path / "a.png", str(tmp_path / "a.png")):
        img = load_image(src, device="cpu")
        _check(img, 6, 10)
        assert torch.equal(img, _expected(arr))


@pytest.fixture
def http_dir(tmp_path):
    """A local http.server on 127.0.0.1 serving tmp_path; yields its base URL."""
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(tmp_path))
    handler.log_message = lambda *a, **k: None  # type: ignore[method-assign]
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def test_http_url(tmp_path, http_dir):
    arr = _rgb(8, 12, seed=1)
    Image.fromarray(arr).save(tmp_path / "remote.png")
    img = load_image(f"{http_dir}/remote.png", device="cpu")
    _check(img, 8, 12)
    assert torch.equal(img, _expected(arr))
    small = load_image(f"{http_dir}/remote.png", size=6, device="cpu")
    assert small.shape == (1, 3, 4, 6)


def test_example_name_equals_the_file():
    by_name = load_image("starry_night", device="cpu")
    by_path = load_image(_example_file("starry_night"), device="cpu")
    assert torch.equal(by_name, by_path)
    assert torch.equal(nstlib.example("starry_night", device="cpu"), by_name)


def _example_file(name: str):
    from nstlib.examples import example_path
    path = example_path(name)
    assert path is not None and path.is_file()
    return path


def test_pil_image():
    arr = _rgb(5, 7, seed=2)
    img = load_image(Image.fromarray(arr), device="cpu")
    _check(img, 5, 7)
    assert torch.equal(img, _expected(arr))


def test_numpy_uint8_gray_rgb_rgba():
    arr = _rgb(4, 5, seed=3)
    assert torch.equal(load_image(arr, device="cpu"), _expected(arr))
    gray = arr[..., 0]
    g = load_image(gray, device="cpu")
    _check(g, 4, 5)
    for c in range(3):
        assert torch.equal(g[0, c], torch.from_numpy(gray.astype(np.float32) / 255.0))
    rgba = np.concatenate([arr, np.full((4, 5, 1), 255, np.uint8)], axis=2)
    assert torch.equal(load_image(rgba, device="cpu"), _expected(arr))  # opaque: unchanged


def test_numpy_float_gray_rgb_rgba():
    rng = np.random.default_rng(4)
    rgb = rng.random((3, 4, 3)).astype(np.float32)
    img = load_image(rgb, device="cpu")
    _check(img, 3, 4)
    assert torch.allclose(img[0].permute(1, 2, 0), torch.from_numpy(rgb))
    gray = rng.random((3, 4))  # float64 is fine too
    g = load_image(gray, device="cpu")
    assert torch.allclose(g[0, 1], torch.from_numpy(gray).float())
    rgba = np.concatenate([rgb, np.full((3, 4, 1), 0.5, np.float32)], axis=2)
    a = load_image(rgba, device="cpu")
    assert torch.allclose(a[0].permute(1, 2, 0), torch.from_numpy(rgb * 0.5 + 0.5))  # on white


def test_tensor_chw_and_batch_of_one():
    t = torch.rand(3, 6, 9, generator=torch.Generator().manual_seed(0))
    a = load_image(t, device="cpu")
    b = load_image(t.unsqueeze(0), device="cpu")
    _check(a, 6, 9)
    assert torch.equal(a, t.unsqueeze(0))
    assert torch.equal(b, a)
    assert a.data_ptr() != t.data_ptr()  # a copy: editing the result leaves the input alone


# --- size ------------------------------------------------------------------------------------

def test_size_none_int_and_pair(tmp_path):
    arr = _rgb(30, 60, seed=5)
    Image.fromarray(arr).save(tmp_path / "wide.png")
    assert load_image(tmp_path / "wide.png", device="cpu").shape == (1, 3, 30, 60)
    assert load_image(tmp_path / "wide.png", size=20, device="cpu").shape == (1, 3, 10, 20)
    tall = load_image(arr.transpose(1, 0, 2).copy(), size=20, device="cpu")
    assert tall.shape == (1, 3, 20, 10)  # int = the longest side, aspect kept
    assert load_image(tmp_path / "wide.png", size=(16, 24), device="cpu").shape == (1, 3, 16, 24)
    # a constant image stays constant (and in range) through resizing
    flat = load_image(np.full((30, 60, 3), 200, np.uint8), size=(7, 11), device="cpu")
    assert torch.allclose(flat, torch.full_like(flat, 200 / 255), atol=1e-5)


def test_example_size_sets_the_longest_side():
    img = nstlib.example("starry_night", size=40, device="cpu")
    assert max(img.shape[-2:]) == 40 and img.shape[:2] == (1, 3)


# --- modes, EXIF, alpha --------------------------------------------------------------------

def test_exif_orientation_is_applied(tmp_path):
    # 20 x 40 (H x W): left half red, right half blue. Orientation 6 = "rotate 90 degrees
    # clockwise to display", so the loaded image is 40 x 20 with red on top, blue at the bottom.
    arr = np.zeros((20, 40, 3), np.uint8)
    arr[:, :20] = (255, 0, 0)
    arr[:, 20:] = (0, 0, 255)
    pil = Image.fromarray(arr)
    exif = pil.getexif()
    exif[0x0112] = 6  # Orientation
    pil.save(tmp_path / "rotated.jpg", exif=exif.tobytes(), quality=95)
    assert Image.open(tmp_path / "rotated.jpg").size == (40, 20)  # stored unrotated
    img = load_image(tmp_path / "rotated.jpg", device="cpu")
    assert img.shape == (1, 3, 40, 20)
    top, bottom = img[0, :, 2:16, 2:18].mean(dim=(1, 2)), img[0, :, 24:38, 2:18].mean(dim=(1, 2))
    assert top[0] > 0.9 and top[2] < 0.1, top  # red
    assert bottom[2] > 0.9 and bottom[0] < 0.1, bottom  # blue
    # orientation 3 (upside down): blue on the left
    exif[0x0112] = 3
    pil.save(tmp_path / "flipped.jpg", exif=exif.tobytes(), quality=95)
    flipped = load_image(tmp_path / "flipped.jpg", device="cpu")
    assert flipped.shape == (1, 3, 20, 40)
    assert flipped[0, 2, :, :16].mean() > 0.9 and flipped[0, 0, :, :16].mean() < 0.1


def test_grayscale_file(tmp_path):
    gray = np.arange(24, dtype=np.uint8).reshape(4, 6) * 10
    Image.fromarray(gray, "L").save(tmp_path / "g.png")
    img = load_image(tmp_path / "g.png", device="cpu")
    _check(img, 4, 6)
    want = torch.from_numpy(gray.astype(np.float32) / 255.0)
    for c in range(3):
        assert torch.equal(img[0, c], want)


def test_palette_without_and_with_transparency(tmp_path):
    pil = Image.new("P", (3, 2))
    pil.putpalette([255, 0, 0, 0, 255, 0, 0, 0, 255] + [0] * (256 * 3 - 9))
    pil.putdata([0, 1, 2, 2, 1, 0])
    pil.save(tmp_path / "p.png")
    img = load_image(tmp_path / "p.png", device="cpu")
    _check(img, 2, 3)
    assert img[0, :, 0, 0].tolist() == [1.0, 0.0, 0.0]
    assert img[0, :, 0, 1].tolist() == [0.0, 1.0, 0.0]
    assert img[0, :, 0, 2].tolist() == [0.0, 0.0, 1.0]
    pil.save(tmp_path / "pt.png", transparency=1)  # index 1 (green) is transparent
    t = load_image(tmp_path / "pt.png", device="cpu")
    assert t[0, :, 0, 1].tolist() == [1.0, 1.0, 1.0]  # composited on white
    assert t[0, :, 0, 0].tolist() == [1.0, 0.0, 0.0]  # opaque pixels unchanged
    assert t[0, :, 0, 2].tolist() == [0.0, 0.0, 1.0]


def test_rgba_composited_on_white(tmp_path):
    arr = np.zeros((2, 3, 4), np.uint8)
    arr[0, 0] = (10, 20, 30, 0)  # fully transparent -> white
    arr[0, 1] = (200, 100, 0, 255)  # opaque -> itself
    arr[0, 2] = (0, 0, 0, 51)  # 20 % black on white -> 0.8
    arr[1] = (255, 0, 0, 255)
    Image.fromarray(arr, "RGBA").save(tmp_path / "a.png")
    img = load_image(tmp_path / "a.png", device="cpu")
    _check(img, 2, 3)
    assert img[0, :, 0, 0].tolist() == [1.0, 1.0, 1.0]
    assert torch.allclose(img[0, :, 0, 1], torch.tensor([200, 100, 0]) / 255.0)
    assert torch.allclose(img[0, :, 0, 2], torch.full((3,), 0.8), atol=1e-6)
    la = Image.fromarray(arr, "RGBA").convert("LA")  # grey + alpha also composites
    assert load_image(la, device="cpu")[0, :, 0, 0].tolist() == [1.0, 1.0, 1.0]


def test_cmyk(tmp_path):
    cmyk = Image.new("CMYK", (4, 3), (0, 255, 255, 0))  # red in CMYK
    assert load_image(cmyk, device="cpu")[0, :, 0, 0].tolist() == [1.0, 0.0, 0.0]
    cmyk.save(tmp_path / "c.tif")
    assert Image.open(tmp_path / "c.tif").mode == "CMYK"
    img = load_image(tmp_path / "c.tif", device="cpu")
    _check(img, 3, 4)
    assert torch.equal(img, torch.tensor([1.0, 0.0, 0.0]).view(1, 3, 1, 1).expand(1, 3, 3, 4))
    cmyk.save(tmp_path / "c.jpg", quality=95)
    assert Image.open(tmp_path / "c.jpg").mode == "CMYK"
    j = load_image(tmp_path / "c.jpg", device="cpu")
    assert torch.allclose(j, torch.tensor([1.0, 0.0, 0.0]).view(1, 3, 1, 1).expand(1, 3, 3, 4), atol=0.03)
    grey = Image.new("CMYK", (2, 2), (0, 0, 0, 128))  # 50 % black ink -> mid grey
    assert torch.allclose(load_image(grey, device="cpu"), torch.full((1, 3, 2, 2), 127 / 255))


def test_16_bit_png_and_mode_i(tmp_path):
    vals = np.array([[0, 1000, 32768, 65535]], dtype=np.uint16)
    Image.fromarray(vals).save(tmp_path / "deep.png")
    assert Image.open(tmp_path / "deep.png").mode in ("I;16", "I")
    img = load_image(tmp_path / "deep.png", device="cpu")
    _check(img, 1, 4)
    want = torch.from_numpy(vals.astype(np.float64) / 65535.0).float()
    for c in range(3):
        assert torch.allclose(img[0, c], want, atol=1e-6)
    assert img[0, 0, 0, 2] == pytest.approx(0.5, abs=1e-4)  # not clipped at 255
    mode_i = Image.fromarray(vals.astype(np.int32), "I")
    assert torch.allclose(load_image(mode_i, device="cpu")[0, 0], want, atol=1e-6)
    assert torch.allclose(load_image(vals, device="cpu")[0, 2], want, atol=1e-6)  # uint16 array


# --- saving and converting -----------------------------------------------------------------

def test_save_png_round_trip_is_exact(tmp_path):
    img = torch.randint(0, 256, (1, 3, 7, 9), generator=torch.Generator().manual_seed(1)).float() / 255
    path = save_image(img, tmp_path / "x.png")
    assert path == tmp_path / "x.png" and path.is_file()
    assert torch.equal(load_image(path, device="cpu"), img)


def test_save_jpeg_round_trip_is_close(tmp_path):
    img = nstlib.example("tower_bridge", size=48, device="cpu")
    path = save_image(img, tmp_path / "sub" / "x.jpg")  # missing folders are created
    back = load_image(path, device="cpu")
    assert back.shape == img.shape
    assert (back - img).abs().mean() < 0.03


def test_save_never_overwrites(tmp_path):
    red = torch.zeros(1, 3, 4, 4)
    red[:, 0] = 1
    blue = torch.zeros(1, 3, 4, 4)
    blue[:, 2] = 1
    first = save_image(red, tmp_path / "out.png")
    second = save_image(blue, tmp_path / "out.png")
    third = save_image(blue, tmp_path / "out.png")
    assert (first.name, second.name, third.name) == ("out.png", "out_1.png", "out_2.png")
    assert torch.equal(load_image(first, device="cpu"), red)  # the first file is untouched
    assert torch.equal(load_image(second, device="cpu"), blue)
    assert save_image(blue, tmp_path / "out.png", overwrite=True) == tmp_path / "out.png"
    assert torch.equal(load_image(first, device="cpu"), blue)


def test_to_pil():
    img = torch.zeros(1, 3, 2, 3)
    img[0, 0, 0, 0] = 1.0
    img[0, 1, 1, 2] = 0.5
    img[0, 2, 0, 1] = 1.7  # out of range: clamped
    pil = to_pil(img)
    assert pil.mode == "RGB" and pil.size == (3, 2)
    assert pil.getpixel((0, 0)) == (255, 0, 0)
    assert pil.getpixel((2, 1)) == (0, 128, 0)
    assert pil.getpixel((1, 0)) == (0, 0, 255)
    assert to_pil(img[0]).tobytes() == pil.tobytes()  # [3, H, W] too
    assert torch.equal(load_image(pil, device="cpu"), load_image(np.asarray(pil), device="cpu"))


# --- bundled examples and figures ----------------------------------------------------------

def test_examples_lists_every_kind():
    content, style, texture = (nstlib.examples(k) for k in ("content", "style", "texture"))
    assert "tower_bridge" in content and "starry_night" in style and texture
    assert not set(content) & set(style)
    assert sorted(nstlib.examples()) == sorted(content + style + texture)
    for name in (content[0], style[0], texture[0]):
        img = nstlib.example(name, size=32, device="cpu")
        _check(img, *img.shape[-2:])
        assert max(img.shape[-2:]) == 32
        assert float(img.std()) > 0.01  # a real picture, not a blank


def test_unknown_example_suggests_names():
    with pytest.raises(ImageError, match="starry_night"):
        nstlib.example("stary_night")
    with pytest.raises(ValueError, match="content"):
        nstlib.examples("paintings")


def test_show_returns_a_figure():
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    a = torch.rand(1, 3, 8, 8)
    fig = nstlib.show(a, a[0], Image.new("RGB", (8, 8)), titles=["a", "b", "c"], ncols=2)
    try:
        assert isinstance(fig, matplotlib.figure.Figure)
        shown = [ax for ax in fig.axes if ax.images]
        assert len(shown) == 3 and len(fig.axes) == 4  # a 2 x 2 grid, the last cell empty
        assert [ax.get_title() for ax in shown] == ["a", "b", "c"]
        assert np.allclose(shown[0].images[0].get_array(), a[0].permute(1, 2, 0).numpy())
    finally:
        plt.close(fig)
