"""``gan`` and ``dcgan``: the generator/discriminator contract, shapes, bad inputs."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from canonml.errors import SpecError
from canonml.model_io import ModelIO
from canonml.models import build_model
from canonml.models.adversarial import GAN
from canonml.models.summary import count_parameters, summarize
from canonml.spec import load_spec
from canonml.spec.model import DCGANSpec, GANSpec
from tests.conftest import tiny_spec

SHAPES = [(1, 8, 8), (1, 28, 28), (3, 32, 32)]
SMALL = {
    "gan": GANSpec(latent=6, g_hidden=[16], d_hidden=[16]),
    "dcgan": DCGANSpec(latent=6, g_channels=[16, 8], d_channels=[8, 16]),
}


def small(arch: str, conditional: bool) -> GANSpec | DCGANSpec:
    return SMALL[arch].model_copy(update={"conditional": conditional})


@pytest.mark.parametrize("shape", SHAPES, ids=str)
@pytest.mark.parametrize("conditional", [False, True], ids=["plain", "conditional"])
@pytest.mark.parametrize("arch", ["gan", "dcgan"])
def test_generator_makes_images_in_range_and_discriminator_scores_them(
    arch: str, conditional: bool, shape: tuple[int, int, int]
) -> None:
    torch.manual_seed(0)
    model = build_model(small(arch, conditional), ModelIO(shape, n_classes=10))
    assert isinstance(model, GAN) and model.latent == 6 and model.image_shape == shape
    labels = torch.tensor([0, 3, 9, 9]) if conditional else None
    images = model.generator(torch.randn(4, 6), labels)
    assert images.shape == (4, *shape)
    assert images.min() >= -1 and images.max() <= 1  # tanh
    logits = model.discriminator(images, labels)
    assert logits.shape == (4,)
    assert isinstance(model.discriminator.net[-1], nn.Linear)  # logits: no sigmoid
    assert model(torch.randn(4, 6)).shape == (4, *shape)  # forward = the generator


@pytest.mark.parametrize("arch", ["gan", "dcgan"])
def test_the_label_changes_what_is_generated_and_how_it_is_scored(arch: str) -> None:
    torch.manual_seed(0)
    model = build_model(small(arch, True), ModelIO((1, 8, 8), n_classes=10)).eval()
    z = torch.randn(2, 6).repeat(2, 1)
    labels = torch.tensor([1, 1, 7, 7])
    images = model.generator(z, labels)
    assert not torch.allclose(images[:2], images[2:])
    scores = model.discriminator(images[:2].repeat(2, 1, 1, 1), labels)
    assert not torch.allclose(scores[:2], scores[2:])


def test_a_conditional_pair_called_without_labels_cycles_the_classes() -> None:
    torch.manual_seed(0)
    model = build_model(small("gan", True), ModelIO((1, 8, 8), n_classes=3)).eval()
    z = torch.randn(5, 6)
    assert torch.equal(model(z), model.generator(z, torch.tensor([0, 1, 2, 0, 1])))
    rows = summarize(model, (z,))  # a plain summary runs
    assert rows and rows[-1]["output_shape"] == [1, 8, 8]


@pytest.mark.parametrize("arch", ["gan", "dcgan"])
def test_the_submodules_refuse_missing_or_unexpected_labels(arch: str) -> None:
    conditional = build_model(small(arch, True), ModelIO((1, 8, 8), n_classes=10))
    plain = build_model(small(arch, False), ModelIO((1, 8, 8), n_classes=10))
    with pytest.raises(ValueError, match="conditional; pass labels"):
        conditional.generator(torch.randn(2, 6))
    with pytest.raises(ValueError, match="conditional; pass labels"):
        conditional.discriminator(torch.randn(2, 1, 8, 8))
    with pytest.raises(ValueError, match="unconditional"):
        plain.generator(torch.randn(2, 6), torch.tensor([0, 1]))


def test_mlp_gan_defaults_are_the_classic_sizes() -> None:
    model = build_model(GANSpec(), ModelIO((1, 28, 28)))
    linears = [m for m in model.generator.modules() if isinstance(m, nn.Linear)]
    assert [(m.in_features, m.out_features) for m in linears] == [
        (100, 256),
        (256, 512),
        (512, 784),
    ]
    linears = [m for m in model.discriminator.modules() if isinstance(m, nn.Linear)]
    assert [(m.in_features, m.out_features) for m in linears] == [(784, 512), (512, 256), (256, 1)]
    leaky = [m for m in model.modules() if isinstance(m, nn.LeakyReLU)]
    assert leaky and all(m.negative_slope == 0.2 for m in leaky)
    assert 0.5e6 < count_parameters(model.generator) < 0.6e6
    assert 0.5e6 < count_parameters(model.discriminator) < 0.6e6


def test_dcgan_follows_the_paper() -> None:
    torch.manual_seed(0)
    model = build_model(DCGANSpec(), ModelIO((1, 28, 28)))
    g, d = model.generator, model.discriminator
    assert not any(isinstance(m, nn.MaxPool2d | nn.AvgPool2d) for m in model.modules())
    ups = [m for m in g.modules() if isinstance(m, nn.ConvTranspose2d)]
    assert [(m.in_channels, m.out_channels, m.stride) for m in ups] == [
        (128, 64, (2, 2)),
        (64, 1, (2, 2)),
    ]
    g_layers = list(g.net)
    assert isinstance(g_layers[-1], nn.Tanh) and isinstance(g_layers[-2], nn.ConvTranspose2d)
    assert sum(isinstance(m, nn.BatchNorm2d) for m in g.modules()) == 2  # all but the output
    assert sum(isinstance(m, nn.ReLU) for m in g.modules()) == 2
    d_layers = list(d.net)
    assert isinstance(d_layers[0], nn.Conv2d) and isinstance(d_layers[1], nn.LeakyReLU)
    assert sum(isinstance(m, nn.BatchNorm2d) for m in d.modules()) == 1  # all but the input
    convs = [m for m in model.modules() if isinstance(m, nn.Conv2d | nn.ConvTranspose2d)]
    weights = torch.cat([m.weight.flatten() for m in convs])
    assert weights.mean().abs() < 0.002 and 0.018 < weights.std() < 0.022  # N(0, 0.02)


def test_building_with_a_seed_is_deterministic() -> None:
    def weights(seed: int) -> list[torch.Tensor]:
        torch.manual_seed(seed)
        spec = DCGANSpec(conditional=True)
        return list(build_model(spec, ModelIO((1, 8, 8), n_classes=10)).state_dict().values())

    assert all(torch.equal(a, b) for a, b in zip(weights(1), weights(1), strict=True))
    assert not all(torch.equal(a, b) for a, b in zip(weights(1), weights(2), strict=True))


@pytest.mark.parametrize(
    ("spec", "io", "message"),
    [
        (GANSpec(), ModelIO((30,)), r"^model.arch: gan generates images .*\[30\]"),
        (DCGANSpec(), ModelIO((4,)), r"^model.arch: dcgan generates images"),
        (
            GANSpec(conditional=True),
            ModelIO((1, 8, 8)),
            r"^model.conditional: needs class labels.*conditional: false",
        ),
        (DCGANSpec(conditional=True), ModelIO((1, 8, 8)), r"^model.conditional: needs class"),
        (
            DCGANSpec(),
            ModelIO((1, 30, 30)),
            r"^model.arch: dcgan's generator .* divisible by 4, got 1×30×30",
        ),
        (
            DCGANSpec(g_channels=[64, 32, 16]),
            ModelIO((1, 28, 28)),
            r"^model.arch: .*3 times.* divisible by 8, got 1×28×28",
        ),
        (
            DCGANSpec(d_channels=[8, 8, 8, 8, 8]),
            ModelIO((1, 8, 8)),
            r"^model.d_channels: 5 stride-2 convs shrink a 8×8 image below 1×1.*at most 3",
        ),
    ],
)
def test_bad_inputs_raise_a_spec_error_naming_the_key(
    spec: GANSpec | DCGANSpec, io: ModelIO, message: str
) -> None:
    with pytest.raises(SpecError, match=message):
        build_model(spec, io)


@pytest.mark.parametrize(
    ("model", "message"),
    [
        ({"arch": "gan", "latent": 0}, "model.latent: must be > 0, got 0"),
        ({"arch": "dcgan", "latent": -3}, "model.latent: must be > 0, got -3"),
        ({"arch": "vae", "latent": 0}, "model.latent: must be > 0, got 0"),
        ({"arch": "autoencoder", "latent": 0}, "model.latent: must be > 0, got 0"),
        ({"arch": "dcgan", "g_channels": []}, "model.g_channels: "),
        ({"arch": "gan", "leaky_slope": 1.5}, "model.leaky_slope: "),
    ],
)
def test_bad_sizes_are_spec_errors_at_validation(model: dict[str, object], message: str) -> None:
    with pytest.raises(SpecError, match=f"^{message}"):
        load_spec(tiny_spec(model=model))


def test_a_deeper_dcgan_fits_32_by_32() -> None:
    spec = DCGANSpec(latent=8, g_channels=[32, 16, 8], d_channels=[8, 16, 32])
    model = build_model(spec, ModelIO((3, 32, 32)))
    assert model.generator(torch.randn(2, 8)).shape == (2, 3, 32, 32)
    first = model.generator.net[0]
    assert isinstance(first, nn.Linear) and first.out_features == 32 * 4 * 4  # starts at H/8
