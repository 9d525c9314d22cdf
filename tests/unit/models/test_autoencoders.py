"""``autoencoder`` and ``vae``: shapes, the encode/decode contract, KL, bad inputs."""

from __future__ import annotations

import math

import pytest
import torch

from canonml.errors import SpecError
from canonml.model_io import ModelIO
from canonml.models import build_model
from canonml.models.summary import count_parameters
from canonml.models.vae import kl_divergence, kl_scale
from canonml.spec.model import AutoencoderSpec, VAESpec

SHAPES = [(1, 8, 8), (1, 28, 28), (3, 32, 32), (1, 7, 9)]


@pytest.mark.parametrize("shape", SHAPES, ids=str)
@pytest.mark.parametrize("kind", ["dense", "conv"])
@pytest.mark.parametrize("spec_type", [AutoencoderSpec, VAESpec])
def test_reconstructions_have_the_input_shape_and_codes_the_latent_size(
    spec_type: type[AutoencoderSpec | VAESpec], kind: str, shape: tuple[int, ...]
) -> None:
    spec = spec_type(kind=kind, hidden=[16], channels=[4, 8], latent=5)  # type: ignore[arg-type]
    torch.manual_seed(0)
    model = build_model(spec, ModelIO(shape)).eval()
    x = torch.rand(3, *shape)
    out = model(x)
    x_hat = out[0] if isinstance(out, tuple) else out
    assert x_hat.shape == x.shape
    assert 0 < x_hat.min() and x_hat.max() < 1  # sigmoid output
    code = model.encode(x)
    codes = code if isinstance(code, tuple) else (code,)
    assert all(c.shape == (3, 5) for c in codes)
    assert torch.equal(model.decode(codes[0]), x_hat)  # encode/decode are the submodules
    assert torch.equal(model.decoder(codes[0]), x_hat)


def test_a_dense_autoencoder_takes_rows_and_a_linear_output_is_unbounded() -> None:
    model = build_model(AutoencoderSpec(hidden=[], output="linear", latent=2), ModelIO((6,)))
    x = torch.randn(4, 6) * 100
    assert model(x).shape == (4, 6)
    assert model(x).abs().max() > 1
    # latent 2, no hidden layers: 6·2 + 2 weights and biases each way
    assert count_parameters(model) == (6 * 2 + 2) + (2 * 6 + 6)


def test_the_conv_encoder_halves_the_image_per_channels_entry() -> None:
    spec = AutoencoderSpec(kind="conv", hidden=[], channels=[4, 8], batch_norm=True)
    model = build_model(spec, ModelIO((1, 28, 28)))
    convs = [m for m in model.encoder if isinstance(m, torch.nn.Conv2d)]
    assert [c.out_channels for c in convs] == [4, 8]
    linear = model.encoder[-1]
    assert isinstance(linear, torch.nn.Linear) and linear.in_features == 8 * 7 * 7
    assert any(isinstance(m, torch.nn.BatchNorm2d) for m in model.decoder)


def test_default_autoencoder_is_a_small_model() -> None:
    model = build_model(AutoencoderSpec(), ModelIO((1, 8, 8)))
    # 64→256→128→8 and back: about 0.1 M parameters
    assert 90_000 < count_parameters(model) < 110_000


def test_building_with_a_seed_is_deterministic() -> None:
    def weights(seed: int) -> list[torch.Tensor]:
        torch.manual_seed(seed)
        return list(build_model(VAESpec(kind="conv"), ModelIO((1, 8, 8))).state_dict().values())

    assert all(torch.equal(a, b) for a, b in zip(weights(3), weights(3), strict=True))
    assert not all(torch.equal(a, b) for a, b in zip(weights(3), weights(4), strict=True))


def test_vae_samples_z_in_training_and_decodes_mu_in_eval() -> None:
    torch.manual_seed(0)
    model = build_model(VAESpec(hidden=[16], latent=4), ModelIO((1, 8, 8)))
    x = torch.rand(5, 1, 8, 8)
    model.eval()
    x_hat, mu, logvar = model(x)
    assert torch.equal(model(x)[0], x_hat)  # deterministic
    assert torch.equal(x_hat, model.decode(mu))
    assert mu.shape == logvar.shape == (5, 4)
    model.train()
    a, b = model(x)[0], model(x)[0]
    assert not torch.equal(a, b)
    torch.manual_seed(1)
    c = model(x)[0]
    torch.manual_seed(1)
    assert torch.equal(model(x)[0], c)  # the noise follows torch's seed


def test_vae_reparameterisation_passes_gradients_to_mu_and_logvar() -> None:
    torch.manual_seed(0)
    model = build_model(VAESpec(hidden=[], latent=2), ModelIO((4,))).train()
    x_hat, _, _ = model(torch.rand(8, 4))
    x_hat.sum().backward()
    assert model.encoder.mu.weight.grad is not None
    assert model.encoder.logvar.weight.grad is not None
    assert model.encoder.logvar.weight.grad.abs().sum() > 0


def test_kl_divergence_matches_the_closed_form_per_example() -> None:
    mu = torch.tensor([[0.0, 0.0], [1.0, -2.0], [0.5, 0.0]])
    logvar = torch.tensor([[0.0, 0.0], [0.0, 0.0], [math.log(4.0), math.log(0.25)]])

    # KL(N(m, s²) ‖ N(0, 1)) = ½ (s² + m² − 1 − ln s²), summed over dimensions
    def kl(m: float, s2: float) -> float:
        return 0.5 * (s2 + m * m - 1 - math.log(s2))

    expected = [0.0, kl(1, 1) + kl(-2, 1), kl(0.5, 4) + kl(0, 0.25)]
    assert kl_divergence(mu, logvar).tolist() == pytest.approx(expected)
    normal = torch.distributions.Normal
    q = normal(mu, torch.exp(0.5 * logvar))
    reference = torch.distributions.kl_divergence(q, normal(0.0, 1.0)).sum(1)
    assert torch.allclose(kl_divergence(mu, logvar), reference)


def test_kl_warmup_rises_linearly_then_holds() -> None:
    assert [kl_scale(e, 0.5, 4) for e in range(6)] == [0.0, 0.125, 0.25, 0.375, 0.5, 0.5]
    assert kl_scale(0, 0.5, 0) == 0.5


@pytest.mark.parametrize(
    ("spec", "shape", "message"),
    [
        (AutoencoderSpec(kind="conv"), (30,), r"^model.kind: conv needs image inputs.*\[30\]"),
        (VAESpec(kind="conv"), (30,), r"^model.kind: .*use kind: dense"),
        (
            AutoencoderSpec(kind="conv", channels=[4, 4, 4, 4]),
            (1, 8, 8),
            r"^model.channels: 4 stride-2 convs shrink a 8×8 image below 1×1.*at most 3",
        ),
    ],
)
def test_impossible_shapes_raise_a_spec_error_naming_the_key(
    spec: AutoencoderSpec, shape: tuple[int, ...], message: str
) -> None:
    with pytest.raises(SpecError, match=message):
        build_model(spec, ModelIO(shape))
