"""Where the VGG weights come from: torchvision's ImageNet download, a local file, or seeded random.

Every file is read with ``torch.load(..., weights_only=True)``: a weight file can carry
tensors, never code. Downloads go through ``torch.hub`` exactly as torchvision does it
(same URL, same cache folder, same SHA-256 prefix check), so a file fetched once by
torchvision is found here, and the other way round.
"""
from __future__ import annotations

import os
import pickle
import re
import sys
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Union

import torch

from .config import offline
from .errors import WeightsError, WeightsUnavailableError

__all__ = ["WeightsSpec", "RandomWeightsWarning", "resolve_state_dict", "imagenet_url",
           "cache_path", "conv_indices", "weights_env", "download_size_mb", "announce_download"]

WeightsSpec = Union[str, Path, Mapping[str, torch.Tensor], None]

#: Convolutions per block (VGG paper, configurations D and E).
BLOCKS = {"vgg16": (2, 2, 3, 3, 3), "vgg19": (2, 2, 4, 4, 4)}


class RandomWeightsWarning(UserWarning):
    """The network has random weights: its images show the algorithm running, not style transfer."""


def conv_indices(arch: str) -> list[int]:
    """Indices of the convolutions in torchvision's ``vgg.features`` (ReLU after each, pools between)."""
    idx, i = [], 0
    for n in BLOCKS[arch]:
        for _ in range(n):
            idx.append(i)
            i += 2
        i += 1
    return idx


def imagenet_url(arch: str) -> str:
    """The URL torchvision downloads ``VGG19_Weights.IMAGENET1K_V1`` (or VGG16's) from."""
    from torchvision.models import VGG16_Weights, VGG19_Weights
    enum = {"vgg19": VGG19_Weights, "vgg16": VGG16_Weights}[arch]
    return enum.IMAGENET1K_V1.url


def weights_env(arch: str) -> tuple[str, str | None]:
    """The environment variable naming a local ImageNet weight file for ``arch``, and its value.

    One variable per network, so a VGG19 file never reaches VGG16: ``NSTLIB_WEIGHTS_VGG16`` for
    VGG16; ``NSTLIB_WEIGHTS_VGG19`` or (the name the course has always used) ``NSTLIB_WEIGHTS``
    for VGG19. Returns ``(name, value)``; ``value`` is None when the variable is unset or empty.
    """
    names = {"vgg19": ("NSTLIB_WEIGHTS_VGG19", "NSTLIB_WEIGHTS"), "vgg16": ("NSTLIB_WEIGHTS_VGG16",)}[arch]
    for name in names:
        if os.environ.get(name, "").strip():
            return name, os.environ[name].strip()
    return names[-1] if arch == "vgg19" else names[0], None


def download_size_mb(arch: str) -> float:
    """The size of torchvision's ImageNet weight file for ``arch`` in MB (torchvision's metadata)."""
    from torchvision.models import VGG16_Weights, VGG19_Weights
    enum = {"vgg19": VGG19_Weights, "vgg16": VGG16_Weights}[arch]
    return float(enum.IMAGENET1K_V1.meta.get("_file_size", {"vgg19": 548.051, "vgg16": 527.796}[arch]))


def announce_download(arch: str) -> str:
    """Say, before a download starts, what is fetched, how big it is and where it goes (stderr)."""
    env, _ = weights_env(arch)
    text = (f"nstlib: downloading the pretrained {arch.upper()} weights, {download_size_mb(arch):.0f} MB, once, "
            f"from {imagenet_url(arch)} to {cache_path(arch)} (or set {env}=/path/to/a/copy)")
    print(text, file=sys.stderr, flush=True)
    return text


def cache_path(arch: str) -> Path:
    """Where torchvision caches the ImageNet weights: ``$TORCH_HOME/hub/checkpoints/<file>``."""
    url = imagenet_url(arch)
    return Path(torch.hub.get_dir()) / "checkpoints" / os.path.basename(url)


def _fetch_help(arch: str) -> str:
    url, dest = imagenet_url(arch), cache_path(arch)
    return (f"On a machine with internet, download {url} and copy it to {dest} (or anywhere, "
            f"then set {weights_env(arch)[0]}=/path/to/{os.path.basename(url)} or pass weights='/path/to/file'). "
            "To run anyway with random weights (images not meaningful), set NSTLIB_OFFLINE=1.")


