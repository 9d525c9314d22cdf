"""Image augmentation of training batches, in torch: shift, rotation, noise, flip."""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch.nn import functional as F

from canonml.spec.data import AugmentSpec


def make_augment(
    spec: AugmentSpec, fill: torch.Tensor, generator: torch.Generator
) -> Callable[[torch.Tensor], torch.Tensor]:
    """A function that augments a ``(B, C, H, W)`` batch; ``fill`` ``(C,)`` is the background.

    Randomness comes from ``generator`` only (on the CPU, then moved to the batch's device),
    so a resumed run draws the same augmentations on any device.
    """
    fill4 = fill.reshape(1, -1, 1, 1)

    def augment(x: torch.Tensor) -> torch.Tensor:
        b, _, h, w = x.shape
        f = fill4.to(x.device)
        if spec.shift or spec.rotate:
            x = _affine(x - f, spec, generator) + f
        if spec.flip:
            flip = (torch.rand(b, generator=generator) < 0.5).to(x.device)
            x = torch.where(flip.reshape(b, 1, 1, 1), x.flip(3), x)
        if spec.noise > 0:
            x = x + spec.noise * torch.randn(x.shape, generator=generator).to(x.device)
        return x

    return augment


def _affine(x: torch.Tensor, spec: AugmentSpec, generator: torch.Generator) -> torch.Tensor:
    """Random integer shift (pixels) and rotation (degrees) per example; zero padding."""
    b, _, h, w = x.shape
    shift = torch.randint(-spec.shift, spec.shift + 1, (b, 2), generator=generator).float()
    angle = (torch.rand(b, generator=generator) * 2 - 1) * math.radians(spec.rotate)
    cos, sin = torch.cos(angle), torch.sin(angle)
    # affine_grid maps output to input coordinates in [-1, 1]; one pixel is 2/size.
    theta = torch.stack(
        [
            torch.stack([cos, -sin, -shift[:, 0] * 2 / w], dim=1),
            torch.stack([sin, cos, -shift[:, 1] * 2 / h], dim=1),
        ],
        dim=1,
    ).to(x.device)  # (B, 2, 3)
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    mode = "bilinear" if spec.rotate else "nearest"
    return F.grid_sample(x, grid, mode=mode, padding_mode="zeros", align_corners=False)
