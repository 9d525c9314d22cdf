"""Training by steps, by a time budget, with gradient accumulation and warm-up + cosine."""

from __future__ import annotations

import math

import pytest
import torch

from canonml.model_io import ModelIO
from canonml.models import build_model
from canonml.spec.model import MLPSpec
from canonml.spec.train import ScheduleSpec, TrainSpec
from canonml.tasks.steps import ClassificationStep
from canonml.train.callbacks import Callback, TimeBudget
from canonml.train.loop import TrainState, fit
from canonml.train.optim import build_schedule
from tests.unit.train.test_training import blobs


def _model(seed: int = 0) -> torch.nn.Module:
    torch.manual_seed(seed)
    return build_model(MLPSpec(hidden=[16]), ModelIO((4,), 3))


class CountBatches(Callback):
    def __init__(self) -> None:
        self.per_epoch: list[int] = []

    def on_epoch_begin(self, state: TrainState) -> None:
        self.per_epoch.append(0)

    def on_batch_end(self, state: TrainState, batch: int, loss: torch.Tensor) -> None:
        self.per_epoch[-1] += 1


@pytest.mark.parametrize("steps", [3, 20])  # fewer batches than one pass, and more
def test_an_epoch_is_steps_per_epoch_batches(steps: int) -> None:
    x, y = blobs()
    counter, state = CountBatches(), TrainState()
    step = ClassificationStep(_model(), TrainSpec())
    fit(
        step,
        (x, y),
        None,
        epochs=2,
        batch_size=16,
        state=state,
        callbacks=[counter],
        steps_per_epoch=steps,
    )
    assert counter.per_epoch == [steps, steps]
    assert len(state.history) == 2


def test_gradient_accumulation_makes_the_whole_batchs_update() -> None:
    x, y = blobs(32)
    weights = []
    for parts in (1, 4):
        model = _model()
        step = ClassificationStep(model, TrainSpec(grad_accum=parts))
        step.train_batch(x, y)
        weights.append(torch.cat([p.detach().flatten() for p in model.parameters()]))
    assert torch.allclose(weights[0], weights[1], atol=1e-6)


def test_the_time_budget_stops_after_the_epoch_that_spends_it() -> None:
    budget = TimeBudget(minutes=1.0)
    state = TrainState()
    for seconds in (25.0, 25.0, 25.0, 25.0):
        state.history.append({"seconds": seconds})
        budget.on_epoch_end(state, state.history[-1])
        if state.stop:
            break
    assert state.stop and len(state.history) == 3  # 75 s ≥ 60 s after the third


def _rates(spec: ScheduleSpec, epochs: int = 10, steps: int = 10) -> list[float]:
    """The learning rate at each of ``epochs × steps`` steps of ``spec`` (peak 1)."""
    opt = torch.optim.SGD(_model().parameters(), lr=1.0)
    sched = build_schedule(spec, opt, epochs, steps)
    lrs = []
    for _ in range(epochs * steps):
        lrs.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step_batch()
    return lrs


def test_warmup_cosine_rises_linearly_then_decays_to_zero() -> None:
    lrs = _rates(ScheduleSpec(name="warmup_cosine", warmup=0.1))
    assert lrs[:10] == pytest.approx([(i + 1) / 10 for i in range(10)])
    assert lrs[10] == pytest.approx(1.0) and lrs[55] == pytest.approx(
        0.5 * (1 + math.cos(math.pi * 45 / 90))
    )
    assert lrs[-1] < 0.01 and all(a >= b for a, b in zip(lrs[10:], lrs[11:], strict=False))


def test_a_time_budget_ends_the_cosine_where_it_ends_the_run() -> None:
    model = _model()
    opt = torch.optim.SGD(model.parameters(), lr=1.0)
    sched = build_schedule(ScheduleSpec(name="warmup_cosine", warmup=0.1), opt, 20, 10)
    budget, state, lrs = TimeBudget(1.0, {"model": sched}, 10, 20), TrainState(), []
    while not state.stop:  # 20 epochs planned; 25 s each: the third spends the minute
        for _ in range(10):
            lrs.append(opt.param_groups[0]["lr"])
            opt.step()
            sched.step_batch()
        state.history.append({"seconds": 25.0})
        budget.on_epoch_end(state, state.history[-1])
    assert len(state.history) == 3 and lrs[-1] < 0.05  # annealed, not 97% of the peak
    saved = sched.state_dict()
    again = build_schedule(ScheduleSpec(name="warmup_cosine", warmup=0.1), opt, 20, 10)
    again.load_state_dict(saved)  # a resumed run keeps the moved end
    assert again.scheduler.lr_lambdas[0].total == 30


def test_warmup_stable_decay_holds_the_peak_then_cools_down_linearly() -> None:
    lrs = _rates(ScheduleSpec(name="warmup_stable_decay", warmup=0.1, decay=0.2))
    assert lrs[:10] == pytest.approx([(i + 1) / 10 for i in range(10)])
    assert lrs[10:80] == pytest.approx([1.0] * 70)  # the peak until the last 20 steps
    assert lrs[80:] == pytest.approx([(100 - s) / 20 for s in range(80, 100)])
