"""Six bugs that survived the unit tests (issue 13), each pinned by a test that fails for the bug.

Every expected value here is computed independently of the code under test: hand-worked numbers,
published coefficients, or a second formula written out in this file. The tests use the public
API (``nstlib.optimize``, ``nstlib.stylize``, ``Objective``, ``Result``), not the engine's internals.
"""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

import nstlib
from nstlib.color import rgb_to_yiq, yiq_to_rgb
from nstlib.objective import Objective

pytestmark = pytest.mark.usefixtures("one_thread")


def _gram(f: torch.Tensor) -> torch.Tensor:
    """A second formula for the Gram matrix: sum_k F_ik F_jk / (C H W), by einsum."""
    b, c, h, w = f.shape
    return torch.einsum("bihw,bjhw->bij", f, f) / (c * h * w)


def _mse(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    return ((a - b) ** 2).sum() / a.numel()


# 1. the engine returns the best image, not the last --------------------------------------------

@pytest.mark.parametrize("optimizer", ["adam", "lbfgs"])
def test_optimize_returns_the_best_image_of_a_non_monotone_run(optimizer):
    """The loss dips at the 3rd evaluation and rises after: the result is the image seen then."""
    seen, bonus = [], {3: -10.0}

    def objective(x: torch.Tensor) -> dict:
        seen.append(x.detach().clone())
        # the gradient of mean(x) moves every pixel, so each evaluated image differs from the last
        total = x.mean() + bonus.get(len(seen), 0.0)
        return {"total": total, "content": total.detach(), "style": total.detach() * 0, "tv": total.detach() * 0}

    init = torch.full((1, 3, 4, 4), 0.5)
    res = nstlib.optimize(init, objective, optimizer=optimizer, steps=6, lr=0.01, every=1)
    assert len(seen) == 6
    assert not torch.equal(seen[2], seen[-1])  # the best and the last image differ
    assert res.best_step == 3
    assert torch.equal(res.image, seen[2])
    assert res.losses["total"] == pytest.approx(float(seen[2].mean()) - 10.0, abs=1e-6)


# 2. per-layer style weights reach the objective -------------------------------------------------

STYLE_LAYERS = ["relu1_1", "relu2_1"]


def _style_terms(ext, img, style):
    """The unweighted style loss of each layer, from the second Gram formula."""
    with torch.no_grad():
        fi, fs = ext(img, STYLE_LAYERS), ext(style, STYLE_LAYERS)
        return {n: float(_mse(_gram(fi[n]), _gram(fs[n]))) for n in STYLE_LAYERS}


def test_per_layer_style_weights_reach_the_objective(random_vgg, tiny_content, tiny_style):
    terms = _style_terms(random_vgg, tiny_content, tiny_style)
    assert terms["relu1_1"] != pytest.approx(terms["relu2_1"], rel=0.1)  # the weights are visible
    w = {"relu1_1": 0.25, "relu2_1": 3.0}
    obj = Objective(random_vgg, tiny_content, tiny_style, ["relu4_2"], STYLE_LAYERS, 1.0, 1.0, 0.0,
                    style_layer_weights=w)
    with torch.no_grad():
        got = float(obj(tiny_content)["style"])
    assert got == pytest.approx(0.25 * terms["relu1_1"] + 3.0 * terms["relu2_1"], rel=1e-4)


def test_stylize_passes_per_layer_style_weights_to_the_objective(random_vgg, tiny_content, tiny_style):
    """From init="content" the first step's style term is that of the content image."""
    terms = _style_terms(random_vgg, tiny_content, nstlib.example("starry_night", size=32, device="cpu"))
    res = nstlib.stylize(tiny_content, "starry_night", extractor=random_vgg, size=32, steps=1,
                         content_layers=["relu2_1"], style_layers=STYLE_LAYERS,
                         style_layer_weights={"relu1_1": 0.0, "relu2_1": 2.0}, tv_weight=0.0)
    assert res.history[0]["style"] == pytest.approx(2.0 * terms["relu2_1"], rel=1e-4)


# 3. blend weights are normalized ----------------------------------------------------------------

def test_blend_weights_are_normalized(random_vgg, tiny_content, tiny_style):
    other = torch.flip(tiny_style, dims=[-1]).roll(5, dims=-2) * 0.7
    styles = [tiny_style, other]
    with torch.no_grad():
        fi = random_vgg(tiny_content, STYLE_LAYERS)
        a = [random_vgg(s, STYLE_LAYERS) for s in styles]

    def want(b1: float, b2: float) -> float:  # target A = b1 A(s1) + b2 A(s2), b already normalized
        return sum(float(_mse(_gram(fi[n]), b1 * _gram(a[0][n]) + b2 * _gram(a[1][n]))) for n in STYLE_LAYERS)

    def got(blend) -> float:
        obj = Objective(random_vgg, tiny_content, styles, ["relu4_2"], STYLE_LAYERS, 1.0, 1.0, 0.0,
                        style_blend=blend)
        with torch.no_grad():
            return float(obj(tiny_content)["style"])

    even = got([1, 1])
    assert even == pytest.approx(want(0.5, 0.5), rel=1e-4)
    assert got([2, 2]) == pytest.approx(even, rel=1e-6) and got([0.5, 0.5]) == pytest.approx(even, rel=1e-6)
    assert got(None) == pytest.approx(even, rel=1e-6)
    assert want(2, 2) != pytest.approx(even, rel=0.01)  # unnormalized weights would show
    assert got([3, 1]) == pytest.approx(want(0.75, 0.25), rel=1e-4)


# 4. coarse-to-fine stages are chained -----------------------------------------------------------

def test_each_coarse_to_fine_stage_starts_from_the_last_stages_result(random_vgg, tiny_content):
    kw = dict(extractor=random_vgg, content_layers=["relu2_1"], style_layers=["relu1_1", "relu2_1"],
              init="noise", seed=3, optimizer="adam", lr=0.05)
    seen = []
    res = nstlib.stylize(tiny_content, "starry_night", scales=[16, 32], steps=[4, 2], every=1,
                         callback=lambda step, img, losses: seen.append((step, img.clone())), **kw)
    assert [s for s, _ in seen] == [1, 2, 3, 4, 5, 6]
    first = nstlib.stylize(tiny_content, "starry_night", size=16, steps=4, **kw)  # stage 1 alone
    assert torch.allclose(seen[3][1], first.snapshots[-1][1])  # same stage 1 (deterministic on CPU)
    start2 = seen[4][1]  # the image stage 2 evaluates first
    assert start2.shape[-2:] == res.image.shape[-2:] and start2.shape[-1] == 32
    up = F.interpolate(first.image, size=tuple(start2.shape[-2:]), mode="bilinear", align_corners=False)
    fresh = torch.rand(start2.shape, generator=torch.Generator().manual_seed(3))  # an unchained start
    dist = lambda a, b: float((a - b).abs().mean())  # noqa: E731
    # any reasonable upsampling (bilinear, bicubic, antialiased) is within 0.05; a fresh start is ~0.3 away
    assert dist(start2, up) < 0.05 < dist(start2, fresh)
    assert dist(start2, up) < 0.05 < dist(start2, nstlib.resize(tiny_content, (16, 32)))


# 5. YIQ against the published coefficients ------------------------------------------------------

# FCC NTSC (47 CFR 73.682; e.g. Wikipedia "YIQ"): Y = 0.299 R + 0.587 G + 0.114 B,
# I = 0.5959 R - 0.2746 G - 0.3213 B, Q = 0.2115 R - 0.5227 G + 0.3112 B. Written out per colour.
PUBLISHED_YIQ = {
    (1.0, 0.0, 0.0): (0.299, 0.5959, 0.2115),
    (0.0, 1.0, 0.0): (0.587, -0.2746, -0.5227),
    (0.0, 0.0, 1.0): (0.114, -0.3213, 0.3112),
    (1.0, 1.0, 1.0): (1.0, 0.0, 0.0),
    # 0.299*0.5 + 0.587*0.25 + 0.114; 0.29795 - 0.06865 - 0.3213; 0.10575 - 0.130675 + 0.3112
    (0.5, 0.25, 1.0): (0.41025, -0.092, 0.286275),
}


def test_rgb_to_yiq_uses_the_published_ntsc_coefficients():
    rgb = torch.tensor(list(PUBLISHED_YIQ), dtype=torch.float32).T.reshape(1, 3, 1, -1)
    want = torch.tensor(list(PUBLISHED_YIQ.values()), dtype=torch.float32).T.reshape(1, 3, 1, -1)
    got = rgb_to_yiq(rgb)
    assert torch.allclose(got, want, atol=2e-4), (got - want).abs().max()
    assert torch.allclose(yiq_to_rgb(want), rgb, atol=1e-3)  # the inverse takes published YIQ back
    # the published inverse (rounded to 3 decimals): R = Y + 0.956 I + 0.619 Q, B = Y - 1.106 I + 1.703 Q
    y, i, q = want[:, 0], want[:, 1], want[:, 2]
    back = yiq_to_rgb(want)
    assert torch.allclose(back[:, 0], y + 0.956 * i + 0.619 * q, atol=5e-3)
    assert torch.allclose(back[:, 2], y - 1.106 * i + 1.703 * q, atol=5e-3)
    assert torch.allclose(nstlib.color.luminance(rgb), want[:, :1], atol=2e-4)


# 6. the masked Gram matrix is divided by C * sum(m) ---------------------------------------------

def test_masked_gram_of_a_half_mask_by_hand():
    # C = 2 channels at 2 positions: F = [[1, 2], [3, 4]]; the mask keeps position 0 only
    f = torch.tensor([[1.0, 2.0], [3.0, 4.0]]).reshape(1, 2, 1, 2)
    half = torch.tensor([1.0, 0.0]).reshape(1, 1, 1, 2)
    # sum_k m_k F_ik F_jk = [[1, 3], [3, 9]]; C * sum(m) = 2 * 1
    want = torch.tensor([[[0.5, 1.5], [1.5, 4.5]]])
    assert torch.allclose(nstlib.masked_gram_matrix(f, half), want)
    # a soft mask of 0.5 everywhere: [[5, 11], [11, 25]] * 0.5 / (2 * 1) = the plain Gram matrix
    soft = torch.full((1, 1, 1, 2), 0.5)
    assert torch.allclose(nstlib.masked_gram_matrix(f, soft), torch.tensor([[[1.25, 2.75], [2.75, 6.25]]]))
    # an empty mask gives zeros, not NaN
    assert torch.equal(nstlib.masked_gram_matrix(f, torch.zeros(1, 1, 1, 2)), torch.zeros(1, 2, 2))


def test_masked_gram_of_a_region_does_not_shrink_with_its_area():
    """A texture repeated inside a half mask has the same masked Gram matrix as the whole texture."""
    g = torch.Generator().manual_seed(1)
    tile = torch.rand(1, 3, 4, 4, generator=g)
    f = torch.cat([tile, torch.rand(1, 3, 4, 4, generator=g) * 9], dim=-1)  # [1, 3, 4, 8]: left is the tile
    left = torch.cat([torch.ones(1, 1, 4, 4), torch.zeros(1, 1, 4, 4)], dim=-1)
    assert torch.allclose(nstlib.masked_gram_matrix(f, left), _gram(tile), atol=1e-6)
