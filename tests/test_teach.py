"""Issue 17: the banner says "random weights" once; the gallery batch; the new exercise checks."""
from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch

import nstlib
import nstlib.course.checks
from nstlib.gallery import gallery


pytestmark = pytest.mark.usefixtures("one_thread")
LAYERS = ["relu1_1", "relu2_1"]


def _random_ext():
    return nstlib.VGGFeatures("vgg19", LAYERS, weights=None, device="cpu", seed=0)


def _run(ext, tiny_content):
    nstlib.stylize(tiny_content, tiny_content, extractor=ext, steps=1, size=32,
                   content_layers=["relu2_1"], style_layers=["relu1_1"])
    nstlib.sweep(tiny_content, tiny_content, style_weights=[1e3, 1e4], extractor=ext, steps=1, size=32,
                 content_layers=["relu2_1"], style_layers=["relu1_1"])


def test_unannounced_random_extractor_still_warns(tiny_content):
    ext = _random_ext()
    assert ext.announced is False
    with pytest.warns(nstlib.RandomWeightsWarning) as record:
        _run(ext, tiny_content)
    assert sum(issubclass(r.category, nstlib.RandomWeightsWarning) for r in record) == 2  # stylize and sweep


def test_notice_says_it_once(tiny_content, capsys):
    ext = _random_ext()
    assert nstlib.course.notice(ext) is True
    assert "RANDOM WEIGHTS" in capsys.readouterr().out  # the banner (printed outside IPython)
    assert ext.announced is True
    with warnings.catch_warnings():
        warnings.simplefilter("error", nstlib.RandomWeightsWarning)  # any repeat would raise
        _run(ext, tiny_content)


def test_notice_is_silent_and_marks_nothing_for_pretrained(capsys):
    class Pretrained:
        pretrained, weights_source, announced = True, "imagenet", False
    ext = Pretrained()
    assert nstlib.course.notice(ext) is False and ext.announced is False
    assert capsys.readouterr().out == ""


def test_notice_of_several_extractors_shows_one_banner(capsys):
    a, b = _random_ext(), _random_ext()
    assert nstlib.course.notice(a, b) is True
    assert capsys.readouterr().out.count("RANDOM WEIGHTS") == 1
    assert a.announced and b.announced


def test_gallery_gives_each_image_its_own_style(random_vgg, tiny_content, tiny_style):
    """Image b of the batch is the single run with style b (Adam: per-pixel, separable)."""
    random_vgg.announced = False
    texture = nstlib.example("brick", 32, device="cpu")
    kw = dict(content_layers=["relu4_2"], style_layers=["relu1_1", "relu2_1"], optimizer="adam", steps=3, size=32)
    with pytest.warns(nstlib.RandomWeightsWarning):
        batch = gallery(tiny_content, [tiny_style, texture], extractor=random_vgg, **kw)
    assert batch.image.shape[0] == 2
    for b, style in enumerate([tiny_style, texture]):
        alone = nstlib.stylize(tiny_content, style, extractor=random_vgg, tv_weight=nstlib.transfer.TV_WEIGHT, **kw)
        # float rounding differs between a batch and a single image (oneDNN's first convolutions),
        # and Adam's first steps amplify it to ~1e-4; a style mixed up would move pixels by ~lr = 0.068
        assert torch.allclose(batch.image[b:b + 1], alone.image, atol=1e-3), b
    assert not torch.allclose(batch.image[0], batch.image[1])  # two styles, two images
    with pytest.raises(ValueError, match="at least one style"):
        gallery(tiny_content, [], extractor=random_vgg)


def test_per_image_styles_need_one_style_per_image(random_vgg, tiny_content, tiny_style):
    """Objective(style_per_image=True): style b for image b only; a count that does not match is refused."""
    layers = ["relu1_1", "relu2_1"]
    with pytest.raises(ValueError, match="one style image per image of the batch"):
        nstlib.Objective(random_vgg, tiny_content, [tiny_style], [], layers, [1.0] * 2, [1.0] * 2, [0.0] * 2,
                         style_per_image=True)
    texture = nstlib.example("brick", 32, device="cpu")
    both = nstlib.Objective(random_vgg, None, [tiny_style, texture], [], layers, [0.0] * 2, [1.0] * 2, [0.0] * 2,
                            style_per_image=True)
    x = torch.rand(2, 3, 16, 32, generator=torch.Generator().manual_seed(0))
    per_image = both(x)["per_image"]
    for b, style in enumerate([tiny_style, texture]):  # the second formula: one objective per image
        alone = nstlib.Objective(random_vgg, None, style, [], layers, 0.0, 1.0, 0.0)
        assert torch.allclose(per_image[b], alone(x[b:b + 1])["total"], rtol=1e-5), b