def resolve_state_dict(arch: str, weights: WeightsSpec) -> tuple[dict[str, torch.Tensor] | None, str]:
    """Turn a ``weights=`` argument into a ``features`` state dict (keys ``"0.weight"``, ...).

    Returns:
        ``(state, source)``: ``state`` is None for random weights; ``source`` describes where
        the weights came from (shown to the user).

    Raises:
        WeightsError: a file is missing, corrupt, carries code, or belongs to another arch.
        WeightsUnavailableError: ``"imagenet"`` cannot be had and ``NSTLIB_OFFLINE`` is not set.
    """
    if weights is None or (isinstance(weights, str) and weights == "random"):
        return None, "random"
    if isinstance(weights, Mapping):
        return check_state(dict(weights), arch, "the given state dict"), "state dict"
    if isinstance(weights, str) and weights == "imagenet":
        name, env = weights_env(arch)
        if env:
            path = Path(env).expanduser()
            if not path.is_file():
                raise WeightsError(f"{name} names {str(path)!r}, which is not a file; "
                                   "fix the path or unset the variable")
            return load_file(path, arch), f"file {path} ({name})"
        return _imagenet(arch)
    if isinstance(weights, (str, Path)):
        path = Path(weights).expanduser()
        if not path.is_file():
            raise WeightsError(f"weights={str(weights)!r} is neither 'imagenet', 'random' nor an "
                               "existing file; pass a path to a .pth state dict")
        return load_file(path, arch), f"file {path}"
    raise WeightsError(f"weights={weights!r} is not understood; use 'imagenet', 'random', None, "
                       "a file path or a state dict")


def _imagenet(arch: str) -> tuple[dict[str, torch.Tensor] | None, str]:
    dest = cache_path(arch)
    if not dest.is_file():
        url = imagenet_url(arch)
        hash_prefix = re.search(r"-([a-f0-9]*)\.", os.path.basename(url))
        try:
            dest.parent.mkdir(parents=True, exist_ok=True)
            announce_download(arch)
            torch.hub.download_url_to_file(url, str(dest),
                                           hash_prefix.group(1) if hash_prefix else None,
                                           progress=True)
        except Exception as e:  # URLError, timeouts, SSL, a hash mismatch (RuntimeError)
            if offline():
                warnings.warn(
                    f"\n{'!' * 72}\n  NSTLIB_OFFLINE=1: the pretrained {arch.upper()} weights are not "
                    f"available ({type(e).__name__}),\n  so nstlib uses SEEDED RANDOM weights. "
                    "The code runs the real algorithm,\n  but the images it makes are NOT "
                    f"meaningful style transfers.\n{'!' * 72}", RandomWeightsWarning, stacklevel=4)
                return None, "offline fallback"
            raise WeightsUnavailableError(
                f"could not download the pretrained {arch} weights ({type(e).__name__}: {e}). "
                + _fetch_help(arch)) from None
    try:
        return load_file(dest, arch), f"imagenet ({dest})"
    except WeightsError as e:
        raise WeightsError(f"{e}. The cached download may be partial or damaged: delete {dest} "
                           "and run again to re-download it") from None


def load_file(path: Path, arch: str) -> dict[str, torch.Tensor]:
    """Read a torchvision-format VGG state dict safely and check it (:func:`check_state`).

    A ``torch.save`` file is read with ``weights_only=True``; a safetensors file (which holds
    tensors only, by design) with the ``safetensors`` package."""
    name = str(path)
    if is_safetensors(path):
        return check_state(_read_safetensors(path), arch, f"weight file {name!r}")
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        if not any(k in str(e) for k in ("GLOBAL", "global", "reduce")):  # no refused object: damaged data
            raise WeightsError(f"weight file {name!r} is corrupt or not a PyTorch file ({e!s:.120}); "
                               "delete it and re-download it") from None
        raise WeightsError(f"refusing to load {name!r}: it contains Python objects or code, not just "
                           f"tensors, and nstlib never runs code from a weight file. Use a plain state "
                           "dict saved with torch.save(model.state_dict(), path)") from None
    except MemoryError:
        raise WeightsError(f"weight file {name!r} is too large to load into memory") from None
    except Exception as e:  # torch.load on damaged data: RuntimeError, EOFError, KeyError, struct.error, ...
        raise WeightsError(f"weight file {name!r} is corrupt or not a PyTorch file "
                           f"({type(e).__name__}: {str(e)[:120]}); delete it and re-download it") from None
    if isinstance(obj, Mapping) and "state_dict" in obj and isinstance(obj["state_dict"], Mapping):
        obj = obj["state_dict"]
    if not isinstance(obj, Mapping) or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise WeightsError(f"weight file {name!r} does not hold a state dict of tensors; save one "
                           "with torch.save(model.state_dict(), path)")
    return check_state(dict(obj), arch, f"weight file {name!r}")


