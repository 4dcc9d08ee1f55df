"""Tiling as an option of the run (issue 19): the Transfer fields ``tile``, ``max_memory``,
``checkpoint``, ``lbfgs_history``, the CLI flags, ``stylize(tile=...)`` against the untiled run,
which coarse-to-fine stages are tiled, and the L-BFGS history of tiled stages.

The exactness of the tiled objective itself is tests/test_tiling.py's; here the reference is the
untiled :func:`nstlib.stylize` of the same inputs (seeded random VGG19, tiny images).
"""
from __future__ import annotations

import dataclasses

import pytest
import torch

import nstlib
import nstlib.stage
from nstlib import cli
from nstlib.spec import LBFGS_HISTORY, TILED_LBFGS_HISTORY, Transfer
from nstlib.tiling import TiledObjective

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def random_vgg(direct_vgg):
    """The exactness of tiling is a property of the decomposition: measured with the direct
    convolutions (see ``direct_vgg``); tiling with Winograd's is tested in tests/test_winograd.py."""
    return direct_vgg

SHAPE = (100, 140)  # 2 x 3 tiles of 48 px (the 4 px left in the last row join the one above)


@pytest.fixture(scope="module")
def images():
    return (nstlib.example("tower_bridge", size=SHAPE, device="cpu"),
            nstlib.example("starry_night", size=(90, 120), device="cpu"))


@pytest.fixture()
def stages(monkeypatch):
    """Record each stage's optimization: (image shape, tiled?, L-BFGS history)."""
    seen = []
    real = nstlib.stage.optimize

    def spy(x0, objective, **kw):
        seen.append((tuple(x0.shape[-2:]), isinstance(objective, TiledObjective), kw["lbfgs_history"]))
        return real(x0, objective, **kw)
    monkeypatch.setattr(nstlib.stage, "optimize", spy)
    return seen


def _rel(a: float, b: float) -> float:
    return abs(a - b) / max(abs(b), 1e-12)  # the content loss is 0 at step 1 (the content init)


# ---------------------------------------------------------------- the spec's fields
@pytest.mark.parametrize("kw, words", [
    (dict(tile=0), ["tile", "'auto'", "512"]), (dict(tile=8), ["tile", "at least 16"]),
    (dict(tile="big"), ["tile", "'auto'"]), (dict(tile=True), ["tile"]), (dict(tile=64.0), ["tile"]),
    (dict(tile="auto", max_memory="3 parsecs"), ["max_memory", "'3GB'"]),
    (dict(tile="auto", max_memory=0), ["max_memory", "positive"]),
    (dict(tile="auto", max_memory=float("inf")), ["max_memory"]),
    (dict(max_memory="3GB"), ["max_memory", "tile='auto'"]),
    (dict(tile=512, max_memory="3GB"), ["max_memory", "tile='auto'"]),
    (dict(checkpoint=1), ["checkpoint", "True or False"]), (dict(checkpoint="yes"), ["checkpoint"]),
    (dict(lbfgs_history=0), ["lbfgs_history", "positive whole number"]), (dict(lbfgs_history=2.5), ["lbfgs_history"]),
    (dict(tile=64, mask=torch.ones(8, 8)), ["tile", "mask", "untiled"]),
])
def test_bad_large_image_options_are_refused_naming_the_parameter(kw, words):
    with pytest.raises(ValueError) as e:
        Transfer("tower_bridge", "starry_night", **kw)
    for w in words:
        assert w in str(e.value), (w, str(e.value))


@pytest.mark.parametrize("given, bytes_", [("3GB", 3 * 10**9), ("512 MB", 512 * 10**6), ("1.5GiB", 3 * 2**29),
                                           ("2g", 2 * 10**9), ("100kib", 102400), (123456, 123456),
                                           (2.5e9, 2_500_000_000)])
def test_max_memory_sizes_are_read_in_bytes(given, bytes_):
    spec = Transfer("tower_bridge", "starry_night", tile="auto", max_memory=given)
    assert spec.max_memory == bytes_ and isinstance(spec.max_memory, int)


def test_the_fields_default_to_untiled_and_keep_their_values():
    plain = Transfer("tower_bridge", "starry_night")
    assert (plain.tile, plain.max_memory, plain.checkpoint, plain.lbfgs_history) == (None, None, False, None)
    spec = dataclasses.replace(plain, tile=256, checkpoint=True, lbfgs_history=7)
    assert (spec.tile, spec.checkpoint, spec.lbfgs_history) == (256, True, 7)


