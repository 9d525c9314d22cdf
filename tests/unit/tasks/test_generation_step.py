"""The GAN step: two named optimizers, d_steps, one-sided smoothing, the collapse counters;
the generation task's spec rules and signature."""

from __future__ import annotations

import math
from typing import Any

import pytest
import torch

from canonml.errors import SpecError, TrainingDiverged
from canonml.model_io import ModelIO
from canonml.models import build_model
from canonml.spec import load_spec
from canonml.tasks import get_task
from canonml.tasks.adversarial import AdversarialStep, CollapseAlarm
from canonml.train.loop import TrainState, fit
from tests.conftest import tiny_spec

GAN = {"arch": "gan", "latent": 4, "g_hidden": [16], "d_hidden": [16], "d_dropout": 0.0}


def gan_spec(**task: Any) -> Any:
    return load_spec(
        tiny_spec(
            task={"name": "generation", **task},
            data={"source": "sklearn:digits"},
            model=GAN | {"conditional": True},
            train={"epochs": 1, "batch_size": 8, "optimizer": {"lr": 1e-3, "betas": [0.5, 0.99]}},
        )
    )


def make(**task: Any) -> tuple[AdversarialStep, torch.Tensor, torch.Tensor]:
    spec = gan_spec(**task)
    torch.manual_seed(0)
    model: Any = build_model(spec.model, ModelIO((1, 8, 8), 1, 3))
    x = torch.rand(8, 1, 8, 8) * 2 - 1
    return AdversarialStep(model, spec), x, torch.arange(8) % 3


def snapshot(module: torch.nn.Module) -> list[torch.Tensor]:
    return [p.detach().clone() for p in module.parameters()]


def moved(before: list[torch.Tensor], module: torch.nn.Module) -> bool:
    return any(not torch.equal(a, b) for a, b in zip(before, module.parameters(), strict=True))


def test_one_step_updates_both_networks_with_their_own_optimizers() -> None:
    step, x, y = make(d_optimizer={"name": "sgd", "lr": 0.05})
    assert list(step.optimizers) == ["generator", "discriminator"]
    g, d = step.optimizers["generator"], step.optimizers["discriminator"]
    assert isinstance(g, torch.optim.Adam) and g.param_groups[0]["betas"] == (0.5, 0.99)
    assert isinstance(d, torch.optim.SGD) and d.param_groups[0]["lr"] == 0.05
    assert {id(p) for p in g.param_groups[0]["params"]} == {
        id(p) for p in step.gan.generator.parameters()
    }
    gen, disc = snapshot(step.gan.generator), snapshot(step.gan.discriminator)
    loss = step.train_batch(x, y)
    assert loss.ndim == 0 and not loss.requires_grad
    assert moved(gen, step.gan.generator) and moved(disc, step.gan.discriminator)
    assert all(p.requires_grad for p in step.gan.discriminator.parameters())
    logs = step.epoch_logs()
    assert set(logs) == {"g_loss", "d_real", "d_fake"} and all(
        math.isfinite(v) for v in logs.values()
    )
    assert step.epoch_logs() == {}  # the epoch's sums start over


def test_d_steps_updates_the_generator_every_other_batch() -> None:
    step, x, y = make(d_steps=2)
    gen = snapshot(step.gan.generator)
    step.gan.generator.eval()  # batch-norm statistics would move with any forward pass
    step.train_batch(x, y)
    assert not moved(gen, step.gan.generator)
    step.train_batch(x, y)
    assert moved(gen, step.gan.generator)


def test_label_smoothing_is_one_sided_and_evaluate_is_repeatable() -> None:
    plain, smooth = make()[0], make(label_smoothing=0.2)[0]
    assert plain.real_target == 1.0 and smooth.real_target == pytest.approx(0.8)
    step, x, y = make()
    first, again = step.evaluate(x, y), step.evaluate(x, y)
    assert list(first) == ["loss", "g_loss", "d_real", "d_fake"]
    assert first == again  # fixed noise: the same numbers for the same weights
    assert step.gan.training  # evaluate restores train mode


