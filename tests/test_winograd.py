"""Winograd F(4x4, 3x3) convolutions (nstlib.winograd) and their use in the VGG extractor.

The reference is never the function itself: hand-worked outputs and gradients of a 4 x 4 image,
and ``torch.nn.functional.conv2d`` (oneDNN's direct algorithm) in float64.
"""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

import nstlib
import nstlib.winograd as W

X16 = torch.arange(16.0, dtype=torch.float64).view(1, 1, 4, 4)


def frozen_conv(c_in: int, c_out: int, weight=None, bias=None, dtype=torch.float64) -> torch.nn.Conv2d:
    conv = torch.nn.Conv2d(c_in, c_out, 3, padding=1).to(dtype).requires_grad_(False)
    if weight is not None:
        conv.weight.copy_(torch.as_tensor(weight, dtype=dtype).view_as(conv.weight))
    if bias is not None:
        conv.bias.fill_(bias)
    return conv


def cl(x: torch.Tensor) -> torch.Tensor:
    return x.contiguous(memory_format=torch.channels_last)


def test_box_filter_of_a_4x4_image_by_hand():
    # every output is the sum of the 3 x 3 neighbourhood (zero outside), worked out by hand
    y = W.Winograd(frozen_conv(1, 1, torch.ones(9), bias=0.0))(cl(X16))
    expected = [[10, 18, 24, 18], [27, 45, 54, 39], [51, 81, 90, 63], [42, 66, 72, 50]]
    torch.testing.assert_close(y[0, 0], torch.tensor(expected, dtype=torch.float64), rtol=0, atol=1e-12)


def test_an_asymmetric_kernel_is_a_correlation_not_flipped():
    # weight 1 at the top-left tap: out[i, j] = x[i - 1, j - 1] (+ bias), as conv2d (a correlation) does
    w = torch.zeros(9)
    w[0] = 1
    y = W.Winograd(frozen_conv(1, 1, w, bias=0.5))(cl(X16))
    expected = torch.tensor([[0, 0, 0, 0], [0, 0, 1, 2], [0, 4, 5, 6], [0, 8, 9, 10]], dtype=torch.float64) + 0.5
    torch.testing.assert_close(y[0, 0], expected, rtol=0, atol=1e-12)


def test_the_gradient_of_the_shift_by_hand():
    # d/dx sum(out * g) for out[i, j] = x[i - 1, j - 1] is g[p + 1, q + 1] (0 on the last row and column)
    w = torch.zeros(9)
    w[0] = 1
    x = cl(X16.clone()).requires_grad_(True)
    g = torch.arange(16.0, dtype=torch.float64).view(1, 1, 4, 4) + 1
    (W.Winograd(frozen_conv(1, 1, w, bias=0.0))(x) * g).sum().backward()
    expected = torch.zeros(4, 4, dtype=torch.float64)
    expected[:3, :3] = g[0, 0, 1:, 1:]
    torch.testing.assert_close(x.grad[0, 0], expected, rtol=0, atol=1e-12)


@pytest.mark.parametrize("shape", [(1, 5, 7, 8, 8), (2, 4, 3, 7, 10), (1, 3, 2, 1, 1), (1, 6, 6, 13, 5), (3, 2, 4, 4, 9)])
@pytest.mark.parametrize("band_bytes", [1, W.BAND_BYTES])
def test_equals_the_direct_convolution_in_float64(monkeypatch, shape, band_bytes):
    # any size (not only whole 4 x 4 blocks), batches, and bands of one row of windows at a time
    monkeypatch.setattr(W, "BAND_BYTES", band_bytes)
    b, c, co, h, w = shape
    torch.manual_seed(sum(shape))
    conv = frozen_conv(c, co)
    plan = W.Winograd(conv)
    x = cl(torch.rand(b, c, h, w, dtype=torch.float64)).requires_grad_(True)
    g = torch.randn(b, co, h, w, dtype=torch.float64)
    y = plan(x)
    (y * g).sum().backward()
    ref_x = x.detach().clone().requires_grad_(True)
    (F.conv2d(ref_x, conv.weight, conv.bias, padding=1) * g).sum().backward()
    torch.testing.assert_close(y, F.conv2d(x.detach(), conv.weight, conv.bias, padding=1), rtol=0, atol=1e-12)
    torch.testing.assert_close(x.grad, ref_x.grad, rtol=0, atol=1e-12)
    assert y.is_contiguous(memory_format=torch.channels_last) and x.grad.is_contiguous(memory_format=torch.channels_last)


