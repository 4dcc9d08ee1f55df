"""The VGG feature extractor: named layers, max or average pooling, frozen, cut at the deepest tap.

Layer names follow the paper: ``conv{b}_{i}`` (the convolution's output, *before* the ReLU),
``relu{b}_{i}`` (after it) and ``pool{b}``. The paper's "conv4_2" was, in Caffe, the output of an
in-place ReLU, so it is ``relu4_2`` here.
"""
from __future__ import annotations

import difflib
import warnings
from collections import OrderedDict
from collections.abc import Iterable

import torch
from torch import nn

from .config import resolve_device
from .errors import ImageError, LayerError, WeightsError, check_choice, too_small
from .precision import amp_dtype, autocast, scale_grad, to_fp32, use_channels_last
from .weights import BLOCKS, RandomWeightsWarning, WeightsSpec, resolve_state_dict
from .winograd import MIN_CHANNELS, WinogradConv2d

__all__ = ["VGGFeatures", "layer_names", "min_side", "ARCHS", "POOLINGS", "IMAGENET_MEAN", "IMAGENET_STD", "WIDTHS"]

ARCHS = tuple(BLOCKS)
POOLINGS = ("max", "avg")
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
WIDTHS = (64, 128, 256, 512, 512)
DEFAULT_LAYERS = ("relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu4_2", "relu5_1")


def layer_names(arch: str = "vgg19") -> list[str]:
    """Every tap of ``arch`` in network order; position ``i`` is ``torchvision vgg.features[i]``."""
    check_choice("arch", arch, ARCHS)
    names = []
    for b, n in enumerate(BLOCKS[arch], start=1):
        for i in range(1, n + 1):
            names += [f"conv{b}_{i}", f"relu{b}_{i}"]
        names.append(f"pool{b}")
    return names


def check_layers(layers: Iterable[str], arch: str) -> list[str]:
    """Validate layer names against ``arch``; unknown ones raise :class:`LayerError`."""
    valid = layer_names(arch)
    layers = [layers] if isinstance(layers, str) else list(layers)
    for name in layers:
        if name not in valid:
            close = difflib.get_close_matches(str(name), valid, n=4, cutoff=0.4)
            raise LayerError(f"unknown {arch} layer {name!r}; closest valid names: "
                             f"{', '.join(close) if close else ', '.join(valid[:4])} "
                             f"(all names: nstlib.layer_names({arch!r}))")
    if not layers:
        raise LayerError("no layers requested; name at least one, e.g. 'relu4_2'")
    return layers


def min_side(layers: Iterable[str], arch: str = "vgg19") -> int:
    """Smallest image side (px) that ``layers`` accept: 2 ** (the poolings up to the deepest of them)."""
    names = layer_names(arch)
    deepest = max(names.index(n) for n in check_layers(layers, arch))
    return 2 ** sum(1 for n in names[:deepest + 1] if n.startswith("pool"))


def _build(arch: str, pooling: str) -> OrderedDict[str, nn.Module]:
    mods: OrderedDict[str, nn.Module] = OrderedDict()
    c_in = 3
    for b, (n, width) in enumerate(zip(BLOCKS[arch], WIDTHS), start=1):
        for i in range(1, n + 1):
            conv = WinogradConv2d if width >= MIN_CHANNELS else nn.Conv2d  # used once prepared
            mods[f"conv{b}_{i}"] = conv(c_in, width, kernel_size=3, padding=1)
            mods[f"relu{b}_{i}"] = nn.ReLU(inplace=False)  # out of place: conv taps stay pre-activation
            c_in = width
        mods[f"pool{b}"] = nn.MaxPool2d(2, 2) if pooling == "max" else nn.AvgPool2d(2, 2)
    return mods


#: Bundled images the random weights are calibrated on (photos, paintings, a texture).
CALIBRATION_IMAGES = ("astronaut", "chelsea_cat", "coffee", "neuschwanstein", "great_wave",
                      "night_cafe", "spring", "brick")