def test_the_history_rule():
    spec = Transfer("tower_bridge", "starry_night")
    assert (spec.history_size(tiled=False), spec.history_size(tiled=True)) == (100, 10)
    assert (LBFGS_HISTORY, TILED_LBFGS_HISTORY) == (100, 10)
    own = dataclasses.replace(spec, lbfgs_history=7)
    assert (own.history_size(tiled=False), own.history_size(tiled=True)) == (7, 7)


def test_optimize_hands_the_history_to_torchs_lbfgs(monkeypatch, tiny_content):
    sizes = []

    class Spy(torch.optim.LBFGS):
        def __init__(self, *a, **kw):
            sizes.append(kw["history_size"])
            super().__init__(*a, **kw)
    monkeypatch.setattr(torch.optim, "LBFGS", Spy)
    objective = lambda x: {"total": ((x - 0.5) ** 2).sum()}  # noqa: E731
    nstlib.optimize(tiny_content, objective, steps=2, lbfgs_history=3)
    nstlib.optimize(tiny_content, objective, steps=2)
    assert sizes == [3, 100]


# ---------------------------------------------------------------- the run: the same result, tiled
def test_stylize_tiled_equals_untiled(random_vgg, images, stages):
    content, style = images
    kw = dict(extractor=random_vgg, size=SHAPE, steps=4, lbfgs_history=LBFGS_HISTORY)
    plain = nstlib.stylize(content, style, **kw)
    tiled = nstlib.stylize(content, style, tile=48, **kw)
    assert stages == [(SHAPE, False, 100), (SHAPE, True, 100)]
    assert tiled.params["stage_tile"] == [48, 48] and plain.params["stage_tile"] is None
    assert tiled.spec.tile == 48
    first, ref = tiled.history[0], plain.history[0]  # the same image: every term equal
    assert all(abs(first[t] - ref[t]) <= 1e-4 * abs(ref[t]) for t in ("total", "content", "style", "tv"))
    # later steps start from images that differ by float rounding (amplified by L-BFGS): the totals agree
    assert [_rel(a["total"], b["total"]) for a, b in zip(tiled.history, plain.history, strict=True)] == \
        pytest.approx([0.0] * 4, abs=1e-4)
    assert float((tiled.image - plain.image).abs().max()) < 1e-2


def test_checkpointed_and_tiled_checkpointed_runs_equal_the_plain_one(random_vgg, images):
    content, style = images
    kw = dict(extractor=random_vgg, size=SHAPE, steps=2)
    ref = nstlib.stylize(content, style, **kw).history
    for extra in (dict(checkpoint=True), dict(checkpoint=True, tile=48)):
        got = nstlib.stylize(content, style, **kw, **extra).history
        assert [_rel(a["total"], b["total"]) for a, b in zip(got, ref, strict=True)] == pytest.approx([0, 0], abs=1e-4)


def test_checkpoint_recomputes_the_forward_pass_in_the_backward(random_vgg, images):
    # torch.utils.checkpoint runs a segment again when its backward needs what it saved: relu1_1
    # (its backward reads its output) runs more often with checkpoint=True, untiled and tiled
    content, style = images
    calls = []
    hook = random_vgg.body.relu1_1.register_forward_hook(lambda *a: calls.append(1))
    try:
        counts = {}
        for kw in (dict(), dict(checkpoint=True), dict(tile=48), dict(tile=48, checkpoint=True)):
            calls.clear()
            nstlib.stylize(content, style, extractor=random_vgg, size=SHAPE, steps=2, **kw)
            counts[tuple(kw.items())] = len(calls)
    finally:
        hook.remove()
    plain, ck, tiled, tiled_ck = counts.values()
    assert ck > plain and tiled_ck > tiled, counts


def test_live_weights_act_on_a_tiled_stage(random_vgg, images):
    content, style = images
    kw = dict(extractor=random_vgg, size=SHAPE, steps=3, every=1,
              controls=lambda step: {"style_weight": 1e5} if step >= 2 else None)
    plain = nstlib.stylize(content, style, **kw).history
    tiled = nstlib.stylize(content, style, tile=48, **kw).history
    assert [h["style_weight"] for h in tiled] == [1e4, 1e5, 1e5]
    assert all(_rel(a["total"], b["total"]) <= 1e-4 for a, b in zip(tiled, plain, strict=True))
    obj = TiledObjective(random_vgg, content, None, ["relu4_2"], [], 1.0, 0.0, 0.0, tile=48)
    with pytest.raises(ValueError, match="weight 0"):
        obj.set_weights(style_weight=1.0)


