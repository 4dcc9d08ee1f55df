"""Shared fixtures: a random-weight VGG built once per session, tiny bundled images, and
torchvision VGG models (random init) to compare the extractor against.

Every fixture here works offline and does not read NSTLIB_OFFLINE, NSTLIB_QUICK or
NSTLIB_WEIGHTS, so the tests behave the same with and without them.
"""
from __future__ import annotations

import contextlib
import os

import pytest
import torch

import nstlib

os.environ.setdefault("MPLBACKEND", "Agg")  # figures in tests never open a window

@contextlib.contextmanager
def torch_threads(n: int):
    """Run the block with ``n`` torch threads. Tiny test images gain nothing from more, and on a
    shared, busy machine extra OpenMP threads spin and slow every test many times over."""
    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


@pytest.fixture(scope="module")
def one_thread():
    """Use with ``pytestmark = pytest.mark.usefixtures("one_thread")``: one torch thread for a module."""
    with torch_threads(1):
        yield


#: The taps the shared extractor exposes: the paper's content and style layers, plus a conv tap.
RANDOM_VGG_LAYERS = ("conv1_1", "relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu4_2", "relu5_1")


@pytest.fixture(scope="session")
def random_vgg() -> nstlib.VGGFeatures:
    """VGG19, max pooling, seeded random weights (seed 0), on the CPU, cut after relu5_1."""
    with torch_threads(1):
        return nstlib.VGGFeatures("vgg19", RANDOM_VGG_LAYERS, weights=None, device="cpu", seed=0)


@pytest.fixture(scope="session")
def direct_vgg() -> nstlib.VGGFeatures:
    """``random_vgg`` with oneDNN's direct convolutions only (``winograd=False``): the arithmetic of an
    output pixel does not depend on where a crop starts, so tiled and untiled passes agree to 1e-7
    (Winograd's 4 x 4 blocks follow the crop: tests/test_winograd.py)."""
    with torch_threads(1):
        return nstlib.VGGFeatures("vgg19", RANDOM_VGG_LAYERS, weights=None, device="cpu", seed=0, winograd=False)


@pytest.fixture(scope="session")
def tiny_content() -> torch.Tensor:
    """tower_bridge, longest side 32 px: [1, 3, 16, 32] in [0, 1] (16 px: just enough for relu5_1)."""
    return nstlib.example("tower_bridge", size=32, device="cpu")


@pytest.fixture(scope="session")
def tiny_style() -> torch.Tensor:
    """starry_night, longest side 32 px: [1, 3, 25, 32]."""
    return nstlib.example("starry_night", size=32, device="cpu")


_CFG = {"vgg16": "D", "vgg19": "E"}  # torchvision's names for the VGG paper's configurations


@pytest.fixture(scope="session")
def torchvision_vgg():
    """``torchvision_vgg(arch)`` -> torchvision's own ``vgg.features`` (random init, seed 0, eval mode).

    Built with ``torchvision.models.vgg.make_layers``, the function ``torchvision.models.vgg19()``
    builds its ``features`` with, so the tests skip initializing the 120M-parameter classifier.
    """
    from torchvision.models import vgg as tv

    cache: dict[str, torch.nn.Module] = {}

    def build(arch: str) -> torch.nn.Module:
        if arch not in cache:
            torch.manual_seed(0)
            cache[arch] = tv.make_layers(tv.cfgs[_CFG[arch]]).eval()
        return cache[arch]
    return build


@pytest.fixture(scope="session")
def whole_model_state(torchvision_vgg):
    """``whole_model_state(arch)`` -> a state dict with every key and shape of torchvision's whole VGG
    (``features.*`` and ``classifier.*``): the features from :func:`torchvision_vgg`, the classifier
    as cheap zero-stride zeros of the right shapes."""
    import torchvision

    def make(arch: str) -> dict[str, torch.Tensor]:
        with torch.device("meta"):  # keys and shapes only; nothing allocated or initialized
            shapes = {k: v.shape for k, v in getattr(torchvision.models, arch)(weights=None).state_dict().items()}
        feats = {f"features.{k}": v for k, v in torchvision_vgg(arch).state_dict().items()}
        state = {k: feats[k] if k in feats else torch.zeros(1).expand(shape) for k, shape in shapes.items()}
        assert set(feats) <= set(shapes)
        return state
    return make


@pytest.fixture(scope="session")
def features_file(tmp_path_factory, torchvision_vgg):
    """``features_file(arch)`` -> a .pth file with torchvision's ``features.*`` keys only."""
    cache: dict[str, object] = {}

    def make(arch: str):
        if arch not in cache:
            path = tmp_path_factory.mktemp(f"weights_{arch}") / f"{arch}_features.pth"
            torch.save({f"features.{k}": v for k, v in torchvision_vgg(arch).state_dict().items()}, path)
            cache[arch] = path
        return cache[arch]
    return make
