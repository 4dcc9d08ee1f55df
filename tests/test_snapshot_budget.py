"""Issue 19: a long run of a large image cannot fill the memory with snapshots: past
nstlib.engine.SNAPSHOT_BUDGET bytes every other snapshot is dropped, the first and the latest kept."""
from __future__ import annotations

import torch

import nstlib
from nstlib import engine


def test_thin_halves_until_the_snapshots_fit(monkeypatch):
    one = torch.zeros(1, 3, 4, 4)  # 192 bytes
    monkeypatch.setattr(engine, "SNAPSHOT_BUDGET", 5 * one.numel() * 4)
    snaps = [(s, one) for s in range(1, 10)]  # 9 snapshots: 1728 bytes
    engine.thin(snaps)
    assert [s for s, _ in snaps] == [1, 3, 5, 7, 9]  # 1728 bytes -> 960 = the budget: one halving
    monkeypatch.setattr(engine, "SNAPSHOT_BUDGET", 3 * one.numel() * 4)
    engine.thin(snaps)
    assert [s for s, _ in snaps] == [1, 5, 9]  # 960 -> 576 bytes: a second halving
    big = [(1, torch.zeros(1, 3, 64, 64)), (2, torch.zeros(1, 3, 64, 64))]
    engine.thin(big)
    assert [s for s, _ in big] == [1, 2]  # never below the first and the latest


def test_a_long_run_keeps_its_snapshots_within_the_budget(monkeypatch):
    x0 = torch.rand(1, 3, 8, 8, generator=torch.Generator().manual_seed(0))
    per = x0.numel() * 4
    monkeypatch.setattr(engine, "SNAPSHOT_BUDGET", 4 * per)
    seen = []
    res = nstlib.optimize(x0, lambda x: {"total": ((x - 0.5) ** 2).sum()}, optimizer="adam", steps=20, every=1,
                          callback=lambda step, img, losses: seen.append(step))
    assert seen == list(range(1, 21))  # the callback still sees every step
    assert len(res.snapshots) <= 4 and res.snapshots[0][0] == 1 and res.snapshots[-1][0] == 20
