"""Images as sequences of patches: the input side of a Vision Transformer (Dosovitskiy et al.).

An image of shape ``(C, H, W)`` is cut into ``N = (H / P) * (W / P)`` square patches of
``P x P`` pixels, read row by row like the words of a text. Each patch is flattened to
``C * P * P`` numbers and mapped to ``d_model`` by one trained linear layer (the
"patch embedding"); a trained class token is prepended, whose final state represents
the whole image, and trained 1-D position embeddings ``(N + 1, d_model)`` are added.
From there on, the sequence goes through an ordinary Transformer encoder, and a linear
layer on the class token's final state classifies the image (:class:`ViT`).

A patch is flattened channel first, then row, then column, the order of
``torch.nn.functional.unfold``; the linear patch embedding is then exactly a
convolution with kernel size and stride ``P`` (the tests check both).
"""

from __future__ import annotations

import torch
from torch import nn

from llmcourse.checks import check_int
from llmcourse.modules.transformer import TransformerBlock, TransformerConfig, make_norm


def _check_patch_size(height: int, width: int, patch_size: int) -> None:
    check_int("patch_size", patch_size)
    if height % patch_size or width % patch_size:
        raise ValueError(
            f"the image size ({height} x {width}) must be a multiple of patch_size ({patch_size})"
        )


def patchify(images: torch.Tensor, patch_size: int) -> torch.Tensor:
    """Cut images into flattened, non-overlapping square patches, in row-major order.

    Args:
        images: ``(batch, channels, height, width)``; height and width multiples of
            ``patch_size``.
        patch_size: ``P``, the side of a patch in pixels.

    Returns:
        ``(batch, n_patches, channels * P * P)`` with ``n_patches = (height / P) * (width / P)``;
        patch ``r * (width / P) + c`` is the one at patch-row ``r``, patch-column ``c``.
    """
    if images.ndim != 4:
        raise ValueError(
            f"images must be (batch, channels, height, width), got {tuple(images.shape)}"
        )
    b, c, h, w = images.shape
    _check_patch_size(h, w, patch_size)
    p = patch_size
    patches = images.reshape(b, c, h // p, p, w // p, p).permute(0, 2, 4, 1, 3, 5)
    return patches.reshape(b, (h // p) * (w // p), c * p * p)


def unpatchify(patches: torch.Tensor, patch_size: int, height: int, width: int) -> torch.Tensor:
    """The inverse of :func:`patchify`: ``(batch, n_patches, C * P * P) -> (batch, C, H, W)``."""
    _check_patch_size(height, width, patch_size)
    p, rows, cols = patch_size, height // patch_size, width // patch_size
    if patches.ndim != 3 or patches.shape[1] != rows * cols or patches.shape[2] % (p * p):
        raise ValueError(
            f"patches must be (batch, {rows * cols}, channels * {p * p}) for {height} x {width} "
            f"images, got {tuple(patches.shape)}"
        )
    b, c = patches.shape[0], patches.shape[2] // (p * p)
    images = patches.reshape(b, rows, cols, c, p, p).permute(0, 3, 1, 4, 2, 5)
    return images.reshape(b, c, height, width)


class PatchEmbedding(nn.Module):
    """Patches -> linear projection -> ``[class token; patches]`` + position embeddings.

    Args:
        image_size: ``(height, width)`` of the images, or one int for square images.
        patch_size: ``P``; the image sides must be multiples of it.
        in_channels: ``C`` (3 for RGB).
        d_model: the size of each token.

    Shapes:
        ``forward(images: (batch, C, H, W)) -> (batch, 1 + n_patches, d_model)``; token 0
        is the class token.
    """

    def __init__(
        self, image_size: int | tuple[int, int], patch_size: int, in_channels: int, d_model: int
    ) -> None:
        super().__init__()
        height, width = (image_size, image_size) if isinstance(image_size, int) else image_size
        _check_patch_size(height, width, patch_size)
        check_int("in_channels", in_channels)
        check_int("d_model", d_model)
        self.image_size, self.patch_size, self.in_channels = (
            (height, width),
            patch_size,
            in_channels,
        )
        self.n_patches = (height // patch_size) * (width // patch_size)
        self.proj = nn.Linear(in_channels * patch_size * patch_size, d_model)
        self.cls_token = nn.Parameter(0.02 * torch.randn(1, 1, d_model))
        self.position = nn.Parameter(0.02 * torch.randn(1, self.n_patches + 1, d_model))

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        expected = (self.in_channels, *self.image_size)
        if images.ndim != 4 or tuple(images.shape[1:]) != expected:
            shape = ", ".join(map(str, expected))
            raise ValueError(f"images must be (batch, {shape}), got {tuple(images.shape)}")
        tokens = self.proj(patchify(images, self.patch_size))  # (batch, n_patches, d_model)
        cls = self.cls_token.expand(images.shape[0], -1, -1)
        return torch.cat([cls, tokens], dim=1) + self.position


class ViT(nn.Module):
    """A Vision Transformer classifier: patch embedding, encoder blocks, a head on the class token.

    The blocks are the Transformer blocks of Chapter 6 (pre-norm, LayerNorm, GELU) without
    a mask: every patch attends to every patch. The class token's final state, normalised,
    goes through a linear layer to the class logits.

    Args:
        image_size, patch_size, in_channels: as for :class:`PatchEmbedding`.
        n_classes: number of classes.
        d_model, n_heads, n_layers: the sizes of the encoder.
        dropout: dropout in the blocks.

    Shapes:
        ``forward(images: (batch, C, H, W)) -> (batch, n_classes)`` logits.
    """

    def __init__(
        self,
        image_size: int | tuple[int, int],
        patch_size: int,
        in_channels: int,
        n_classes: int,
        d_model: int,
        n_heads: int,
        n_layers: int,
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        self.embed = PatchEmbedding(image_size, patch_size, in_channels, d_model)
        # the blocks read only the sizes of the configuration (no vocabulary, no positions)
        config = TransformerConfig(
            vocab_size=n_classes,
            block_size=self.embed.n_patches + 1,
            d_model=d_model,
            n_heads=n_heads,
            n_layers=n_layers,
            dropout=dropout,
        )
        self.blocks = nn.ModuleList(TransformerBlock(config) for _ in range(n_layers))
        self.norm = make_norm(config)
        self.head = nn.Linear(d_model, n_classes)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        x = self.embed(images)  # (batch, 1 + n_patches, d_model)
        for block in self.blocks:
            x = block(x)
        return self.head(self.norm(x[:, 0]))
