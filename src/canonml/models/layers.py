"""Small shared pieces of the architectures."""

from __future__ import annotations

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


def dense_stack(
    width_in: int, widths: list[int], activation: str, dropout: float, batch_norm: bool
) -> tuple[list[nn.Module], int]:
    """Linear → [BatchNorm1d] → activation → [Dropout] per width; returns (layers, width out)."""
    layers: list[nn.Module] = []
    for width in widths:
        layers.append(nn.Linear(width_in, width))
        if batch_norm:
            layers.append(nn.BatchNorm1d(width))
        layers.append(ACTIVATIONS[activation]())
        if dropout > 0:
            layers.append(nn.Dropout(dropout))
        width_in = width
    return layers, width_in
