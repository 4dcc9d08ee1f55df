"""Pass 1 of the tiled objective keeps the deep layers' graph (nstlib.tiles.keep_split), so that
pass 2 recomputes only the layers above the split: the pieces (VGGFeatures.resume, the memory
estimate after a layer, the choice of the split, by hand) and the whole (the same loss and
gradient as the untiled objective, and pass 2 asking the network for the shallow layers only).
"""
from __future__ import annotations

import pytest
import torch

import nstlib
from nstlib.checkpoint import bytes_per_pixel
from nstlib.errors import LayerError
from nstlib.objective import Objective
from nstlib.tiles import KEEP_SHARE, grid, keep_split
from nstlib.tiling import TiledObjective

pytestmark = pytest.mark.usefixtures("one_thread")

STYLE_LAYERS = ["relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu5_1"]
LAYERS = ["relu4_2"] + STYLE_LAYERS


def _rand(*shape, seed=0):
    return torch.rand(*shape, generator=torch.Generator().manual_seed(seed))


def test_resume_continues_a_pass_and_its_gradient(random_vgg):
    img = _rand(1, 3, 64, 80)
    x = img.clone().requires_grad_(True)
    ref = random_vgg(x, ["relu4_2", "relu5_1"])
    (ref["relu4_2"].sum() + ref["relu5_1"].square().sum()).backward()

    y = img.clone().requires_grad_(True)
    top = random_vgg(y, ["pool2"])["pool2"]
    leaf = top.detach().requires_grad_(True)
    got = random_vgg.resume(leaf, "pool2", ["relu4_2", "relu5_1"])
    for n in ("relu4_2", "relu5_1"):
        torch.testing.assert_close(got[n], ref[n], rtol=1e-5, atol=1e-6)
    (got["relu4_2"].sum() + got["relu5_1"].square().sum()).backward()
    top.backward(leaf.grad)  # the two halves of the backward pass, joined at pool2
    torch.testing.assert_close(y.grad, x.grad, rtol=1e-4, atol=1e-7)


def test_resume_after_a_convolution_leaves_its_input_alone(random_vgg):
    leaf = _rand(1, 64, 8, 8).sub(0.5).requires_grad_(True)  # negative values: an in-place ReLU would zero them
    before = leaf.detach().clone()
    out = random_vgg.resume(leaf, "conv1_1", ["relu1_1"])
    assert torch.equal(leaf.detach(), before)
    torch.testing.assert_close(out["relu1_1"], before.clamp_min(0))


def test_resume_refuses_a_layer_that_is_not_above(random_vgg):
    leaf = _rand(1, 512, 4, 4)
    with pytest.raises(LayerError, match="above"):
        random_vgg.resume(leaf, "relu5_1", ["relu4_2"])
    with pytest.raises(LayerError, match="above"):
        random_vgg.resume(leaf, "pool9", ["relu5_1"])


def test_bytes_per_pixel_after_a_layer_by_hand(random_vgg):
    # floats per input pixel from the split's output on (kept as the pass's input), plus twice the
    # largest of them: after pool3: pool3 256/64, block 4 8 x 512/64, pool4 512/256, conv5_1 + relu5_1
    # 2 x 512/256, twice block 4's 8
    assert bytes_per_pixel(random_vgg, LAYERS, after="pool3") == 4 * (4 + 64 + 2 + 4 + 16)
    assert bytes_per_pixel(random_vgg, LAYERS, after="pool4") == 4 * (2 + 4 + 4)
    # after pool2: pool2 8, block 3 8 x 16, then as above; twice block 3's 16
    assert bytes_per_pixel(random_vgg, LAYERS, after="pool2") == 4 * (8 + 128 + 4 + 64 + 2 + 4 + 32)
    # to relu4_2 only, after pool3: pool3 4, conv4_1 .. relu4_2 4 x 8, twice 8
    assert bytes_per_pixel(random_vgg, ["relu4_2"], after="pool3") == 4 * (4 + 32 + 16)


def _equal_crops(n: int) -> list:
    """n tiles whose crops are all 100 x 100 px (the spans need not tile an image for the estimate)."""
    return [((0, 100, 0, 50), (0, 100, 0, 50))] * n


@pytest.mark.parametrize("n, split", [(2, "pool2"), (4, "pool3"), (9, "pool4"), (40, None)])
def test_keep_split_by_hand(random_vgg, n, split):
    # one crop with gradients: 738 floats per pixel (tests/test_tiling.py); the kept graphs may take
    # KEEP_SHARE = 1/2 of it, 369 floats x the crop's pixels. Kept after pool1 / pool2 / pool3 / pool4:
    # 418 / 242 / 90 / 10 floats per pixel of each of the n - 1 kept crops:
    # 1 crop: 242 <= 369 (pool1's 418 is not); 3: 3 x 90 = 270; 8: 8 x 10 = 80; 39: 390 > 369
    assert KEEP_SHARE == 0.5
    tiles = _equal_crops(n)
    assert keep_split(random_vgg, LAYERS, tiles[:-1], tiles) == split


