"""The generator/discriminator pair both GAN architectures build, and their input checks."""

from __future__ import annotations

import torch
from torch import nn

from canonml.errors import SpecError
from canonml.model_io import ModelIO


class GAN(nn.Module):
    """A ``generator`` (z[, labels] → images in [-1, 1]) and a ``discriminator`` (→ logits).

    The training step uses the two submodules and one optimizer each. ``forward`` runs the
    generator, so a plain summary or export of the pair shows the generator; a conditional
    pair called without labels cycles them (0, 1, ..., K-1, 0, ...) to show every class.
    """

    def __init__(
        self,
        generator: nn.Module,
        discriminator: nn.Module,
        latent: int,
        image_shape: tuple[int, int, int],
        n_classes: int | None,
    ) -> None:
        super().__init__()
        self.generator = generator
        self.discriminator = discriminator
        self.latent = latent
        self.image_shape = image_shape
        self.n_classes = n_classes

    def forward(self, z: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        if self.n_classes is not None and labels is None:
            labels = torch.arange(z.shape[0], device=z.device) % self.n_classes
        return self.generator(z, labels)


def image_shape(io: ModelIO, arch: str) -> tuple[int, int, int]:
    """``io.input_shape`` as (C, H, W), or a SpecError: a GAN generates images, not rows."""
    shape = io.input_shape
    if len(shape) != 3:
        raise SpecError(
            "model.arch",
            f"{arch} generates images (channels, height, width), but the data gives "
            f"{len(shape)}-d rows of shape {list(shape)} (use an image source: sklearn:digits, "
            "idx:DIR, cifar10:DIR or images:DIR)",
        )
    return shape[0], shape[1], shape[2]


def label_classes(io: ModelIO, conditional: bool) -> int | None:
    """The number of classes a conditional model embeds; None when unconditional."""
    if not conditional:
        return None
    if io.n_classes is None or io.n_classes < 2:
        raise SpecError(
            "model.conditional",
            f"needs class labels, but the data has none, got n_classes={io.n_classes} "
            "(use a labelled source or conditional: false)",
        )
    return io.n_classes


def label_embedding(n_classes: int | None, width: int) -> nn.Embedding | None:
    """A learned (K, width) label table, or None when unconditional."""
    return None if n_classes is None else nn.Embedding(n_classes, width)


def check_labels(embed: nn.Module | None, labels: torch.Tensor | None) -> None:
    """A conditional module needs labels (B,) int64; an unconditional one takes none."""
    if embed is None and labels is not None:
        raise ValueError("this model is unconditional; call it without labels")
    if embed is not None and labels is None:
        raise ValueError("this model is conditional; pass labels, a (B,) int64 tensor")


def with_labels(
    z: torch.Tensor, embed: nn.Module | None, labels: torch.Tensor | None
) -> torch.Tensor:
    """A generator's noise ``z`` (B, latent) with the label's embedding appended when it is
    conditional: (B, latent + K); checked as ``check_labels`` does."""
    check_labels(embed, labels)
    if embed is not None and labels is not None:
        return torch.cat([z, embed(labels)], dim=1)
    return z
