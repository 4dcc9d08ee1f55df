"""Issue 18: the CLI goes coarse to fine by default from 512 px with L-BFGS (0.45 x the single-scale
time to the same loss at 512 px, docs/benchmarks.md); --scales 1 opts out; Adam and small sizes stay
single-scale; an explicit schedule is kept as given."""
from __future__ import annotations

import pytest

from nstlib.cli import build_parser, build_spec


def spec(*argv: str):
    args = build_parser().parse_args(["tower_bridge", "starry_night", "--device", "cpu", *argv])
    return build_spec(args, [args.style])


@pytest.mark.parametrize("argv, scales, steps", [
    (("--size", "512"), 4, (120, 80, 15, 300)),           # the measured schedule before the default steps
    (("--size", "1024", "--steps", "50"), 4, (120, 80, 15, 50)),
    (("--size", "511"), None, None),                       # below the threshold: one size
    (("--size", "512", "--optimizer", "adam"), None, None),
    (("--size", "512", "--scales", "1"), 1, None),         # opting out
    (("--size", "512", "--scales", "3", "--steps", "10,20,30"), 3, (10, 20, 30)),
])
def test_default_scales_from_512_px(argv, scales, steps):
    s = spec(*argv)
    assert s.scales == scales and s.steps == steps
    assert s.size == int(argv[1])
