"""``cnn`` — conv blocks with pooling between them, then a dense head."""

from __future__ import annotations

from torch import nn

from canonml.errors import SpecError
from canonml.model_io import ModelIO
from canonml.models import MODELS
from canonml.models.layers import ACTIVATIONS, dense_stack, norm_layer
from canonml.spec.model import CNNSpec


@MODELS.register("cnn")
def build_cnn(spec: CNNSpec, io: ModelIO) -> nn.Module:
    """Conv(k, same padding) → [BN] → act → [pool] per block; flatten; dense head."""
    input_shape = io.input_shape
    if len(input_shape) != 3:
        raise SpecError(
            "model.arch",
            f"cnn needs image inputs (channels, height, width), but the data gives "
            f"{len(input_shape)}-d rows of shape {list(input_shape)}; use arch: mlp",
        )
    channels, height, width = input_shape
    pool_after = spec.pool_after or list(range(1, len(spec.channels)))
    layers: list[nn.Module] = []
    for i, out in enumerate(spec.channels, start=1):
        layers.append(nn.Conv2d(channels, out, spec.kernel_size, padding=spec.kernel_size // 2))
        if spec.batch_norm:
            layers.append(norm_layer(spec.norm, out, 2))
        layers.append(ACTIVATIONS[spec.activation]())
        if spec.pool != "none" and i in pool_after:
            if min(height, width) < 2:
                raise SpecError(
                    "model.pool_after",
                    f"block {i} would pool a {height}×{width} map; pool fewer times",
                )
            layers.append(nn.MaxPool2d(2) if spec.pool == "max" else nn.AvgPool2d(2))
            height, width = height // 2, width // 2
        channels = out
    head, features = dense_stack(
        channels * height * width,
        spec.dense,
        spec.activation,
        spec.dropout,
        spec.batch_norm,
        spec.norm,
    )
    # (B, C, H, W) → (B, C·H·W) → dense → (B, n_outputs)
    return nn.Sequential(*layers, nn.Flatten(), *head, nn.Linear(features, io.n_outputs))