def _calibration_images(seed: int, size: int = 96) -> torch.Tensor:
    """Images the paper-style normalization is measured on, [n, 3, size, size] in [0, 1].

    The bundled photos and paintings (squashed to ``size``); if they are missing, seeded
    image-like noise with equal energy per octave (a 1/f spectrum, as in photos).
    """
    from .examples import example_path
    from .image import load_image
    paths = [p for p in map(example_path, CALIBRATION_IMAGES) if p is not None]
    if len(paths) == len(CALIBRATION_IMAGES):
        return torch.cat([load_image(p, size=(size, size), device="cpu") for p in paths])
    g = torch.Generator().manual_seed(seed + 7919)
    img = torch.zeros(len(CALIBRATION_IMAGES), 3, size, size)
    for s in (3, 6, 12, 24, 48, size):
        noise = torch.randn(len(CALIBRATION_IMAGES), 3, s, s, generator=g)
        img += nn.functional.interpolate(noise, size=(size, size), mode="bilinear", align_corners=False)
    lo, hi = img.amin(dim=(1, 2, 3), keepdim=True), img.amax(dim=(1, 2, 3), keepdim=True)
    return (img - lo) / (hi - lo)


@torch.no_grad()
def _random_init(mods: OrderedDict[str, nn.Module], seed: int) -> None:
    """Seeded He-normal init, then the paper's normalization: every channel's mean ReLU
    activation over the calibration images (bundled photos and paintings) and positions is
    scaled to 1, layer by layer (a ReLU network is positively homogeneous, so this only
    rescales); near-silent channels
    are scaled as if their mean were half the layer's median."""
    g = torch.Generator().manual_seed(seed)
    mean = torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1)
    std = torch.tensor(IMAGENET_STD).view(1, 3, 1, 1)
    x = (_calibration_images(seed) - mean) / std
    for name, m in mods.items():
        if isinstance(m, nn.Conv2d):
            fan_out = m.out_channels * m.kernel_size[0] * m.kernel_size[1]
            assert m.bias is not None  # VGG's convolutions all have a bias
            m.weight.copy_(torch.randn(m.weight.shape, generator=g) * (2.0 / fan_out) ** 0.5)
            m.bias.zero_()
            act = torch.relu(m(x)).mean(dim=(0, 2, 3))
            # A channel almost silent on the calibration images would get a huge gain and then
            # dominate on real photos: floor its mean at half the layer's median.
            act = act.clamp_min(0.5 * float(act.median()))
            scale = torch.where(act > 1e-8, 1.0 / act.clamp_min(1e-8), torch.ones_like(act))
            m.weight.mul_(scale.view(-1, 1, 1, 1))
            m.bias.mul_(scale)
        x = nn.functional.max_pool2d(x, 2) if name.startswith("pool") else m(x)