def is_safetensors(path: Path) -> bool:
    """Whether ``path`` starts like a safetensors file: an 8-byte little-endian header length,
    then the JSON header's ``{``."""
    try:
        with open(path, "rb") as f:
            head = f.read(9)
        size = path.stat().st_size
    except OSError:
        return False
    return len(head) == 9 and head[8:9] == b"{" and 2 <= int.from_bytes(head[:8], "little") <= size - 8


def _read_safetensors(path: Path) -> dict[str, torch.Tensor]:
    name = str(path)
    try:
        from safetensors.torch import load_file as read
    except ImportError:
        raise WeightsError(
            f"weight file {name!r} is in the safetensors format, and the package that reads it is "
            "not installed: pip install safetensors (nstlib then reads the file as it is), or "
            "convert it once on a machine that has it: python -c \"import torch, safetensors.torch as st; "
            f"torch.save(st.load_file('{name}'), '{path.with_suffix('.pth')}')\"") from None
    try:
        return dict(read(name, device="cpu"))
    except MemoryError:
        raise WeightsError(f"weight file {name!r} is too large to load into memory") from None
    except Exception as e:  # a truncated or damaged safetensors file
        raise WeightsError(f"weight file {name!r} looks like a safetensors file but could not be read "
                           f"({type(e).__name__}: {str(e)[:120]}); delete it and re-download it") from None


def check_state(state: dict[str, torch.Tensor], arch: str, name: str) -> dict[str, torch.Tensor]:
    """The ``features`` part of a VGG state dict, checked: keys (``0.weight``, ...; a
    ``module.`` prefix from ``nn.DataParallel`` is removed), architecture, and finite values.

    Raises:
        WeightsError: keys missing, another architecture, or NaN/inf in a tensor (``name`` says where).
    """
    if state and all(k.startswith("module.") for k in state):  # saved from nn.DataParallel
        state = {k[len("module."):]: v for k, v in state.items()}
    state = _features_only(state, arch, name)
    for key in sorted(state, key=lambda k: int(k.split(".")[0])):
        value = state[key]
        if value.is_floating_point() and not bool(torch.isfinite(value).all()):
            bad = int((~torch.isfinite(value)).sum())
            raise WeightsError(f"{name} holds {bad} NaN or infinite values in {key!r}: the file is "
                               "damaged or was saved from a diverged training run; re-download it")
    return state


def _features_only(state: dict[str, torch.Tensor], arch: str, name: str) -> dict[str, torch.Tensor]:
    """Keep the ``features.*`` part (whole-model or features-only files) and check it fits ``arch``."""
    if any(k.startswith("features.") for k in state):
        state = {k[len("features."):]: v for k, v in state.items() if k.startswith("features.")}
    expected = {f"{i}.{p}" for i in conv_indices(arch) for p in ("weight", "bias")}
    found = {k for k in state if k.endswith((".weight", ".bias"))}
    for other, blocks in BLOCKS.items():
        if other != arch and found == {f"{i}.{p}" for i in conv_indices(other) for p in ("weight", "bias")}:
            raise WeightsError(f"{name} holds {other} weights ({sum(blocks)} conv layers) but "
                               f"arch={arch!r} was asked for; pass arch={other!r} or a {arch} file")
    missing = sorted(expected - found, key=lambda k: int(k.split(".")[0]))
    if missing:
        inside = [k for k in state if ".features." in k]
        hint = (f"; its keys carry a prefix ({inside[0]!r}): keep only the VGG part, e.g. "
                "{k.split('features.', 1)[1]: v for k, v in state.items() if 'features.' in k}"
                if inside else f"; its keys look like {', '.join(repr(k) for k in list(state)[:3])}" if state else "")
        raise WeightsError(f"{name} is not a torchvision {arch} state dict: missing "
                           f"{', '.join(missing[:4])}{' ...' if len(missing) > 4 else ''}{hint}")
    return {k: state[k] for k in expected}
