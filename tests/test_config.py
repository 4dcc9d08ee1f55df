"""Run-time settings: quick mode, the CPU-friendly setting, device defaults."""
from __future__ import annotations

import pytest
import torch

from nstlib import config
from nstlib.course import quick


@pytest.mark.parametrize("quick_mode, device, expected", [
    (True, "cpu", "quick"), (True, "cuda", "quick"),
    (False, "cpu", "cpu"), (False, "cuda", "normal"), (False, "mps", "normal"),
])
def test_pick_chooses_by_mode_and_device(monkeypatch, quick_mode, device, expected):
    monkeypatch.setattr(quick, "QUICK", quick_mode)
    monkeypatch.setattr(quick, "default_device", lambda: torch.device(device))
    assert quick.pick("normal", quick="quick", cpu="cpu") == expected
    # without a CPU-friendly value, a CPU gets the normal one
    assert quick.pick("normal", quick="quick") == ("quick" if quick_mode else "normal")


@pytest.mark.parametrize("quick_mode, device, side", [(True, "cuda", 512), (True, "cpu", 256), (False, "cpu", 256),
                                                 (False, "cuda", 512), (False, "mps", 512)])
def test_default_size(monkeypatch, quick_mode, device, side):
    """The library's default never depends on quick mode (the course uses pick(..., quick=64))."""
    monkeypatch.setattr(quick, "QUICK", quick_mode)
    assert config.default_size(device) == side


def test_flags_accept_the_usual_spellings(monkeypatch):
    for value, on in [("1", True), ("true", True), ("YES", True), ("on", True), ("0", False), ("", False)]:
        monkeypatch.setenv("NSTLIB_OFFLINE", value)
        assert config.offline() is on
