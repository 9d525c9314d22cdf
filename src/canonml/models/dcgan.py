"""``dcgan`` — the DCGAN of Radford, Metz & Chintala (2015).

Their rules: no pooling (strided convs down, transposed convs up), batch norm in G (all but
the output layer) and D (all but the input layer), ReLU in G, LeakyReLU in D, tanh output,
weights from N(0, 0.02). Each ``g_channels`` entry is one ×2 upsampling, so G starts at
(H / 2^n, W / 2^n) with n = len(g_channels): the default two entries fit any H, W divisible
by 4 (8×8 digits, 28×28 MNIST, 32×32 CIFAR); a third entry needs divisibility by 8 (32×32).
Conditional: the label embedding is appended to z in G, and becomes an extra (1, H, W)
input channel in D (the label-map variant of Mirza & Osindero's conditioning).
"""

from __future__ import annotations

import torch
from torch import nn

from canonml.errors import SpecError
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
from canonml.spec.model import DCGANSpec


class ConvGenerator(nn.Module):
    """z (B, latent) [+ labels] → linear to (g0, H/2^n, W/2^n) → n transposed convs → tanh."""

    def __init__(self, spec: DCGANSpec, shape: tuple[int, int, int], n_classes: int | None):
        super().__init__()
        channels, height, width = shape
        scale = 2 ** len(spec.g_channels)
        if height % scale or width % scale:
            raise SpecError(
                "model.arch",
                f"dcgan's generator doubles its map once per g_channels entry "
                f"({len(spec.g_channels)} times), so it needs height and width divisible by "
                f"{scale}, got {channels}×{height}×{width} (resize the images, use fewer "
                "g_channels entries, or arch: gan)",
            )
        self.embed = label_embedding(n_classes, n_classes or 0)
        first = spec.g_channels[0]
        layers: list[nn.Module] = [
            nn.Linear(spec.latent + (n_classes or 0), first * (height // scale) * (width // scale)),
            nn.Unflatten(1, (first, height // scale, width // scale)),  # (B, g0, H/2^n, W/2^n)
            nn.BatchNorm2d(first),
            nn.ReLU(),
        ]
        for c_in, c_out in zip(spec.g_channels, spec.g_channels[1:], strict=False):
            layers += [_up(c_in, c_out, bias=False), nn.BatchNorm2d(c_out), nn.ReLU()]
        layers += [_up(spec.g_channels[-1], channels, bias=True), nn.Tanh()]  # (B, C, H, W)
        self.net = nn.Sequential(*layers)

    def forward(self, z: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        return self.net(with_labels(z, self.embed, labels))  # (B, latent [+ K]) in


class ConvDiscriminator(nn.Module):
    """images (B, C, H, W) [+ a label map] → stride-2 convs → linear → logits (B,)."""

    def __init__(self, spec: DCGANSpec, shape: tuple[int, int, int], n_classes: int | None):
        super().__init__()
        channels, height, width = shape
        self.shape = shape
        self.embed = label_embedding(n_classes, height * width)
        c_in = channels + (1 if n_classes else 0)
        layers: list[nn.Module] = []
        for i, c_out in enumerate(spec.d_channels):
            if min(height, width) < 2:
                raise SpecError(
                    "model.d_channels",
                    f"{len(spec.d_channels)} stride-2 convs shrink a {shape[1]}×{shape[2]} image "
                    f"below 1×1, got {len(spec.d_channels)} entries (use at most {i})",
                )
            layers.append(nn.Conv2d(c_in, c_out, 4, stride=2, padding=1, bias=i == 0))
            if i > 0:  # no batch norm on the input layer
                layers.append(nn.BatchNorm2d(c_out))
            layers.append(nn.LeakyReLU(spec.leaky_slope))
            c_in, height, width = c_out, height // 2, width // 2
        layers += [nn.Flatten(), nn.Linear(c_in * height * width, 1)]
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        check_labels(self.embed, labels)
        if self.embed is not None and labels is not None:
            label_map = self.embed(labels).view(-1, 1, *self.shape[1:])  # (B, 1, H, W)
            x = torch.cat([x, label_map], dim=1)
        return self.net(x).squeeze(1)


def _up(c_in: int, c_out: int, bias: bool) -> nn.ConvTranspose2d:
    """A ×2 transposed conv: (B, c_in, h, w) → (B, c_out, 2h, 2w)."""
    return nn.ConvTranspose2d(c_in, c_out, 4, stride=2, padding=1, bias=bias)


def init_dcgan(module: nn.Module) -> None:
    """The paper's initialisation: conv/linear weights N(0, 0.02), batch-norm scale N(1, 0.02)."""
    if isinstance(module, nn.Conv2d | nn.ConvTranspose2d | nn.Linear):
        nn.init.normal_(module.weight, 0.0, 0.02)
        if module.bias is not None:
            nn.init.zeros_(module.bias)
    elif isinstance(module, nn.BatchNorm2d):
        nn.init.normal_(module.weight, 1.0, 0.02)
        nn.init.zeros_(module.bias)


@MODELS.register("dcgan")
def build_dcgan(spec: DCGANSpec, io: ModelIO) -> nn.Module:
    """A ``GAN`` pair of conv nets for images of ``io.input_shape``."""
    shape = image_shape(io, "dcgan")
    n_classes = label_classes(io, spec.conditional)
    gan = GAN(
        ConvGenerator(spec, shape, n_classes),
        ConvDiscriminator(spec, shape, n_classes),
        spec.latent,
        shape,
        n_classes,
    )
    gan.apply(init_dcgan)
    return gan