def test_keep_split_skips_a_tapped_pooling(random_vgg):
    ext = nstlib.VGGFeatures("vgg19", ["pool2", "relu5_1"], weights=None, device="cpu")
    tiles = _equal_crops(2)
    assert keep_split(ext, ["pool2", "relu5_1"], tiles[:-1], tiles) == "pool3"


@pytest.fixture(scope="module")
def images():
    content = nstlib.example("tower_bridge", size=(100, 140), device="cpu")
    style = nstlib.example("starry_night", size=(90, 120), device="cpu")
    return content, style, (0.7 * content + 0.3 * _rand(*content.shape, seed=1)).clamp(0, 1)


@pytest.mark.parametrize("tile, split", [((48, 160), "pool2"), (48, "pool4")])
def test_kept_graphs_give_the_untiled_loss_and_gradient(random_vgg, images, monkeypatch, tile, split):
    content, style, x0 = images
    args = (random_vgg, content, style, ["relu4_2"], STYLE_LAYERS, 1.0, 1e4, 44.0)
    tiled = TiledObjective(*args, tile=tile, tile_nograd=tile)
    tiles = grid(x0.shape, tiled.tile, tiled.halo, tiled.stride)
    assert keep_split(random_vgg, tiled.layers, tiles[:-1], tiles) == split
    x = x0.clone().requires_grad_(True)
    out = Objective(*args)(x)
    out["total"].backward()
    losses = {k: float(v.detach()) for k, v in out.items()}

    asked: list[tuple[bool, list[str]]] = []
    forward, resume = random_vgg.forward, random_vgg.resume
    # spies on the shared extractor's instance (setitem: undone by deleting them, so that copies of
    # the extractor made later, e.g. by checkpointed(), do not inherit them)
    monkeypatch.setitem(random_vgg.__dict__, "forward", lambda img, layers=None: asked.append(
        (torch.is_grad_enabled(), list(layers))) or forward(img, layers))
    monkeypatch.setitem(random_vgg.__dict__, "resume", lambda leaf, after, layers: asked.append(
        (False, ["resume", after])) or resume(leaf, after, layers))
    y = x0.clone().requires_grad_(True)
    got = tiled.loss_and_grad(y)
    for term in ("total", "content", "style", "tv"):
        assert abs(float(got[term]) - losses[term]) <= 1e-5 * abs(losses[term]), term
    assert float((y.grad - x.grad).norm() / x.grad.norm()) <= 1e-4

    names = random_vgg.layers_in_body
    with_grad = [layers for grad, layers in asked if grad]
    assert len(with_grad) == len(tiles)  # pass 2: one forward pass per tile
    assert sorted(with_grad[0]) == sorted(LAYERS)  # the last tile, first: no graph kept for it
    for layers in with_grad[1:]:  # the others: only the layers above the split, and the split
        assert split in layers and all(names.index(n) <= names.index(split) for n in layers), layers
    assert asked.count((False, ["resume", split])) == len(tiles) - 1  # pass 1, once per kept crop


def test_keep_split_stays_within_max_memory(random_vgg):
    # two 100 x 100 px crops, one kept: the largest crop takes 1e4 px x 2952 B; with max_memory the
    # kept graph must fit in what it leaves: pool2's 968 B per pixel exactly, one byte less (pool3's
    # 360 B fits), or nothing left
    tiles = _equal_crops(2)
    crop = 10_000 * 2952
    assert keep_split(random_vgg, LAYERS, tiles[:-1], tiles, max_memory=crop + 10_000 * 968) == "pool2"
    assert keep_split(random_vgg, LAYERS, tiles[:-1], tiles, max_memory=crop + 10_000 * 968 - 1) == "pool3"
    assert keep_split(random_vgg, LAYERS, tiles[:-1], tiles, max_memory=crop) is None
    assert keep_split(random_vgg, LAYERS, tiles[:-1], tiles, max_memory=10 ** 12) == "pool2"  # KEEP_SHARE caps


def test_a_tiled_stage_passes_its_memory_budget_on(random_vgg, images, monkeypatch):
    seen = []
    real = nstlib.stage.optimize

    def spy(x0, objective, **kw):
        seen.append(getattr(objective, "max_memory", "untiled"))
        return real(x0, objective, **kw)
    monkeypatch.setattr(nstlib.stage, "optimize", spy)
    content, style, _ = images
    nstlib.stylize(content, style, extractor=random_vgg, size=(100, 140), steps=1, tile="auto",
                   max_memory="130MB")  # auto_tile: 48 px cores ((48 + 160)^2 x 2952 B = 127.7 MB)
    assert seen == [130_000_000]
