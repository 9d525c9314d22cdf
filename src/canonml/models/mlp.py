"""``mlp`` — a multi-layer perceptron over flattened inputs."""

from __future__ import annotations

import math

from torch import nn

from canonml.model_io import ModelIO
from canonml.models import MODELS
from canonml.models.layers import dense_stack
from canonml.spec.model import MLPSpec


@MODELS.register("mlp")
def build_mlp(spec: MLPSpec, io: ModelIO) -> nn.Module:
    """Flatten → dense stack → linear head of ``io.n_outputs`` (logits or regression values)."""
    layers, width = dense_stack(
        math.prod(io.input_shape),
        spec.hidden,
        spec.activation,
        spec.dropout,
        spec.batch_norm,
        spec.norm,
    )
    return nn.Sequential(nn.Flatten(), *layers, nn.Linear(width, io.n_outputs))
