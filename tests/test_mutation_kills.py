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


# ---------------------------------------------------------------- masks: the named shapes, pixel by pixel
def test_shape_masks_by_hand_on_odd_sizes():
    from nstlib.masks import shape_mask
    # 3 x 5: pixel centres at x = 0.1, 0.3, 0.5, 0.7, 0.9 and y = 1/6, 1/2, 5/6; "x < 0.5" is left
    left, right = shape_mask("left half", 3, 5)[0, 0], shape_mask("right half", 3, 5)[0, 0]
    assert left[0].tolist() == [1, 1, 0, 0, 0] and right[0].tolist() == [0, 0, 1, 1, 1]
    assert torch.equal(left + right, torch.ones(3, 5))  # a partition: the middle column once
    top, bottom = shape_mask("top half", 3, 5)[0, 0], shape_mask("bottom half", 3, 5)[0, 0]
    assert top[:, 0].tolist() == [1, 0, 0] and bottom[:, 0].tolist() == [0, 1, 1]
    # 4 rows: centres 1/8, 3/8, 5/8, 7/8 -> rows 0, 1 on top
    assert shape_mask("top half", 4, 2)[0, 0, :, 0].tolist() == [1, 1, 0, 0]
    # the centre ellipse on 8 x 8: ((x - 0.5) / 0.25)^2 + ((y - 0.5) / 0.25)^2 <= 1 with pixel offsets
    # (x - 0.5) / 0.25 = +-0.25, +-0.75, +-1.25, +-1.75: inside when the squares sum to <= 1, i.e.
    # rows 3-4 x columns 2-5 and rows 2, 5 x columns 3-4 (0.5625 + 0.5625 > 1 leaves the corners out)
    c = shape_mask("centre", 8, 8)[0, 0]
    want = torch.zeros(8, 8)
    want[3:5, 2:6] = 1
    want[2:6, 3:5] = 1
    assert torch.equal(c, want) and int(c.sum()) == 12 and c.dtype == torch.float32
    assert shape_mask("none", 3, 5) is None


def test_an_unknown_mask_shape_lists_the_shapes():
    from nstlib.masks import shape_mask
    with pytest.raises(ValueError, match=r"unknown mask shape 'round'; choose one of 'none', 'left half', "
                                         r"'right half', 'top half', 'bottom half', 'centre'$"):
        shape_mask("round", 4, 4)
