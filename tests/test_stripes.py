"""The synthetic stripe images: shapes, determinism, and that each label's stripes run its way."""

from __future__ import annotations

import pytest
import torch

from llmcourse.data.stripes import ORIENTATIONS, stripe_images


def test_shapes_dtypes_and_balance():
    images, labels = stripe_images(400, size=12, seed=3)
    assert images.shape == (400, 1, 12, 12) and images.dtype == torch.float32
    assert labels.shape == (400,) and labels.dtype == torch.long
    counts = torch.bincount(labels, minlength=len(ORIENTATIONS))
    assert (counts > 70).all(), counts


def test_same_seed_same_images():
    a, la = stripe_images(10, seed=1)
    b, lb = stripe_images(10, seed=1)
    c, _ = stripe_images(10, seed=2)
    assert torch.equal(a, b) and torch.equal(la, lb)
    assert not torch.equal(a, c)


def test_without_noise_the_stripes_are_constant_along_their_direction():
    images, labels = stripe_images(40, size=10, noise=0.0, seed=0)
    for image, label in zip(images[:, 0], labels.tolist(), strict=True):
        name = ORIENTATIONS[label]
        if name == "horizontal":
            torch.testing.assert_close(image, image[:, :1].expand(10, 10))
        elif name == "vertical":
            torch.testing.assert_close(image, image[:1].expand(10, 10))
        elif name == "diagonal":  # pixel (r, c) equals pixel (r + 1, c + 1)
            torch.testing.assert_close(image[1:, 1:], image[:-1, :-1])
        else:  # pixel (r, c) equals pixel (r + 1, c - 1)
            torch.testing.assert_close(image[1:, :-1], image[:-1, 1:])
        assert image.std() > 0.1, "a stripe pattern, not a constant image"


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"n": 0}, "n must be an integer >= 1, got 0"),
        ({"n": 2, "size": 1}, "size must be an integer >= 2, got 1"),
        ({"n": 2, "noise": -1.0}, "noise must be a finite number >= 0, got -1.0"),
    ],
)
def test_validation(kwargs, message):
    with pytest.raises(ValueError, match=message):
        stripe_images(**kwargs)
