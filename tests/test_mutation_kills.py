"""Tests written to kill the mutants that survived ``python tools/mutation.py`` (see docs/testing.md).

Each one pins a behaviour the other unit tests left open; the expected values are worked by hand.
"""
from __future__ import annotations

import pytest
import torch

from nstlib.losses import content_loss, gram_matrix, style_loss, tv_loss

pytestmark = pytest.mark.usefixtures("one_thread")


# ---------------------------------------------------------------- losses: reduction="none"
def test_reduction_none_gives_each_images_own_mean_by_hand():
    # image 0 differs from the target by 1 everywhere, image 1 by 3: per-image MSE 1 and 9
    target = torch.zeros(1, 2, 2, 2)
    feats = torch.cat([torch.ones(1, 2, 2, 2), torch.full((1, 2, 2, 2), 3.0)])
    assert content_loss(feats, target, reduction="none").tolist() == [1.0, 9.0]
    assert content_loss(feats, target).item() == 5.0  # the mean over both
    # TV per image: a ramp 0, 1 along the width (mean |dw| = 1, dh = 0) and a constant image
    img = torch.zeros(2, 1, 2, 2)
    img[0, :, :, 1] = 1.0
    assert tv_loss(img, reduction="none").tolist() == [0.5, 0.0]
    # style per image: F = [1, 1] (one channel, two positions) has G = 1; F = [3, 3] has G = 9
    f = torch.tensor([1.0, 1.0, 3.0, 3.0]).reshape(2, 1, 1, 2)
    got = style_loss({"x": f}, {"x": torch.zeros(1, 1, 1)}, reduction="none")
    assert got.shape == (2,) and got.tolist() == [1.0, 81.0]


def test_an_unknown_reduction_names_the_valid_ones():
    with pytest.raises(ValueError, match=r"unknown reduction 'sum'; choose one of 'mean', 'none'"):
        content_loss(torch.zeros(1, 1, 2, 2), torch.zeros(1, 1, 2, 2), reduction="sum")


def test_content_loss_accepts_a_shared_or_per_image_target_only():
    feats = torch.ones(3, 2, 2, 2)
    assert content_loss(feats, torch.zeros(1, 2, 2, 2)).item() == 1.0  # one target shared by 3 images
    assert content_loss(feats, torch.zeros(3, 2, 2, 2)).item() == 1.0  # one target per image
    with pytest.raises(ValueError, match="differ"):
        content_loss(feats, torch.zeros(2, 2, 2, 2))  # neither
    with pytest.raises(ValueError, match="differ"):
        content_loss(torch.ones(2, 3, 2, 2), torch.zeros(3, 3, 2, 2))  # batch 3 for 2 images (3 = C)


def test_style_loss_without_layers_says_so():
    with pytest.raises(ValueError, match=r"^style_loss: target_grams is empty; give at least one style layer$"):
        style_loss({"x": torch.ones(1, 1, 2, 2)}, {})
    with pytest.raises(KeyError, match="no features for layer 'y'"):
        style_loss({"x": torch.ones(1, 1, 2, 2)}, {"y": torch.zeros(1, 1, 1)})


def test_gram_matrix_of_channels_last_features_by_hand():
    f = torch.tensor([[1.0, 2.0], [3.0, 4.0]]).reshape(1, 2, 1, 2).contiguous(memory_format=torch.channels_last)
    assert torch.allclose(gram_matrix(f), torch.tensor([[[5.0, 11.0], [11.0, 25.0]]]) / 4)
