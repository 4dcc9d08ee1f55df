"""VGGFeatures runs a ReLU in place when its convolution's output is not a tap: the features and
the image's gradient must be exactly those of the network run module by module, and a conv tap
(pre-activation) must keep its negative values."""
from __future__ import annotations

import pytest
import torch

import nstlib

pytestmark = pytest.mark.filterwarnings("ignore::nstlib.RandomWeightsWarning")


def _plain(ext: nstlib.VGGFeatures, img: torch.Tensor, layers: list[str]) -> dict[str, torch.Tensor]:
    """The same network, each module called as it is (out of place), in contiguous layout."""
    x, out = (img - ext.mean) / ext.std, {}
    for name, module in ext.body.named_children():
        x = module(x) if not isinstance(module, torch.nn.ReLU) else torch.relu(x)
        if name in layers:
            out[name] = x
    return out


def test_taps_and_gradient_match_the_network_run_module_by_module():
    ext = nstlib.VGGFeatures(layers=["conv1_2", "relu2_1", "conv3_1"], weights="random", device="cpu")
    layers = ["conv1_1", "conv1_2", "relu2_1", "conv3_1"]  # conv1_1 asked only at call time
    img = torch.rand(1, 3, 24, 24, generator=torch.Generator().manual_seed(0))
    x1, x2 = img.clone().requires_grad_(True), img.clone().requires_grad_(True)
    got, want = ext(x1, layers), _plain(ext, x2, layers)
    for name in layers:
        # float rounding only (the module-by-module pass is NCHW, with other rounding in oneDNN and Winograd)
        assert torch.allclose(got[name], want[name], rtol=1e-5, atol=2e-5 * float(want[name].detach().abs().max())), name
    assert (got["conv1_1"] < 0).any() and (got["conv3_1"] < 0).any()  # pre-activation: not overwritten
    sum(f.pow(2).mean() for f in got.values()).backward()
    sum(f.pow(2).mean() for f in want.values()).backward()
    assert torch.allclose(x1.grad, x2.grad, rtol=1e-4, atol=1e-7)