# ---------------------------------------------------------------- coarse to fine: which stages are tiled
def test_coarse_to_fine_tiles_only_the_stages_larger_than_one_tile(random_vgg, images, stages):
    content, style = images
    res = nstlib.stylize(content, style, extractor=random_vgg, size=96, scales=(48, 96), steps=1, tile=48)
    assert stages == [((34, 48), False, LBFGS_HISTORY), ((69, 96), True, TILED_LBFGS_HISTORY)]
    assert res.params["stage_tile"] == [48, 48] and res.params["lbfgs_history"] == TILED_LBFGS_HISTORY


def test_auto_tiles_fit_max_memory(random_vgg, images, stages):
    # relu5_1: crop (48 + 2 x 80)^2 px x 2952 bytes = 127.7 MB -> 48 px cores for 128 MB; 96 px for 200 MB
    content, style = images
    nstlib.stylize(content, style, extractor=random_vgg, size=SHAPE, steps=1, tile="auto", max_memory="128MB")
    nstlib.stylize(content, style, extractor=random_vgg, size=SHAPE, steps=1, tile="auto", max_memory="1GB")
    assert stages == [(SHAPE, True, TILED_LBFGS_HISTORY), (SHAPE, False, LBFGS_HISTORY)]


def test_a_single_stage_that_fits_one_tile_runs_untiled(random_vgg, images, stages):
    content, style = images
    res = nstlib.stylize(content, style, extractor=random_vgg, size=SHAPE, steps=1, tile=144)
    assert stages == [(SHAPE, False, LBFGS_HISTORY)] and res.params["stage_tile"] is None


# ---------------------------------------------------------------- the CLI
def test_cli_flags_reach_the_run(tmp_path, monkeypatch, stages):
    seen = {}
    real = nstlib.transfer.run

    def spy(spec, **kw):
        seen.update({f: getattr(spec, f) for f in ("tile", "max_memory", "checkpoint", "lbfgs_history")})
        return real(spec, **kw)
    monkeypatch.setattr(nstlib.transfer, "run", spy)
    out = tmp_path / "o.png"
    assert cli.main(["tower_bridge", "starry_night", "-o", str(out), "--size", "48", "--steps", "1", "--tile",
                     "16", "--checkpoint", "--lbfgs-history", "3", "--weights", "random", "--quiet"]) == 0
    assert seen == dict(tile=16, max_memory=None, checkpoint=True, lbfgs_history=3) and out.is_file()
    assert stages == [((24, 48), True, 3)]  # tower_bridge at 48 px: 24 x 48 px, 16 px cores
    assert cli.main(["tower_bridge", "starry_night", "--tile", "auto", "--max-memory", "2GB", "--show"]) == 0
    assert seen["lbfgs_history"] == 3  # --show does not run
    parsed = cli.build_spec(cli.build_parser().parse_args(["a", "b", "--tile", "auto", "--max-memory", "2GB"]), ["b"])
    assert (parsed.tile, parsed.max_memory, parsed.checkpoint) == ("auto", 2 * 10**9, False)


@pytest.mark.parametrize("argv, code", [(["--tile", "big"], 2), (["--tile", "8"], 1), (["--max-memory", "1GB"], 1),
                                        (["--tile", "auto", "--max-memory", "lots"], 1), (["--lbfgs-history", "0"], 1)])
def test_cli_refuses_bad_large_image_flags(argv, code, capsys):
    try:
        got = cli.main(["tower_bridge", "starry_night", "--weights", "random", "--quiet", "--show"] + argv)
    except SystemExit as e:
        got = e.code
    err = capsys.readouterr().err
    assert got == code and "Traceback" not in err and err.strip(), err


# ---------------------------------------------------------------- the playground
def test_the_playground_tiles_control_reaches_the_spec(tmp_path):
    from nstlib.playground.app import CONTENT_CHOICES, STYLE_CHOICES, Playground
    full = nstlib.VGGFeatures(layers=list(CONTENT_CHOICES + STYLE_CHOICES), weights="random", device="cpu")
    pg = Playground("chelsea_cat", "starry_night", steps=1, size=32, extractor=full, weights="random",
                    results_dir=tmp_path)
    assert pg.params["tile"] is None and pg.spec().tile is None
    pg.beyond.tile.value = "auto"
    assert pg.spec().tile == "auto"
    pg.beyond.tile.value = "256"
    assert pg.spec().tile == 256
    res = pg.run(wait=True)  # 32 px fits one tile: untiled, the same values
    assert res.spec.tile == 256 and res.params["stage_tile"] is None and "tiles 256 px" in pg.run_info.value