def test_gradcheck():
    torch.manual_seed(3)
    plan = W.Winograd(frozen_conv(3, 2))
    x = cl(torch.rand(1, 3, 6, 9, dtype=torch.float64)).requires_grad_(True)
    assert torch.autograd.gradcheck(plan, (x,))


def test_float32_error_at_vgg_widths():
    # 4x fewer multiplications cost some accuracy: within 2e-5 of the largest output (direct: ~2e-6)
    torch.manual_seed(0)
    conv = frozen_conv(256, 256, dtype=torch.float32)
    conv.weight.mul_(3 / conv.weight.abs().max())
    x = cl(torch.rand(1, 256, 32, 32))
    ref = F.conv2d(x.double(), conv.weight.double(), conv.bias.double(), padding=1)
    err = (W.Winograd(conv)(x).double() - ref).abs().max() / ref.abs().max()
    assert err < 2e-5


def test_only_3x3_stride_1_padding_1_with_bias():
    for conv in (torch.nn.Conv2d(2, 2, 3, padding=0), torch.nn.Conv2d(2, 2, 3, padding=1, stride=2),
                 torch.nn.Conv2d(2, 2, 5, padding=1), torch.nn.Conv2d(2, 2, 3, padding=1, bias=False)):
        with pytest.raises(ValueError, match="3 x 3 convolutions with stride 1, padding 1"):
            W.Winograd(conv)


# ---- in the extractor ----

def extractor(**kw) -> nstlib.VGGFeatures:
    return nstlib.VGGFeatures(layers=["relu1_1", "relu2_1", "relu3_1", "relu4_2", "relu5_1"], weights="random",
                              device="cpu", **kw)


def test_on_by_default_on_the_cpu_from_conv2_1_on():
    ext = extractor()
    convs = [n for n in ext.layers_in_body if n.startswith("conv")]
    assert ext.winograd and ext.winograd_layers == convs[2:]      # conv2_1 ... conv5_1
    assert extractor(winograd=False).winograd_layers == []
    assert extractor(precision="bf16").winograd_layers == []      # autocast keeps its own convolutions
    assert extractor(channels_last=False).winograd_layers == []
    assert "winograd=['conv2_1'" in repr(ext)
    # the same module type and state dict as torchvision's layers
    assert isinstance(ext.body.conv3_1, torch.nn.Conv2d)
    assert ext.state_dict().keys() == extractor(winograd=False).state_dict().keys()


def test_features_and_image_gradient_match_the_direct_extractor():
    fast, direct = extractor(), extractor(winograd=False)
    img = nstlib.load_image("astronaut", size=64)
    out = {}
    for name, ext in (("fast", fast), ("direct", direct)):
        x = img.clone().requires_grad_(True)
        feats = ext(x)
        sum((f ** 2).mean() for f in feats.values()).backward()
        out[name] = feats, x.grad
    for n in fast.layers:
        torch.testing.assert_close(out["fast"][0][n], out["direct"][0][n], rtol=1e-4, atol=1e-4 * float(out["direct"][0][n].detach().abs().max()))
    g_fast, g_direct = out["fast"][1], out["direct"][1]
    assert float((g_fast - g_direct).norm() / g_direct.norm()) < 1e-4


def by_winograd(t: torch.Tensor) -> bool:
    return "WinogradConv" in t.grad_fn.name()


def conv_out(ext: nstlib.VGGFeatures, name: str, x: torch.Tensor) -> torch.Tensor:
    return ext(x.requires_grad_(True), [name])[name]


def test_the_pass_takes_the_winograd_path_where_prepared():
    ext, x = extractor(), torch.rand(1, 3, 32, 32)
    assert by_winograd(conv_out(ext, "conv3_1", x)) and not by_winograd(conv_out(ext, "conv1_2", x))
    assert not by_winograd(conv_out(extractor(winograd=False), "conv3_1", x))


def test_checkpointed_segments_keep_the_winograd_path():
    from nstlib.checkpoint import checkpointed
    ext = extractor()
    x = torch.rand(1, 3, 32, 32, requires_grad=True)
    direct = ext(x, ["relu4_2"])["relu4_2"]
    ck = checkpointed(ext)
    assert ck.body.relu3_1.seq[-2] is ext.body.conv3_1             # the same (prepared) module
    torch.testing.assert_close(ck(x, ["relu4_2"])["relu4_2"], direct, rtol=0, atol=0)