def _mean_std(features, targets):
    total = 0.0
    for n, t in targets.items():
        f, s = features[n].flatten(2), t.flatten(2)
        total = total + ((f.mean(2) - s.mean(2)) ** 2).mean() + (
            (f.std(2, unbiased=False) - s.std(2, unbiased=False)) ** 2).mean()
    return total


def test_mean_std_check_passes_a_right_answer_and_fails_wrong_ones(capsys):
    assert nstlib.course.checks.check_mean_std_loss(_mean_std) is True
    unbiased = lambda f, t: sum(((f[n].flatten(2).mean(2) - t[n].flatten(2).mean(2)) ** 2).mean()  # noqa: E731
                                + ((f[n].flatten(2).std(2) - t[n].flatten(2).std(2)) ** 2).mean() for n in t)
    assert nstlib.course.checks.check_mean_std_loss(unbiased) is False
    assert "unbiased=False" in capsys.readouterr().out
    summed = lambda f, t: 2 * _mean_std(f, t)  # noqa: E731
    assert nstlib.course.checks.check_mean_std_loss(summed) is False
    detached = lambda f, t: torch.tensor(float(_mean_std(f, t)))  # noqa: E731
    assert nstlib.course.checks.check_mean_std_loss(detached) is False
    assert "no gradient" in capsys.readouterr().out


def test_mean_std_reference_by_hand():
    """The reference itself, on a case worked by hand: means 1 vs 3, stds 0 vs 1 -> 4 + 1 = 5."""
    x = torch.ones(1, 1, 2, 2)
    y = torch.tensor([2.0, 4.0, 2.0, 4.0]).view(1, 1, 2, 2)
    assert nstlib.course.checks.distribution.mean_std_reference({"a": x}, {"a": y}) == pytest.approx(5.0)


def _convert(ratio, layer_weights, channels, content_size):
    return {n: w * channels[n] ** 2 / (2 * ratio * content_size) for n, w in layer_weights.items()}


def test_paper_to_nstlib_check():
    assert nstlib.course.checks.check_paper_to_nstlib(_convert) is True
    # forgetting the layer-dependent 4/N_l^2, or the content layer's size, must fail
    assert nstlib.course.checks.check_paper_to_nstlib(lambda r, w, c, s: {n: v / r for n, v in w.items()}) is False
    assert nstlib.course.checks.check_paper_to_nstlib(
        lambda r, w, c, s: {n: v * c[n] ** 2 / (2 * r) for n, v in w.items()}) is False


def test_style_term_is_four_over_n_squared_of_the_papers():
    """nstlib's per-layer style term = 4 / N_l^2 x the paper's E_l (hand formula in NumPy)."""
    g = torch.Generator().manual_seed(0)
    f, s = torch.rand(1, 6, 5, 4, generator=g), torch.rand(1, 6, 5, 4, generator=g)
    ours = nstlib.style_loss({"l": f}, {"l": nstlib.gram_matrix(s)}).item()
    F, S = f[0].reshape(6, -1).double().numpy(), s[0].reshape(6, -1).double().numpy()
    paper = np.sum((F @ F.T - S @ S.T) ** 2) / (4 * 6 ** 2 * 20 ** 2)
    assert ours == pytest.approx(4 / 6 ** 2 * paper, rel=1e-5)


@pytest.mark.parametrize("question", sorted(nstlib.course.checks.predictions.QUESTIONS))
def test_each_prediction_question_has_one_right_letter(question, capsys):
    letters, answer, _ = nstlib.course.checks.predictions.QUESTIONS[question]
    assert answer in letters
    assert nstlib.course.checks.check_prediction(question, answer.lower()) is True
    assert all(nstlib.course.checks.check_prediction(question, x) is False for x in letters if x != answer)
    assert nstlib.course.checks.check_prediction(question, "Z") is False
    assert nstlib.course.checks.check_prediction(question, lambda: answer) is True
    def unanswered():
        raise NotImplementedError
    assert nstlib.course.checks.check_prediction(question, unanswered) is False
    assert "not implemented yet" in capsys.readouterr().out
    with pytest.raises(ValueError, match="unknown question"):
        nstlib.course.checks.check_prediction("no_such_question", "A")
