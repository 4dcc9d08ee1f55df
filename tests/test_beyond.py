"""Notebook 06's options: colour preservation, blended styles, style scale, masks, and their CLI."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

import nstlib
from nstlib.cli import _styles, build_parser, main
from nstlib.color import color_stats, luminance, match_color, rgb_to_yiq, yiq_to_rgb
from nstlib.losses import gram_matrix
from nstlib.masks import load_mask, masked_gram_matrix, masked_style_loss
from nstlib.objective import Objective
from nstlib.styles import prepare_inputs, target_grams

LAYERS = ["relu1_1", "relu2_1", "relu3_1"]
SMALL = dict(content_layers=["relu2_1"], style_layers=LAYERS, size=32, steps=4, device="cpu")


@pytest.fixture(scope="module")
def ext():
    return nstlib.VGGFeatures("vgg19", LAYERS, weights="random", device="cpu")


@pytest.fixture(scope="module")
def content():
    return nstlib.example("chelsea_cat", size=32, device="cpu")


@pytest.fixture(scope="module")
def style():
    return nstlib.example("starry_night", size=32, device="cpu")


def chroma(img):
    return rgb_to_yiq(img)[:, 1:]


# --- colour ---------------------------------------------------------------------------------------

def test_yiq_round_trip_and_luminance_weights():
    img = torch.rand(1, 3, 5, 7, generator=torch.Generator().manual_seed(0))
    assert torch.allclose(yiq_to_rgb(rgb_to_yiq(img)), img, atol=1e-6)
    red = torch.tensor([1.0, 0, 0]).view(1, 3, 1, 1)
    assert luminance(red).item() == pytest.approx(0.299)


def test_luminance_mode_keeps_the_content_chroma(ext, content, style):
    lum = nstlib.stylize(content, style, extractor=ext, preserve_color="luminance", init="noise", **SMALL)
    plain = nstlib.stylize(content, style, extractor=ext, init="noise", **SMALL)
    def same_chroma(img):  # equal up to float error, except a few out-of-gamut pixels clamped to [0, 1]
        diff = (chroma(img) - chroma(content)).abs()
        return (diff < 1e-5).float().mean() > 0.9 and diff.mean() < 1e-3

    assert same_chroma(lum.image) and all(same_chroma(img) for _, img in lum.snapshots)
    assert not same_chroma(plain.image)  # without it, the chroma moves
    assert (chroma(plain.image) - chroma(content)).abs().mean() > 0.01
    assert (luminance(lum.image) - luminance(content)).abs().mean() > 0.01  # the luminance was stylized
    assert lum.params["preserve_color"] == "luminance"


def test_luminance_mode_optimizes_grey_images(ext, content, style):
    target, styles, _, _ = prepare_inputs(content, style, preserve_color="luminance")
    for img in [target] + styles:
        assert torch.allclose(img[:, 0], img[:, 1]) and torch.allclose(img[:, 1], img[:, 2])
    # the style's luminance has the content's mean (the paper's luminance matching)
    assert luminance(styles[0]).mean().item() == pytest.approx(luminance(content).mean().item(), abs=0.02)


def test_histogram_matching_gives_the_style_the_content_colour_statistics(content, style):
    mu_c, cov_c = color_stats(content)
    mu_s, cov_s = color_stats(match_color(style, content, clamp=False))
    assert torch.allclose(mu_s, mu_c, atol=1e-5) and torch.allclose(cov_s, cov_c, atol=1e-4)
    assert not torch.allclose(color_stats(style)[0], mu_c, atol=0.02)  # they differed before
    _, styles, _, _ = prepare_inputs(content, style, preserve_color="histogram")
    mu_p, cov_p = color_stats(styles[0])
    assert (mu_p - mu_c).abs().max() < 0.02 and (cov_p - cov_c).abs().max() < 0.01  # clamped to [0, 1]
    assert styles[0].min() >= 0 and styles[0].max() <= 1


def test_preserve_color_is_validated(ext, content, style):
    with pytest.raises(ValueError, match="'luminance', 'histogram'"):
        nstlib.stylize(content, style, extractor=ext, preserve_color="yiq", **SMALL)


# --- several styles ---------------------------------------------------------------------------------

def test_blend_one_zero_reproduces_the_single_style_objective_exactly(ext, content, style):
    other = nstlib.example("great_wave", size=32, device="cpu")
    args = (ext, content)
    rest = (["relu2_1"], LAYERS, 1.0, 1e4, 10.0)
    single = Objective(*args, style, *rest)
    blended = Objective(*args, [style, other], *rest, style_blend=[1, 0])
    x = torch.rand_like(content)
    assert all(torch.equal(single.style_grams[n], blended.style_grams[n]) for n in LAYERS)
    assert all(torch.equal(single(x)[k], blended(x)[k]) for k in ("total", "style", "content"))
    half = Objective(*args, [style, other], *rest, style_blend=[0.5, 0.5])
    assert not torch.allclose(half(x)["style"], single(x)["style"])
    g_other = target_grams(ext, [other], LAYERS)
    expected = {n: 0.5 * single.style_grams[n] + 0.5 * g_other[n] for n in LAYERS}
    assert all(torch.allclose(half.style_grams[n], expected[n]) for n in LAYERS)


def test_blend_weights_are_validated(ext, content, style):
    with pytest.raises(ValueError, match="1 weight"):
        nstlib.stylize(content, [style, style], style_blend=[1], extractor=ext, **SMALL)
    with pytest.raises(ValueError, match=">= 0"):
        nstlib.stylize(content, [style, style], style_blend=[1, -1], extractor=ext, **SMALL)


# --- style scale ------------------------------------------------------------------------------------

def test_style_scale_changes_the_target_grams_as_a_resize_would(ext, content):
    full = nstlib.example("starry_night", size=100, device="cpu")
    for scale, side in [(0.5, 16), (2.0, 64)]:
        _, styles, _, _ = prepare_inputs(content, full, style_scale=scale)
        assert max(styles[0].shape[-2:]) == side
        expected = {n: gram_matrix(f) for n, f in ext(nstlib.resize(full, side), LAYERS).items()}
        got = Objective(ext, content, styles[0], ["relu2_1"], LAYERS, 1.0, 1e4, 0.0).style_grams
        assert all(torch.allclose(got[n], expected[n], atol=1e-6) for n in LAYERS)
    one = target_grams(ext, prepare_inputs(content, full)[1], LAYERS)
    assert not torch.allclose(one["relu1_1"], got["relu1_1"])


def test_style_scale_is_validated(ext, content, style):
    with pytest.raises(ValueError, match="positive"):
        nstlib.stylize(content, style, style_scale=0, extractor=ext, **SMALL)
    with pytest.raises(ValueError, match="style_scale"):
        nstlib.stylize(content, style, style_scale=0.05, extractor=ext, **SMALL)


# --- masks ------------------------------------------------------------------------------------------

def test_masked_gram_of_an_all_ones_mask_is_the_gram_matrix():
    f = torch.rand(1, 8, 6, 5, generator=torch.Generator().manual_seed(1))
    assert torch.allclose(masked_gram_matrix(f, torch.ones(1, 1, 6, 5)), gram_matrix(f), rtol=1e-6)


def test_masked_style_loss_ignores_features_outside_the_mask():
    g = torch.Generator().manual_seed(2)
    feats = {"a": torch.rand(1, 4, 8, 8, generator=g), "b": torch.rand(1, 6, 4, 4, generator=g)}
    targets = {n: gram_matrix(torch.rand(f.shape, generator=g)) for n, f in feats.items()}
    mask = torch.zeros(1, 1, 8, 8)
    mask[..., :4] = 1  # left half: still whole cells at the 4x4 layer
    before = masked_style_loss(feats, targets, mask)
    outside = {n: f.clone() for n, f in feats.items()}
    for f in outside.values():
        f[..., f.shape[-1] // 2:] = torch.rand(f[..., f.shape[-1] // 2:].shape, generator=g) * 5
    assert torch.equal(masked_style_loss(outside, targets, mask), before)
    inside = {n: f.clone() for n, f in feats.items()}
    inside["a"][..., 0] += 1
    assert not torch.allclose(masked_style_loss(inside, targets, mask), before)


def test_masked_objective_ignores_pixels_outside_the_mask_beyond_the_receptive_field(ext, style):
    x = torch.rand(1, 3, 32, 32, generator=torch.Generator().manual_seed(3))
    mask = torch.zeros(1, 1, 32, 32)
    mask[..., :16] = 1
    obj = Objective(ext, None, style, [], ["relu1_1"], 0.0, 1.0, 0.0, mask=mask)
    y = x.clone()
    y[..., 18:] = 1 - y[..., 18:]  # relu1_1 sees 3x3 pixels: columns >= 17 never reach the mask
    assert torch.allclose(obj(y)["style"], obj(x)["style"], rtol=1e-6)
    plain = Objective(ext, None, style, [], ["relu1_1"], 0.0, 1.0, 0.0)
    assert not torch.allclose(plain(y)["style"], plain(x)["style"], rtol=1e-3)


def test_second_style_outside_the_mask(ext, content, style):
    other = nstlib.example("great_wave", size=32, device="cpu")
    mask = torch.zeros(1, 1, *content.shape[-2:])
    mask[..., : content.shape[-1] // 2] = 1
    inside = Objective(ext, content, style, ["relu2_1"], LAYERS, 0.0, 1.0, 0.0, mask=mask)
    both = Objective(ext, content, style, ["relu2_1"], LAYERS, 0.0, 1.0, 0.0, mask=mask, style_outside=other)
    x = torch.rand_like(content)
    extra = masked_style_loss(ext(x, LAYERS), target_grams(ext, [other], LAYERS), 1 - mask)
    assert torch.allclose(both(x)["style"], inside(x)["style"] + extra)


def test_bad_masks_raise_image_errors_naming_the_mask(ext, content, style, tmp_path):
    with pytest.raises(nstlib.ImageError, match="selects no pixel"):
        load_mask(torch.zeros(32, 32), (32, 32))
    with pytest.raises(nstlib.ImageError, match="no_such_mask.png"):
        nstlib.stylize(content, style, mask=str(tmp_path / "no_such_mask.png"), extractor=ext, **SMALL)
    with pytest.raises(nstlib.ImageError, match="aspect"):
        load_mask(torch.ones(10, 40), (32, 32))
    with pytest.raises(ValueError, match="mask"):
        nstlib.stylize(content, style, style_outside=style, extractor=ext, **SMALL)


def test_masked_stylize_runs(ext, content, style):
    mask = torch.zeros(*content.shape[-2:], dtype=torch.bool)
    mask[:, : content.shape[-1] // 2] = True
    r = nstlib.stylize(content, style, mask=mask, style_outside="great_wave", extractor=ext, **SMALL)
    assert r.image.shape == content.shape and r.params["mask"] is True and len(r.history) == SMALL["steps"]


# --- CLI --------------------------------------------------------------------------------------------

def test_cli_parses_the_new_options():
    args = build_parser().parse_args(["cat", "a,b", "--style", "c", "--style-blend", "0.5,0.3,0.2",
                                      "--style-scale", "0.5", "--preserve-color", "luminance",
                                      "--mask", "m.png", "--style-outside", "d"])
    assert _styles(args) == ["a", "b", "c"]
    assert args.style_blend == [0.5, 0.3, 0.2] and args.style_scale == 0.5
    assert (args.preserve_color, args.mask, args.style_outside) == ("luminance", "m.png", "d")
    assert _styles(build_parser().parse_args(["cat", "--style", "a", "--style", "b"])) == ["a", "b"]
    with pytest.raises(SystemExit):
        build_parser().parse_args(["cat", "a", "--preserve-color", "yiq"])


def test_cli_runs_on_a_tiny_image(tmp_path, capsys):
    content = tmp_path / "content.png"
    Image.fromarray((np.random.default_rng(0).random((20, 32, 3)) * 255).astype(np.uint8)).save(content)
    mask = tmp_path / "mask.png"
    m = np.zeros((20, 32), np.uint8)
    m[:, :16] = 255
    Image.fromarray(m).save(mask)
    common = [str(content), "--size", "48", "--steps", "2", "--weights", "random", "--device", "cpu",
              "--quiet"]
    out = tmp_path / "out.png"
    code = main(common + ["starry_night,great_wave", "--style-blend", "0.7,0.3", "--style-scale", "0.5",
                          "--preserve-color", "luminance", "--mask", str(mask), "--style-outside",
                          "the_harvest", "-o", str(out)])
    assert code == 0 and out.exists()
    assert main(common + ["--style", "starry_night", "--preserve-color", "histogram",
                          "-o", str(tmp_path / "h.png")]) == 0
    assert main(common + ["starry_night", "--style-outside", "great_wave"]) == 1
    assert "mask" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(common)  # no style at all


def test_file_names_encode_the_options_that_differ_from_the_defaults(ext, content, style):
    from nstlib.transfer import option_tags
    plain = nstlib.stylize("chelsea_cat", "starry_night", extractor=ext, **{**SMALL, "steps": 1})
    assert plain.name == "chelsea_cat+starry_night_lbfgs_cw1_sw1e4_tv44_s32.jpg"  # defaults: no tags
    mask = torch.zeros(1, 1, *content.shape[-2:])
    mask[..., :16] = 1
    both = nstlib.stylize("chelsea_cat", ["starry_night", "great_wave"], extractor=ext, style_blend=[0.7, 0.3],
                          preserve_color="histogram", style_scale=0.5, mask=mask, **{**SMALL, "steps": 1})
    assert both.name == "chelsea_cat+starry_night+great_wave_lbfgs_cw1_sw1e4_tv44_s32_hist_blend0.7-0.3_ss0.5_mask.jpg"
    assert option_tags(dict(arch="vgg16", pooling="avg", preserve_color="luminance")) == ["vgg16", "avg", "lum"]


# --- Playground -------------------------------------------------------------------------------------

def test_playground_exposes_preserve_color_and_style_scale(tmp_path):
    from nstlib.playground.app import CONTENT_CHOICES, STYLE_CHOICES, Playground
    full = nstlib.VGGFeatures(layers=list(CONTENT_CHOICES + STYLE_CHOICES), weights="random", device="cpu")
    pg = Playground("chelsea_cat", "starry_night", steps=2, size=32, extractor=full, weights="random",
                    results_dir=tmp_path)
    assert pg.params["preserve_color"] is None and pg.params["style_scale"] == 1.0  # old behaviour
    pg.preserve_color.value, pg.style_scale.value = "luminance", 1.5
    res = pg.run(wait=True)
    assert res.params["preserve_color"] == "luminance" and res.params["style_scale"] == 1.5
    content = nstlib.example("chelsea_cat", size=32, device="cpu")
    assert (chroma(res.image) - chroma(content)).abs().mean() < 1e-3
    assert res.name.endswith("_s32_lum_ss1.5.jpg")  # the saved file says which options made it


def test_shape_masks_cover_the_named_region():
    from nstlib.masks import MASK_SHAPES, shape_mask
    assert shape_mask("none", 4, 6) is None
    left = shape_mask("left half", 4, 6)
    assert left.shape == (1, 1, 4, 6) and left[..., :3].eq(1).all() and left[..., 3:].eq(0).all()
    assert torch.equal(shape_mask("right half", 4, 6), 1 - left)
    assert shape_mask("top half", 4, 6)[..., :2, :].eq(1).all() and shape_mask("bottom half", 4, 6)[..., :2, :].eq(0).all()
    centre = shape_mask("centre", 40, 40)
    assert centre[0, 0, 20, 20] == 1 and centre[0, 0, 0, 0] == 0 and 0.15 < centre.mean() < 0.25  # pi/16
    assert set(MASK_SHAPES) >= {"none", "centre"}
    with pytest.raises(ValueError, match="left half"):
        shape_mask("star", 4, 4)


def test_playground_exposes_network_second_style_and_mask(tmp_path):
    from nstlib.playground.app import CONTENT_CHOICES, STYLE_CHOICES, Playground
    full = nstlib.VGGFeatures(layers=list(CONTENT_CHOICES + STYLE_CHOICES), weights="random", device="cpu")
    pg = Playground("chelsea_cat", "starry_night", steps=2, size=32, extractor=full, weights="random",
                    results_dir=tmp_path)
    assert pg.arch == "vgg19" and pg.params["style2"] is None and pg.params["mask_shape"] == "none"
    pg.beyond.style2.value, pg.beyond.blend.value = "great_wave", 0.7
    res = pg.run(wait=True)
    assert res.params["style_blend"] == pytest.approx([0.7, 0.3]) and not res.params["mask"]
    assert res.name.startswith("chelsea_cat+starry_night+great_wave_") and "_blend0.7-0.3" in res.name

    pg.beyond.mode.value, pg.beyond.mask.value = "outside the mask", "left half"
    res = pg.run(wait=True)
    assert res.params["mask"] and res.params["style_blend"] == [1.0] and res.name.endswith("_mask.jpg")

    pg.beyond.mask.value = "none"  # a second style outside needs a mask: said in the UI, not lost
    with pytest.raises(ValueError, match="mask"):
        pg.run(wait=True)
    assert "pick a shape under" in pg.status.value and pg.result is res

    pg.beyond.style2.value, pg.beyond.arch.value = "none", "vgg16"
    res = pg.run(wait=True)
    assert res.params["arch"] == "vgg16" and "_vgg16" in res.name and "vgg16" in pg.run_info.value
