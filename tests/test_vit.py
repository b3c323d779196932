"""Patches and the patch embedding, against ``F.unfold`` and ``nn.Conv2d`` with copied weights."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from llmcourse.models import PatchEmbedding, ViT, patchify, unpatchify

DTYPE = torch.float64


def test_patchify_small_example():
    image = torch.arange(16.0).reshape(1, 1, 4, 4)
    # rows 0-1 / columns 0-1 first, then columns 2-3, then the lower half
    expected = [[0, 1, 4, 5], [2, 3, 6, 7], [8, 9, 12, 13], [10, 11, 14, 15]]
    assert patchify(image, 2).tolist() == [[[float(x) for x in row] for row in expected]]


def test_channels_come_first_within_a_patch():
    image = torch.stack([torch.zeros(2, 2), torch.ones(2, 2)]).unsqueeze(0)  # (1, 2, 2, 2)
    assert patchify(image, 2).tolist() == [[[0.0] * 4 + [1.0] * 4]]


@settings(max_examples=40, deadline=None)
@given(
    seed=st.integers(0, 2**31 - 1),
    batch=st.integers(1, 3),
    channels=st.integers(1, 4),
    rows=st.integers(1, 4),
    cols=st.integers(1, 4),
    p=st.integers(1, 4),
)
def test_patchify_matches_unfold_and_round_trips(seed, batch, channels, rows, cols, p):
    g = torch.Generator().manual_seed(seed)
    images = torch.randn(batch, channels, rows * p, cols * p, generator=g, dtype=DTYPE)
    patches = patchify(images, p)
    assert patches.shape == (batch, rows * cols, channels * p * p)
    expected = F.unfold(images, kernel_size=p, stride=p).transpose(1, 2)
    assert torch.equal(patches, expected)
    assert torch.equal(unpatchify(patches, p, rows * p, cols * p), images)


def test_patch_embedding_projection_is_a_strided_convolution():
    torch.manual_seed(0)
    embed = PatchEmbedding((8, 12), patch_size=4, in_channels=3, d_model=5).to(DTYPE)
    conv = nn.Conv2d(3, 5, kernel_size=4, stride=4).to(DTYPE)
    with torch.no_grad():
        conv.weight.copy_(embed.proj.weight.reshape(5, 3, 4, 4))
        conv.bias.copy_(embed.proj.bias)
    images = torch.randn(2, 3, 8, 12, dtype=DTYPE)
    tokens = embed(images)
    assert tokens.shape == (2, 1 + 6, 5)
    from_conv = conv(images).flatten(2).transpose(1, 2)  # (batch, 6, 5) in row-major order
    torch.testing.assert_close(tokens[:, 1:], from_conv + embed.position[:, 1:])


def test_class_token_and_positions():
    torch.manual_seed(0)
    embed = PatchEmbedding(4, patch_size=2, in_channels=1, d_model=3)
    tokens = embed(torch.randn(3, 1, 4, 4))
    expected_cls = (embed.cls_token + embed.position[:, :1]).expand(3, 1, 3)
    torch.testing.assert_close(tokens[:, :1], expected_cls)  # the same for every image
    assert embed.n_patches == 4 and embed.position.shape == (1, 5, 3)
    n_params = sum(p.numel() for p in embed.parameters())
    assert n_params == (4 * 3 + 3) + 3 + 5 * 3  # projection (P^2 C) x D + bias, cls, positions


def test_gradients_reach_every_parameter():
    embed = PatchEmbedding(4, patch_size=2, in_channels=2, d_model=3)
    embed(torch.randn(2, 2, 4, 4)).sum().backward()
    for name, p in embed.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, name


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: patchify(torch.zeros(1, 1, 4, 6), 4), r"\(4 x 6\) must be a multiple of"),
        (lambda: patchify(torch.zeros(1, 4, 4), 2), r"images must be \(batch, channels"),
        (lambda: patchify(torch.zeros(1, 1, 4, 4), 0), "patch_size must be an integer >= 1"),
        (lambda: unpatchify(torch.zeros(1, 3, 4), 2, 4, 4), r"patches must be \(batch, 4"),
        (lambda: PatchEmbedding(6, 4, 3, 8), "must be a multiple of patch_size"),
        (lambda: PatchEmbedding(8, 4, 3, 0), "d_model must be an integer >= 1, got 0"),
        (lambda: PatchEmbedding(8, 4, 3, 5)(torch.zeros(1, 1, 8, 8)), r"\(batch, 3, 8, 8\)"),
    ],
)
def test_validation(call, message):
    with pytest.raises(ValueError, match=message):
        call()


def test_vit_reads_the_class_token_through_the_blocks():
    torch.manual_seed(0)
    model = ViT(8, 4, 2, n_classes=3, d_model=16, n_heads=2, n_layers=2)
    images = torch.randn(5, 2, 8, 8)
    logits = model(images)
    assert logits.shape == (5, 3)
    x = model.embed(images)
    for block in model.blocks:
        x = block(x)
    torch.testing.assert_close(logits, model.head(model.norm(x[:, 0])))


def test_vit_patches_see_each_other_and_positions_matter():
    torch.manual_seed(0)
    model = ViT(8, 4, 1, n_classes=2, d_model=16, n_heads=2, n_layers=1)
    images = torch.randn(1, 1, 8, 8)
    changed = images.clone()
    changed[..., 4:, 4:] += 1.0  # only the last patch
    assert not torch.allclose(model(images), model(changed)), "the class token reads every patch"
    swapped = images.clone()
    swapped[..., :4, :4], swapped[..., 4:, 4:] = images[..., 4:, 4:], images[..., :4, :4]
    assert not torch.allclose(model(images), model(swapped)), "patch positions are embedded"
