"""``autoencoder`` — an encoder x → z and a decoder z → x̂, dense or convolutional.

The encoder and decoder bodies here are shared with ``vae``. ``kind: conv`` halves the image
with one stride-2 4×4 conv per ``channels`` entry (then the dense ``hidden`` layers); the
decoder mirrors it with transposed convs whose output padding restores odd sizes exactly
(28 → 14 → 7 → 14 → 28, 7 → 3 → 7).
"""

from __future__ import annotations

import math

import torch
from torch import nn

from canonml.errors import SpecError
from canonml.model_io import ModelIO
from canonml.models import MODELS
from canonml.models.layers import ACTIVATIONS, dense_stack
from canonml.spec.model import AutoencoderSpec, CodecSpec


class Autoencoder(nn.Module):
    """``forward(x) = decoder(encoder(x))``; ``encoder`` and ``decoder`` export on their own."""

    def __init__(self, encoder: nn.Module, decoder: nn.Module, latent: int) -> None:
        super().__init__()
        self.encoder = encoder
        self.decoder = decoder
        self.latent = latent

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """x (B, *input_shape) → z (B, latent)."""
        return self.encoder(x)

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """z (B, latent) → x̂ (B, *input_shape)."""
        return self.decoder(z)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.decoder(self.encoder(x))


def encoder_body(spec: CodecSpec, shape: tuple[int, ...]) -> tuple[nn.Sequential, int]:
    """x (B, *shape) → features (B, F): [convs →] flatten → dense ``hidden``; returns (body, F)."""
    layers: list[nn.Module] = []
    features = math.prod(shape)
    if spec.kind == "conv":
        sizes = conv_sizes(spec, shape)
        for c_in, c_out in zip([shape[0], *spec.channels], spec.channels, strict=False):
            layers += [nn.Conv2d(c_in, c_out, 4, stride=2, padding=1), *_norm_act(spec, c_out)]
        features = spec.channels[-1] * math.prod(sizes[-1])  # (B, C_n, H/2^n, W/2^n) flat
    dense, width = dense_stack(features, spec.hidden, spec.activation, 0.0, spec.batch_norm)
    return nn.Sequential(*layers, nn.Flatten(), *dense), width


def build_decoder(spec: CodecSpec, shape: tuple[int, ...]) -> nn.Sequential:
    """z (B, latent) → dense ``hidden`` reversed → [transposed convs →] x̂ (B, *shape)."""
    layers, width = dense_stack(
        spec.latent, spec.hidden[::-1], spec.activation, 0.0, spec.batch_norm
    )
    out: list[nn.Module] = [nn.Sigmoid()] if spec.output == "sigmoid" else []
    if spec.kind == "dense":
        size = math.prod(shape)
        return nn.Sequential(*layers, nn.Linear(width, size), *out, nn.Unflatten(1, shape))
    sizes = conv_sizes(spec, shape)  # [(H, W), (H/2, W/2), ...] down to the smallest map
    depth = [shape[0], *spec.channels]  # depth[i] is the channel count at sizes[i]
    h, w = sizes[-1]
    layers += [nn.Linear(width, depth[-1] * h * w), nn.Unflatten(1, (depth[-1], h, w))]
    layers += _norm_act(spec, depth[-1])
    for i in range(len(spec.channels), 0, -1):
        (h, w), (th, tw) = sizes[i], sizes[i - 1]
        # (B, depth[i], h, w) → (B, depth[i-1], 2h + pad, 2w + pad); pad 1 restores odd sizes
        pad = (th - 2 * h, tw - 2 * w)
        layers.append(nn.ConvTranspose2d(depth[i], depth[i - 1], 4, 2, 1, output_padding=pad))
        layers += _norm_act(spec, depth[i - 1]) if i > 1 else out
    return nn.Sequential(*layers)


def conv_sizes(spec: CodecSpec, shape: tuple[int, ...]) -> list[tuple[int, int]]:
    """The (H, W) maps of a conv encoder, input first; a SpecError when there are none."""
    if len(shape) != 3:
        raise SpecError(
            "model.kind",
            f"conv needs image inputs (channels, height, width), but the data gives "
            f"{len(shape)}-d rows of shape {list(shape)} (use kind: dense)",
        )
    sizes = [(shape[1], shape[2])]
    for i in range(len(spec.channels)):
        h, w = sizes[-1]
        if min(h, w) < 2:
            raise SpecError(
                "model.channels",
                f"{len(spec.channels)} stride-2 convs shrink a {shape[1]}×{shape[2]} image "
                f"below 1×1, got {len(spec.channels)} entries (use at most {i})",
            )
        sizes.append((h // 2, w // 2))
    return sizes


def _norm_act(spec: CodecSpec, channels: int) -> list[nn.Module]:
    """[BatchNorm2d →] activation, after a conv of ``channels`` outputs."""
    norm: list[nn.Module] = [nn.BatchNorm2d(channels)] if spec.batch_norm else []
    return [*norm, ACTIVATIONS[spec.activation]()]


@MODELS.register("autoencoder")
def build_autoencoder(spec: AutoencoderSpec, io: ModelIO) -> nn.Module:
    """An ``Autoencoder`` for inputs of ``io.input_shape`` (rows or images)."""
    body, features = encoder_body(spec, io.input_shape)
    encoder = nn.Sequential(*body, nn.Linear(features, spec.latent))  # (B, latent)
    return Autoencoder(encoder, build_decoder(spec, io.input_shape), spec.latent)
