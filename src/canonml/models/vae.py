"""``vae`` — a variational autoencoder (Kingma & Welling 2014) on the autoencoder's bodies.

The encoder gives a diagonal Gaussian q(z|x) = N(mu, exp(logvar)); training samples
z = mu + exp(logvar / 2)·ε (the reparameterisation trick, so gradients reach mu and logvar);
evaluation decodes z = mu, a deterministic reconstruction. The loss (reconstruction plus
``kl_weight``·KL, warmed up over ``kl_warmup`` epochs) belongs to the task; ``kl_divergence``
and ``kl_scale`` are the pieces it needs.
"""

from __future__ import annotations

import torch
from torch import nn

from canonml.model_io import ModelIO
from canonml.models import MODELS
from canonml.models.autoencoder import build_decoder, encoder_body
from canonml.spec.model import VAESpec


class GaussianEncoder(nn.Module):
    """x (B, *input_shape) → (mu, logvar), each (B, latent); exports with two outputs."""

    def __init__(self, body: nn.Module, features: int, latent: int) -> None:
        super().__init__()
        self.body = body
        self.mu = nn.Linear(features, latent)
        self.logvar = nn.Linear(features, latent)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h = self.body(x)  # (B, F)
        return self.mu(h), self.logvar(h)


class VAE(nn.Module):
    """``forward(x) -> (x_hat, mu, logvar)``; z is sampled in training mode, mu in eval mode."""

    def __init__(self, encoder: GaussianEncoder, decoder: nn.Module, latent: int) -> None:
        super().__init__()
        self.encoder = encoder
        self.decoder = decoder
        self.latent = latent

    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """x → (mu, logvar), each (B, latent)."""
        return self.encoder(x)

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """z (B, latent) → x̂ (B, *input_shape)."""
        return self.decoder(z)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        mu, logvar = self.encoder(x)
        z = mu + torch.exp(0.5 * logvar) * torch.randn_like(mu) if self.training else mu
        return self.decoder(z), mu, logvar


def kl_divergence(mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """KL(N(mu, exp(logvar)) ‖ N(0, I)) in nats per example: (B, latent) → (B,)."""
    return -0.5 * torch.sum(1.0 + logvar - mu.pow(2) - logvar.exp(), dim=1)


def kl_scale(epoch: int, kl_weight: float, kl_warmup: int) -> float:
    """The KL weight at 0-based ``epoch``: rises linearly from 0 to ``kl_weight`` over
    ``kl_warmup`` epochs (``kl_weight * epoch / kl_warmup``), then stays; no warm-up at 0."""
    if kl_warmup <= 0:
        return kl_weight
    return kl_weight * min(1.0, epoch / kl_warmup)


@MODELS.register("vae")
def build_vae(spec: VAESpec, io: ModelIO) -> nn.Module:
    """A ``VAE`` for inputs of ``io.input_shape`` (rows or images)."""
    body, features = encoder_body(spec, io.input_shape)
    encoder = GaussianEncoder(body, features, spec.latent)
    return VAE(encoder, build_decoder(spec, io.input_shape), spec.latent)