def test_changed_weights_fall_back_to_the_direct_convolution():
    # reloading, training or casting the network must not use the transforms of the old weights
    ext, ref = extractor(), extractor(winograd=False)
    x = torch.rand(1, 3, 32, 32)
    state = {k: v * 2 if k == "body.conv3_1.weight" else v for k, v in ext.state_dict().items()}
    ext.load_state_dict(state)
    ref.load_state_dict(state)
    after = conv_out(ext, "conv3_1", x)
    assert not by_winograd(after)
    torch.testing.assert_close(after, conv_out(ref, "conv3_1", x), rtol=1e-6, atol=1e-6)
    ext = extractor()
    ext.body.conv2_1.weight.requires_grad_(True)
    ext(torch.rand(1, 3, 32, 32), ["relu2_1"])["relu2_1"].sum().backward()
    assert ext.body.conv2_1.weight.grad is not None               # trained: autograd's own convolution
    ext = extractor().double()
    out = conv_out(ext, "conv2_1", torch.rand(1, 3, 32, 32, dtype=torch.float64))
    assert out.dtype == torch.float64 and not by_winograd(out)


def test_autocast_falls_back():
    # a float32 input under autocast gets autocast's bfloat16 convolution, not Winograd's float32 one
    conv = extractor().body.conv3_1
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = conv(cl(torch.rand(1, 128, 8, 8)).requires_grad_(True))
    assert out.dtype == torch.bfloat16 and not by_winograd(out)


def test_a_batch_computes_each_image_as_alone():
    # sweeps and galleries optimize a batch: each image gets the bits it would get alone (each
    # row of a matrix product is computed alone, and a band's rows are whole images' windows)
    torch.manual_seed(5)
    plan = W.Winograd(frozen_conv(8, 16, dtype=torch.float32))
    x = cl(torch.rand(3, 8, 20, 24)).requires_grad_(True)
    g = torch.randn(3, 16, 20, 24)
    y = plan(x)
    (y * g).sum().backward()
    for i in range(3):
        xi = x[i:i + 1].detach().clone(memory_format=torch.channels_last).requires_grad_(True)
        yi = plan(xi)
        (yi * g[i:i + 1]).sum().backward()
        assert torch.equal(yi, y[i:i + 1]) and torch.equal(xi.grad, x.grad[i:i + 1])


# ---- accuracy where it matters: the objective's gradient ----

@pytest.fixture(scope="module")
def scene():
    content = nstlib.example("tower_bridge", size=(100, 140), device="cpu")
    style = nstlib.example("starry_night", size=(90, 120), device="cpu")
    noise = torch.rand(content.shape, generator=torch.Generator().manual_seed(1))
    return content, style, (0.7 * content + 0.3 * noise).clamp(0, 1)


def objective_grad(ext, scene, dtype=torch.float32, **tiled):
    from nstlib.objective import Objective
    from nstlib.tiling import TiledObjective
    content, style, x0 = (t.to(dtype) for t in scene)
    args = (ext, content, style, ["relu4_2"], ["relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu5_1"], 1.0, 1e4, 44.0)
    obj = TiledObjective(*args, **tiled) if tiled else Objective(*args)
    x = x0.clone().requires_grad_(True)
    total = obj.loss_and_grad(x)["total"]
    return float(total), x.grad.double()


def rel(a, b) -> float:
    return float((a - b).norm() / b.norm()) if isinstance(a, torch.Tensor) else abs(a - b) / abs(b)


def test_the_gradient_is_as_close_to_float64_as_the_direct_one(scene):
    # float32 gradients of this ReLU / max-pool network are ~0.5 % off float64's (a unit flips where
    # its input is within rounding of zero); Winograd's must be no further off than oneDNN's
    direct = extractor(winograd=False)
    truth = objective_grad(direct.double(), scene, torch.float64)
    noise = objective_grad(extractor(winograd=False), scene)
    fast = objective_grad(extractor(), scene)
    assert rel(fast[0], truth[0]) <= 1e-6
    assert rel(fast[1], truth[1]) <= 1.5 * rel(noise[1], truth[1]) and rel(noise[1], truth[1]) < 2e-2


def test_tiled_runs_agree_with_untiled_ones_to_float32_noise(scene):
    # Winograd's 4 x 4 blocks start where a crop starts, so tiles round differently from the whole image:
    # the loss agrees to 1e-6, the gradient as closely as float32 gradients agree with float64's
    ext = extractor()
    loss, grad = objective_grad(ext, scene)
    tiled_loss, tiled_grad = objective_grad(ext, scene, tile=48, tile_nograd=48)
    truth = objective_grad(extractor(winograd=False).double(), scene, torch.float64)
    assert rel(tiled_loss, loss) <= 1e-6
    assert rel(tiled_grad, grad) <= 2 * rel(grad, truth[1])
