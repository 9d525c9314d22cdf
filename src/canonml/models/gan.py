"""``gan`` — MLP generator and discriminator (Goodfellow et al. 2014; conditional as in
Mirza & Osindero 2014: the label embedding is appended to the noise and to the image)."""

from __future__ import annotations

import math

import torch
from torch import nn

from canonml.model_io import ModelIO
from canonml.models import MODELS
from canonml.models.adversarial import (
    GAN,
    check_labels,
    image_shape,
    label_classes,
    label_embedding,
    with_labels,
)
from canonml.spec.model import GANSpec


class MLPGenerator(nn.Module):
    """z (B, latent) [+ labels (B,)] → dense layers → images (B, C, H, W) in [-1, 1]."""

    def __init__(self, spec: GANSpec, shape: tuple[int, int, int], n_classes: int | None):
        super().__init__()
        self.embed = label_embedding(n_classes, n_classes or 0)
        width = spec.latent + (n_classes or 0)
        layers: list[nn.Module] = []
        for out in spec.g_hidden:
            layers.append(nn.Linear(width, out))
            if spec.g_batch_norm:
                layers.append(nn.BatchNorm1d(out))
            layers.append(nn.LeakyReLU(spec.leaky_slope))
            width = out
        # tanh: the generation task maps pixels to [-1, 1]
        layers += [nn.Linear(width, math.prod(shape)), nn.Tanh(), nn.Unflatten(1, shape)]
        self.net = nn.Sequential(*layers)

    def forward(self, z: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        return self.net(with_labels(z, self.embed, labels))  # (B, latent [+ K]) in


class MLPDiscriminator(nn.Module):
    """images (B, C, H, W) [+ labels (B,)] → dense layers → logits (B,) (no sigmoid)."""

    def __init__(self, spec: GANSpec, shape: tuple[int, int, int], n_classes: int | None):
        super().__init__()
        self.embed = label_embedding(n_classes, n_classes or 0)
        width = math.prod(shape) + (n_classes or 0)
        layers: list[nn.Module] = []
        for out in spec.d_hidden:
            layers += [nn.Linear(width, out), nn.LeakyReLU(spec.leaky_slope)]
            if spec.d_dropout > 0:
                layers.append(nn.Dropout(spec.d_dropout))
            width = out
        layers.append(nn.Linear(width, 1))
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        check_labels(self.embed, labels)
        h = x.flatten(1)  # (B, C·H·W)
        if self.embed is not None and labels is not None:
            h = torch.cat([h, self.embed(labels)], dim=1)
        return self.net(h).squeeze(1)


@MODELS.register("gan")
def build_gan(spec: GANSpec, io: ModelIO) -> nn.Module:
    """A ``GAN`` pair for images of ``io.input_shape``; labels from ``io.n_classes``."""
    shape = image_shape(io, "gan")
    n_classes = label_classes(io, spec.conditional)
    return GAN(
        MLPGenerator(spec, shape, n_classes),
        MLPDiscriminator(spec, shape, n_classes),
        spec.latent,
        shape,
        n_classes,
    )
