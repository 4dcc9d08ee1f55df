"""Issue 15: weight files full of NaN/inf (also in the download cache), safetensors files, and
``module.`` key prefixes from ``nn.DataParallel``. Every file is made by the test itself; the
safetensors file is written by hand from the format's description (an 8-byte little-endian header
length, a JSON header with dtype, shape and byte offsets, then the raw little-endian data).
"""
from __future__ import annotations

import json
import struct
import sys
from pathlib import Path

import pytest
import torch

import nstlib
from nstlib import WeightsError
from nstlib.weights import conv_indices, resolve_state_dict


def _state(arch: str = "vgg19", prefix: str = "features.") -> dict[str, torch.Tensor]:
    """A torchvision-format state dict with the right keys for ``arch`` and small distinct tensors."""
    return {f"{prefix}{i}.{p}": torch.full((2,), float(i) + (0.5 if p == "bias" else 0.0))
            for i in conv_indices(arch) for p in ("weight", "bias")}


def _write_safetensors(path: Path, state: dict[str, torch.Tensor]) -> Path:
    header, blobs, offset = {}, [], 0
    for key, t in state.items():
        data = struct.pack(f"<{t.numel()}f", *t.flatten().tolist())
        header[key] = {"dtype": "F32", "shape": list(t.shape), "data_offsets": [offset, offset + len(data)]}
        blobs.append(data)
        offset += len(data)
    head = json.dumps(header).encode()
    path.write_bytes(struct.pack("<Q", len(head)) + head + b"".join(blobs))
    return path


# ---------------------------------------------------------------- NaN / inf
@pytest.mark.parametrize("bad", [float("nan"), float("inf"), -float("inf")])
def test_non_finite_weights_are_refused_from_a_dict_and_a_file(tmp_path, bad):
    state = _state()
    state["features.10.weight"] = torch.tensor([1.0, bad])
    with pytest.raises(WeightsError, match=r"1 NaN or infinite values in '10.weight'"):
        resolve_state_dict("vgg19", state)
    torch.save(state, tmp_path / "w.pth")
    with pytest.raises(WeightsError) as err:
        nstlib.VGGFeatures("vgg19", ["relu1_1"], weights=str(tmp_path / "w.pth"), device="cpu")
    assert "w.pth" in str(err.value) and "NaN or infinite" in str(err.value)


def test_non_finite_weights_in_the_download_cache_say_delete_and_redownload(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    monkeypatch.setattr(torch.hub, "_hub_dir", None)
    monkeypatch.delenv("NSTLIB_WEIGHTS", raising=False)
    monkeypatch.setattr(torch.hub, "download_url_to_file", lambda *a, **k: pytest.fail("re-downloaded"))
    cached = nstlib.weights.cache_path("vgg19")
    cached.parent.mkdir(parents=True)
    state = _state()
    state["features.0.bias"] = torch.tensor([float("nan"), 0.0])
    torch.save(state, cached)
    for offline in ("1", "0"):
        monkeypatch.setenv("NSTLIB_OFFLINE", offline)
        with pytest.raises(WeightsError) as err:
            resolve_state_dict("vgg19", "imagenet")
        msg = str(err.value)
        assert "NaN or infinite" in msg and str(cached) in msg and "delete" in msg, msg


# ---------------------------------------------------------------- safetensors
def test_a_safetensors_file_is_read_not_called_corrupt(tmp_path):
    pytest.importorskip("safetensors")
    state = _state()
    path = _write_safetensors(tmp_path / "vgg19.safetensors", state)
    got, source = resolve_state_dict("vgg19", str(path))
    assert str(path) in source
    assert set(got) == {k[len("features."):] for k in state}
    for key, t in state.items():
        assert torch.equal(got[key[len("features."):]], t)
    bad = _state()
    bad["features.2.weight"] = torch.tensor([float("inf"), 1.0])
    with pytest.raises(WeightsError, match="NaN or infinite"):  # the same checks as a .pth file
        resolve_state_dict("vgg19", str(_write_safetensors(tmp_path / "bad.safetensors", bad)))


def test_without_the_safetensors_package_the_format_and_the_fix_are_named(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "safetensors", None)  # import safetensors -> ImportError
    monkeypatch.setitem(sys.modules, "safetensors.torch", None)
    path = _write_safetensors(tmp_path / "weights.bin", _state())  # the suffix does not matter
    with pytest.raises(WeightsError) as err:
        resolve_state_dict("vgg19", str(path))
    msg = str(err.value)
    assert "safetensors format" in msg and "pip install safetensors" in msg and "corrupt" not in msg, msg
    assert "torch.save(st.load_file(" in msg


def test_a_truncated_safetensors_file_says_so(tmp_path):
    pytest.importorskip("safetensors")
    path = _write_safetensors(tmp_path / "cut.safetensors", _state())
    path.write_bytes(path.read_bytes()[:-20])
    with pytest.raises(WeightsError, match="safetensors file but could not be read"):
        resolve_state_dict("vgg19", str(path))


# ---------------------------------------------------------------- key prefixes
@pytest.mark.parametrize("prefix", ["module.features.", "module."])
def test_a_data_parallel_module_prefix_is_removed(prefix, tmp_path):
    state = _state(prefix=prefix)
    torch.save(state, tmp_path / "dp.pth")
    got, _ = resolve_state_dict("vgg19", str(tmp_path / "dp.pth"))
    assert torch.equal(got["34.bias"], torch.full((2,), 34.5))


def test_another_prefix_is_named_with_the_fix(tmp_path):
    torch.save(_state(prefix="backbone.features."), tmp_path / "wrapped.pth")
    with pytest.raises(WeightsError) as err:
        resolve_state_dict("vgg19", str(tmp_path / "wrapped.pth"))
    msg = str(err.value)
    assert "'backbone.features.0.weight'" in msg and "prefix" in msg and "split('features.'" in msg, msg