class VGGFeatures(nn.Module):
    """A frozen VGG cut after its deepest requested layer; ``ext(img)`` -> ``{name: features}``.

    Args:
        arch: ``"vgg19"`` or ``"vgg16"``.
        layers: the taps to return, e.g. ``["relu4_2", "relu1_1"]`` (see :func:`layer_names`).
        pooling: ``"max"`` (VGG's own) or ``"avg"`` (the paper's choice for synthesis).
        weights: ``"imagenet"`` (torchvision's IMAGENET1K_V1, or ``$NSTLIB_WEIGHTS``), a path to a
            torchvision-format state dict (whole model or ``features.*`` only), a state dict, or
            ``None``/``"random"`` for seeded random weights rescaled to the pretrained regime.
        device: where the network runs (default: :func:`nstlib.default_device`).
        seed: the seed of random weights (ignored for pretrained ones).
        precision: ``"fp32"`` (default), ``"bf16"``, ``"fp16"`` or ``"auto"`` (bf16/fp16 on CUDA,
            fp32 elsewhere): the network runs under autocast, the features come out in float32
            (:mod:`nstlib.precision`).
        channels_last: store activations channels-last (NHWC); ``None``: on for the CPU, where it
            is faster, and for reduced precision on CUDA.
        winograd: run the convolutions from conv2_1 on by Winograd's F(4x4, 3x3) (:mod:`nstlib.winograd`:
            4x fewer multiplications, the same result to a few 1e-6); ``None``: on for the CPU in
            float32 with channels last, where it measured faster. Build a new extractor after
            changing its weights in place through ``.data`` (other changes switch it off).

    Attribute ``announced`` (False at first) is set by :func:`nstlib.course.notice` when it has shown the
    random-weights banner for this extractor; runs that use it then do not repeat the warning.

    Input: [B, 3, H, W] in [0, 1]; ImageNet mean/std normalization happens inside.
    Output: ``{name: Tensor[B, C_l, H_l, W_l]}`` for the requested layers.
    """

    mean: torch.Tensor  # [1, 3, 1, 1] buffers: ImageNet's channel mean and std
    std: torch.Tensor

    def __init__(self, arch: str = "vgg19", layers: Iterable[str] = DEFAULT_LAYERS,
                 pooling: str = "max", weights: WeightsSpec = "imagenet",
                 device: str | torch.device | None = None, seed: int = 0, precision: str = "fp32",
                 channels_last: bool | None = None, winograd: bool | None = None) -> None:
        super().__init__()
        check_choice("arch", arch, ARCHS)
        check_choice("pooling", pooling, POOLINGS)
        self.arch, self.pooling, self.seed = arch, pooling, seed
        self.layer_names: list[str] = layer_names(arch)
        self.layers: list[str] = check_layers(layers, arch)
        state, self.weights_source = resolve_state_dict(arch, weights)
        self.pretrained: bool = state is not None
        self.announced: bool = False  # set by nstlib.course.notice once the banner has said "random weights"
        depth = max(self.layer_names.index(n) for n in self.layers) + 1
        # only the layers up to the deepest tap are built (and calibrated, for random weights)
        mods = OrderedDict(list(_build(arch, pooling).items())[:depth])
        if state is None:
            _random_init(mods, seed)
            self.weights_source = (f"random (seed {seed}"
                                   + (", offline fallback)" if self.weights_source != "random" else ")"))
        else:
            for i, (name, m) in enumerate(mods.items()):  # position i is torchvision's features[i]
                if isinstance(m, nn.Conv2d):
                    assert m.bias is not None  # VGG's convolutions all have a bias
                    for p, t in ((m.weight, state[f"{i}.weight"]), (m.bias, state[f"{i}.bias"])):
                        if p.shape != t.shape:
                            raise WeightsError(
                                f"weights from {self.weights_source} do not fit {arch}: {name} needs "
                                f"{tuple(p.shape)}, the file has {tuple(t.shape)} at features.{i}; "
                                f"use a torchvision {arch} state dict")
                    m.weight.data.copy_(state[f"{i}.weight"])
                    m.bias.data.copy_(state[f"{i}.bias"])
        self.body = nn.Sequential(mods)
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1))
        self.requires_grad_(False)
        self.eval()
        dev = resolve_device(device)
        self.precision, self.amp_dtype = precision, amp_dtype(precision, dev)
        self.channels_last = use_channels_last(channels_last, dev, self.amp_dtype)
        self.to(dev)
        self.to(memory_format=torch.channels_last if self.channels_last else torch.contiguous_format)
        if winograd is None:
            winograd = dev.type == "cpu" and self.amp_dtype is None and self.channels_last
        self.winograd: bool = bool(winograd)
        for m in self.body if self.winograd else ():
            if isinstance(m, WinogradConv2d):
                m.prepare()

    @property
    def device(self) -> torch.device:
        return self.mean.device

    def train(self, mode: bool = True) -> VGGFeatures:
        """Always stays in eval mode (the extractor is frozen)."""
        return super().train(False)

    def min_size(self) -> int:
        """Smallest image side all the taps accept: each pooling before the deepest tap halves it."""
        return min_side(self.layers, self.arch)

    def forward(self, img: torch.Tensor, layers: Iterable[str] | None = None) -> dict[str, torch.Tensor]:
        """Features of ``img`` ([B, 3, H, W] in [0, 1]) at ``layers`` (default: ``self.layers``)."""
        want = self._wanted(layers)
        if img.dim() != 4 or img.shape[1] != 3:
            raise ImageError(f"the extractor takes images of shape [B, 3, H, W], got {tuple(img.shape)}")
        need = min_side(want, self.arch)
        if min(img.shape[-2:]) < need:
            raise too_small(f"the image for layer(s) {sorted(want)}", img.shape[-2:], need, "use a larger size")
        x = scale_grad((img - self.mean) / self.std, self.amp_dtype)
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        return self._walk(x, want, None)

    def resume(self, x: torch.Tensor, after: str, layers: Iterable[str]) -> dict[str, torch.Tensor]:
        """Continue a pass from ``x``, the output of layer ``after`` as :meth:`forward` returns it
        ([B, C, H/s, W/s]), to ``layers`` (each deeper than ``after``): ``resume(forward(img, [a])[a],
        a, L)`` equals ``forward(img, L)``, and its backward pass ends at ``x``. (The tiled objective
        keeps only the deep layers' graph this way: :mod:`nstlib.tiling`.)"""
        want, names = self._wanted(layers), self.layers_in_body
        if after not in names or any(names.index(n) <= names.index(after) for n in want):
            raise LayerError(f"resume needs a layer of this extractor ({names[0]} ... {names[-1]}) above "
                             f"every requested one; got after={after!r}, layers={sorted(want)}")
        return self._walk(scale_grad(x, self.amp_dtype), want, after)

    def _wanted(self, layers: Iterable[str] | None) -> set[str]:
        want = set(self.layers if layers is None else check_layers(layers, self.arch))
        unknown = want - set(self.body._modules)
        if unknown:
            raise LayerError(f"layer(s) {sorted(unknown)} are deeper than this extractor, which "
                             f"stops at {self.layers_in_body[-1]}; build it with those layers")
        return want

    def _walk(self, x: torch.Tensor, want: set[str], after: str | None) -> dict[str, torch.Tensor]:
        """Run the body's layers after ``after`` (all of them for None) on ``x``, up to the last of ``want``."""
        out: dict[str, torch.Tensor] = {}
        first, started = x, after is None
        with autocast(x.device, self.amp_dtype):
            for name, module in self.body.named_children():
                if not started:
                    started = name == after
                    continue
                # a ReLU overwrites the convolution's output unless that is a tap (or the input):
                # one feature map less to allocate and write (its backward needs only its output;
                # a frozen convolution's backward never reads its own output)
                inplace = isinstance(module, nn.ReLU) and "conv" + name[4:] not in want and x is not first
                x = torch.relu_(x) if inplace else module(x)
                if name in want:
                    out[name] = x
                    if len(out) == len(want):
                        break
        return to_fp32(out, self.amp_dtype)

    @property
    def layers_in_body(self) -> list[str]:
        return list(self.body._modules)

    def extra_repr(self) -> str:
        return (f"arch={self.arch}, pooling={self.pooling}, layers={self.layers}, weights={self.weights_source}"
                + (f", winograd={self.winograd_layers}" if self.winograd_layers else ""))

    @property
    def winograd_layers(self) -> list[str]:
        """The convolutions that run by Winograd's algorithm (:mod:`nstlib.winograd`)."""
        return [n for n, m in self.body.named_children() if isinstance(m, WinogradConv2d) and m.plan is not None]


def warn_if_random(ext: VGGFeatures, stacklevel: int = 3) -> None:
    """Warn (once per call site) that results from a random-weights extractor are not meaningful.

    Quiet for an extractor whose banner :func:`nstlib.course.notice` has shown (``ext.announced``): the
    reader has been told once, and a notebook's cells keep to what they teach.
    ``stacklevel`` 3 points at the caller of the function calling this one (add one per decorator)."""
    if not ext.pretrained and not getattr(ext, "announced", False):
        warnings.warn(f"the VGG network has {ext.weights_source} weights: this image shows the "
                      "algorithm running, not a real style transfer", RandomWeightsWarning,
                      stacklevel=stacklevel)
