"""Small shared pieces of the architectures."""

from __future__ import annotations

import math

from torch import nn

ACTIVATIONS: dict[str, type[nn.Module]] = {
    "relu": nn.ReLU,
    "gelu": nn.GELU,
    "tanh": nn.Tanh,
    "sigmoid": nn.Sigmoid,
    "silu": nn.SiLU,
    "leaky_relu": nn.LeakyReLU,
    "elu": nn.ELU,
}


def norm_layer(kind: str, channels: int, dims: int) -> nn.Module:
    """``batch``: BatchNorm1d (dense, ``dims`` 1) or BatchNorm2d (conv, ``dims`` 2);
    ``group``: per-example GroupNorm, as DP-SGD needs — over a conv map min(32, C) groups
    (what Opacus' module validator puts in BatchNorm2d's place), over a dense layer's C
    features one group (layer norm: with C groups of one value each it would output 0)."""
    if kind == "group":
        groups = math.gcd(min(32, channels), channels) if dims == 2 else 1
        return nn.GroupNorm(groups, channels)
    return nn.BatchNorm1d(channels) if dims == 1 else nn.BatchNorm2d(channels)


def dense_stack(
    width_in: int,
    widths: list[int],
    activation: str,
    dropout: float,
    batch_norm: bool,
    norm: str = "batch",
) -> tuple[list[nn.Module], int]:
    """Linear → [norm] → activation → [Dropout] per width; returns (layers, width out)."""
    layers: list[nn.Module] = []
    for width in widths:
        layers.append(nn.Linear(width_in, width))
        if batch_norm:
            layers.append(norm_layer(norm, width, 1))
        layers.append(ACTIVATIONS[activation]())
        if dropout > 0:
            layers.append(nn.Dropout(dropout))
        width_in = width
    return layers, width_in