def test_fit_logs_both_learning_rates() -> None:
    step, x, y = make(d_optimizer={"lr": 5e-4})
    state = TrainState()
    fit(step, (x, y), (x, y), epochs=1, batch_size=4, state=state, callbacks=[])
    row = state.history[0]
    assert row["lr"] == 1e-3 and row["lr_discriminator"] == 5e-4
    assert {"train_loss", "train_g_loss", "val_loss", "val_g_loss", "val_d_real"} <= set(row)


def test_a_frozen_generator_stops_the_run_naming_the_epoch() -> None:
    step, x, y = make()
    with torch.no_grad():  # saturate the tanh: every image is the same, the gradient 0
        step.gan.generator.net[-3].bias.fill_(50.0)
    alarm = CollapseAlarm(step, None, "lower train.optimizer.lr, got 0.001")
    state = TrainState()
    with pytest.raises(TrainingDiverged, match=r"collapsed since epoch 1: for \d+ consecutive"):
        fit(
            step,
            (x.repeat(8, 1, 1, 1), y.repeat(8)),
            None,
            epochs=3,
            batch_size=4,
            state=state,
            callbacks=[alarm],
        )
    assert state.epoch == 1 and len(state.history) == 1  # raised at the first epoch's end


def test_a_collapsed_generator_at_the_end_is_refused() -> None:
    step, _, _ = make()
    with torch.no_grad():
        step.gan.generator.net[-3].bias.fill_(50.0)
    with pytest.raises(TrainingDiverged, match="trained generator is collapsed"):
        CollapseAlarm(step, None, "lr").on_train_end(TrainState())


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"data": {"source": "sklearn:iris"}}, "data.source: task generation makes images"),
        (
            {"data": {"source": "sklearn:digits", "preprocess": {"scale": "standard"}}},
            "data.preprocess.scale: task generation trains a tanh generator",
        ),
        (
            {"data": {"source": "sklearn:digits", "augment": {"shift": 1}}},
            "data.augment: ",
        ),
        ({"model": GAN | {"latent": 0}}, "model.latent: must be > 0"),
        ({"train": {"label_smoothing": 0.1}}, "train.label_smoothing: is the classifier's"),
        ({"train": {"regularization": {"l2": 0.1}}}, "train.regularization: a GAN step adds"),
        ({"task": {"name": "generation", "d_steps": 0}}, "task.d_steps: "),
    ],
)
def test_bad_generation_specs_name_the_key(change: dict[str, Any], message: str) -> None:
    spec = tiny_spec(task="generation", data={"source": "sklearn:digits"}, model=GAN) | change
    with pytest.raises(SpecError, match=f"^{message}"):
        load_spec(spec)


def test_scale_defaults_to_minmax_and_the_task_holds_its_options() -> None:
    spec = gan_spec(samples=500)
    assert spec.data.preprocess.scale == "minmax"
    task: Any = get_task(spec)
    assert task.facts.samples == 500 and get_task("generation").facts.samples == 10_000


def test_the_signature_is_the_generators() -> None:
    task = get_task("generation")
    base = {
        "inputs": [{"name": "input", "datatype": "FP32", "shape": [-1, 1, 8, 8]}],
        "outputs": task.outputs_for(["a", "b"], [1, 8, 8]),
        "labels": ["a", "b"],
        "features": ["p"] * 64,
        "image_shape": [1, 8, 8],
    }
    sig = task.signature_for(base, {"model": {"latent": 5, "conditional": True}})
    assert sig["inputs"] == [
        {"name": "noise", "datatype": "FP32", "shape": [-1, 5]},
        {"name": "label", "datatype": "INT64", "shape": [-1], "range": [0, 1]},
    ]
    assert sig["outputs"] == [{"name": "images", "datatype": "FP32", "shape": [-1, 1, 8, 8]}]
    assert len(sig["features"]) == 5
    assert sig["sampler"] | {"inputs": None} == {
        "file": "model.onnx",
        "inputs": None,
        "input": "noise",
        "output": "images",
        "latent": 5,
        "prior": "normal",
        "conditional": True,
        "classes": 2,
    }
    assert sig["sampler"]["inputs"] == {"noise": "noise", "label": "label"}
