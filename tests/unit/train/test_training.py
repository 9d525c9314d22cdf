"""The loop, steps, schedules, early stopping and checkpoints, on tiny in-memory data."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from canonml.errors import CheckpointError, SpecError
from canonml.model_io import ModelIO
from canonml.models import build_model
from canonml.rundir import RunDir
from canonml.spec.model import MLPSpec
from canonml.spec.train import EarlyStoppingSpec, TrainSpec
from canonml.tasks.steps import ClassificationStep, RegressionStep
from canonml.train.callbacks import Callback, EarlyStopping, LRSchedule
from canonml.train.checkpoint import Checkpointer, restore
from canonml.train.loop import TrainState, fit
from canonml.train.optim import SCHEDULES, build_schedule


def blobs(n: int = 120, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    y = torch.randint(0, 3, (n,), generator=g)
    x = torch.randn(n, 4, generator=g) * 0.5 + torch.nn.functional.one_hot(y, 4).float() * 2
    return x, y


def setup(
    spec: TrainSpec, seed: int = 0
) -> tuple[torch.nn.Module, ClassificationStep, list[Callback]]:
    torch.manual_seed(seed)
    model = build_model(MLPSpec(hidden=[16], dropout=0.2), ModelIO((4,), 3))
    step = ClassificationStep(model, spec)
    sched = build_schedule(spec.schedule, step.optimizer, spec.epochs, 8)
    cbs: list[Callback] = [LRSchedule({"optimizer": sched}, "val_loss")]
    if spec.early_stopping:
        cbs.append(EarlyStopping(spec.early_stopping, model))
    return model, step, cbs


def train(spec: TrainSpec, seed: int = 0) -> tuple[torch.nn.Module, TrainState]:
    model, step, cbs = setup(spec, seed)
    state = TrainState()
    state.generator.manual_seed(seed)
    x, y = blobs()
    fit(
        step,
        (x[:96], y[:96]),
        (x[96:], y[96:]),
        epochs=spec.epochs,
        batch_size=16,
        state=state,
        callbacks=cbs,
    )
    return model, state


def test_loss_falls_and_history_has_one_row_per_epoch() -> None:
    _, state = train(TrainSpec(epochs=15, optimizer={"lr": 0.01}))
    assert [row["epoch"] for row in state.history] == list(range(1, 16))
    assert state.history[-1]["train_loss"] < state.history[0]["train_loss"] * 0.5
    assert state.history[-1]["val_accuracy"] > 0.9
    assert {"train_loss", "val_loss", "val_accuracy", "lr", "seconds"} <= set(state.history[0])


def test_same_seed_same_weights_other_seed_different() -> None:
    spec = TrainSpec(epochs=3)
    a, _ = train(spec, 1)
    b, _ = train(spec, 1)
    c, _ = train(spec, 2)
    for pa, pb in zip(a.state_dict().values(), b.state_dict().values(), strict=True):
        assert torch.equal(pa, pb)
    assert not all(
        torch.equal(pa, pc)
        for pa, pc in zip(a.state_dict().values(), c.state_dict().values(), strict=True)
    )


@pytest.mark.parametrize("name", SCHEDULES.names())
def test_every_schedule_trains_and_changes_lr_as_designed(name: str) -> None:
    spec = TrainSpec(
        epochs=6, optimizer={"lr": 0.1}, schedule={"name": name, "step_size": 2, "patience": 0}
    )
    _, state = train(spec)
    lrs = [row["lr"] for row in state.history]
    if name == "none":
        assert set(lrs) == {0.1}
    elif name == "step":
        assert lrs[:4] == pytest.approx([0.1, 0.1, 0.01, 0.01])
    elif name == "cosine":
        assert lrs == sorted(lrs, reverse=True) and lrs[-1] < 0.1
    elif name == "onecycle":
        assert max(lrs) > lrs[0] and lrs[-1] < max(lrs)
    elif name == "warmup_cosine":  # the peak is the configured lr, then a decay
        assert max(lrs) == pytest.approx(0.1, rel=0.05) and lrs[-1] < max(lrs) / 2
    else:
        assert min(lrs) <= 0.1


def test_early_stopping_stops_and_restores_best() -> None:
    spec = TrainSpec(
        epochs=200,
        optimizer={"lr": 0.05},
        early_stopping=EarlyStoppingSpec(monitor="val_loss", patience=3),
    )
    model, state = train(spec)
    assert len(state.history) < 200
    best = min(row["val_loss"] for row in state.history)
    x, y = blobs()
    step = ClassificationStep(model, spec)
    assert step.evaluate(x[96:], y[96:])["loss"] == pytest.approx(best, rel=1e-5)


def test_early_stopping_on_unlogged_metric_names_the_spec_path() -> None:
    spec = TrainSpec(epochs=3, early_stopping=EarlyStoppingSpec(monitor="val_f1"))
    with pytest.raises(SpecError, match="train.early_stopping.monitor: 'val_f1' is not logged"):
        train(spec)


def test_l1_l2_and_clipping_shrink_weights() -> None:
    plain, _ = train(TrainSpec(epochs=10, optimizer={"lr": 0.01}))
    reg, _ = train(
        TrainSpec(
            epochs=10,
            optimizer={"lr": 0.01},
            grad_clip=1.0,
            regularization={"l1": 1e-3, "l2": 1e-2},
        )
    )
    norm = lambda m: sum(float(p.detach().abs().sum()) for p in m.parameters() if p.ndim > 1)  # noqa: E731
    assert norm(reg) < norm(plain)


def test_regression_step_fits_a_line() -> None:
    torch.manual_seed(0)
    x = torch.linspace(-1, 1, 64).unsqueeze(1)
    y = 3 * x.squeeze(1) + 1
    model = build_model(MLPSpec(hidden=[]), ModelIO((1,), 1))
    spec = TrainSpec(epochs=150, optimizer={"lr": 0.05})
    step = RegressionStep(model, spec)
    state = TrainState()
    fit(step, (x, y), (x, y), epochs=150, batch_size=16, state=state, callbacks=[])
    assert state.history[-1]["val_mae"] < 0.05


def _checkpointed(
    tmp_path: Path, epochs: int, spec: TrainSpec
) -> tuple[torch.nn.Module, TrainState]:
    run = RunDir(tmp_path)
    run.checkpoints.mkdir(exist_ok=True)
    model, step, cbs = setup(spec)
    ckpt = Checkpointer(run.checkpoints, step, cbs[:], "val_loss")
    cbs.append(ckpt)
    state = TrainState()
    state.generator.manual_seed(0)
    if run.last_checkpoint.is_file():
        restore(run.last_checkpoint, state, cbs, ckpt)
    x, y = blobs()
    fit(
        step,
        (x[:96], y[:96]),
        (x[96:], y[96:]),
        epochs=epochs,
        batch_size=16,
        state=state,
        callbacks=cbs,
    )
    return model, state


def test_resume_from_checkpoint_equals_uninterrupted(tmp_path: Path) -> None:
    spec = TrainSpec(
        epochs=6, schedule={"name": "onecycle"}, early_stopping=EarlyStoppingSpec(patience=50)
    )
    whole, whole_state = train(spec)
    _checkpointed(tmp_path, 3, spec)  # "interrupted" after 3 epochs
    assert (tmp_path / "checkpoints" / "best.safetensors").is_file()
    resumed, state = _checkpointed(tmp_path, 6, spec)
    assert [r["val_loss"] for r in state.history] == [r["val_loss"] for r in whole_state.history]
    for a, b in zip(whole.state_dict().values(), resumed.state_dict().values(), strict=True):
        assert torch.equal(a, b)


def test_corrupt_checkpoint_is_a_clear_error(tmp_path: Path) -> None:
    (tmp_path / "checkpoints").mkdir()
    (tmp_path / "checkpoints" / "last.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError, match="last.pt: corrupt or not a checkpoint"):
        _checkpointed(tmp_path, 2, TrainSpec(epochs=2))
