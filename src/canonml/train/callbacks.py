"""Callbacks: the pieces of training that are not the loop (schedules, early stopping, files).

A callback whose state must survive a restart implements ``state_dict``/``load_state_dict``;
the checkpoint stores them by ``key``.
"""

from __future__ import annotations

import copy
import csv
import io
import math
import statistics
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from canonml.errors import SpecError
from canonml.io import atomic_write
from canonml.spec.train import EarlyStoppingSpec
from canonml.train.optim import Schedule

if TYPE_CHECKING:
    from canonml.train.loop import TrainState

MAXIMISED = ("accuracy", "f1", "auc", "r2", "precision", "recall")


class Callback:
    key = ""

    def on_train_begin(self, state: TrainState) -> None: ...
    def on_epoch_begin(self, state: TrainState) -> None: ...
    def on_batch_end(self, state: TrainState, batch: int, loss: torch.Tensor) -> None: ...
    def on_epoch_end(self, state: TrainState, logs: dict[str, Any]) -> None: ...
    def on_train_end(self, state: TrainState) -> None: ...

    def state_dict(self) -> dict[str, Any]:
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None: ...


def is_maximised(monitor: str, mode: str = "auto") -> bool:
    if mode != "auto":
        return mode == "max"
    return any(word in monitor for word in MAXIMISED)


def monitored(logs: dict[str, Any], monitor: str, path: str) -> float:
    if monitor not in logs:
        known = ", ".join(k for k in logs if k not in ("epoch", "seconds", "lr"))
        raise SpecError(path, f"'{monitor}' is not logged during training; logged: {known}")
    return float(logs[monitor])


class Improvement:
    """Tracks the best value of a monitored log."""

    def __init__(self, maximise: bool, min_delta: float = 0.0) -> None:
        self.maximise, self.min_delta = maximise, min_delta
        self.best = -math.inf if maximise else math.inf

    def update(self, value: float) -> bool:
        better = (
            (value > self.best + self.min_delta)
            if self.maximise
            else (value < self.best - self.min_delta)
        )
        if better:
            self.best = value
        return better


class LRSchedule(Callback):
    """Steps one schedule per optimizer (per batch or per epoch, as each schedule says)."""

    key = "schedule"

    def __init__(self, schedules: dict[str, Schedule], monitor: str) -> None:
        self.schedules, self.monitor = schedules, monitor

    def on_batch_end(self, state: TrainState, batch: int, loss: torch.Tensor) -> None:
        for schedule in self.schedules.values():
            schedule.step_batch()

    def on_epoch_end(self, state: TrainState, logs: dict[str, Any]) -> None:
        needs = any(s.needs_metric for s in self.schedules.values())
        metric = monitored(logs, self.monitor, "train.schedule") if needs else None
        for schedule in self.schedules.values():
            schedule.step_epoch(metric if schedule.needs_metric else None)

    def state_dict(self) -> dict[str, Any]:
        return {name: s.state_dict() for name, s in self.schedules.items()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        for name, schedule in self.schedules.items():
            schedule.load_state_dict(state[name])


class EarlyStopping(Callback):
    """Stop after ``patience`` epochs without improvement; optionally restore the best weights."""

    key = "early_stopping"

    def __init__(self, spec: EarlyStoppingSpec, model: torch.nn.Module) -> None:
        self.spec, self.model = spec, model
        self.track = Improvement(is_maximised(spec.monitor, spec.mode), spec.min_delta)
        self.wait, self.best_epoch = 0, 0
        self.best_weights: dict[str, torch.Tensor] | None = None

    def on_epoch_end(self, state: TrainState, logs: dict[str, Any]) -> None:
        value = monitored(logs, self.spec.monitor, "train.early_stopping.monitor")
        if self.track.update(value):
            self.wait, self.best_epoch = 0, state.epoch
            self.best_weights = copy.deepcopy(self.model.state_dict())
        else:
            self.wait += 1
            state.stop = state.stop or self.wait >= self.spec.patience

    def on_train_end(self, state: TrainState) -> None:
        if self.spec.restore_best and self.best_weights is not None:
            self.model.load_state_dict(self.best_weights)

    def state_dict(self) -> dict[str, Any]:
        return {
            "best": self.track.best,
            "wait": self.wait,
            "best_epoch": self.best_epoch,
            "best_weights": self.best_weights,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.track.best, self.wait = state["best"], state["wait"]
        self.best_epoch, self.best_weights = state["best_epoch"], state["best_weights"]


class TimeBudget(Callback):
    """Stop at the end of the epoch in which ``minutes`` of training have passed (the
    epochs' ``seconds`` summed over the history, so a resumed run keeps its budget).

    After each epoch the budget's end is projected from the median epoch time so far (the
    epoch in which it passes is the last), and each schedule that can (``warmup_cosine``)
    is told to end its decay there: a run cut short by its budget still anneals, instead of
    stopping at a high learning rate in the middle of a cosine planned for ``epochs``.

    The budget makes a run's length depend on the machine's speed: the same spec and seed
    give the same metrics only where the same number of epochs fits.
    """

    def __init__(
        self,
        minutes: float,
        schedules: dict[str, Schedule] | None = None,
        steps_per_epoch: int = 1,
        epochs: int = 1,
    ) -> None:
        self.seconds = 60.0 * minutes
        self.schedules = schedules or {}
        self.steps_per_epoch, self.epochs = steps_per_epoch, epochs

    def on_epoch_end(self, state: TrainState, logs: dict[str, Any]) -> None:
        spent = sum(float(row.get("seconds", 0.0)) for row in state.history)
        state.stop = state.stop or spent >= self.seconds
        done = len(state.history)
        if state.stop or not done or spent <= 0.0:
            return
        # The median epoch: one slowed by a burst of other work does not cut the plan short.
        typical = statistics.median(float(row.get("seconds", 0.0)) for row in state.history)
        more = math.ceil((self.seconds - spent) / max(typical, 1e-9))
        horizon = min(self.epochs, done + max(1, more)) * self.steps_per_epoch
        for schedule in self.schedules.values():
            schedule.set_horizon(horizon)


class Every:
    """``due`` once ``seconds`` have passed since training began or the last ``reset``
    (always, for 0): how often a run writes its per-epoch files (``train.checkpoint_interval``)."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.last = time.monotonic()

    def due(self) -> bool:
        return self.seconds == 0 or time.monotonic() - self.last >= self.seconds

    def reset(self) -> None:
        self.last = time.monotonic()


class HistoryCSV(Callback):
    """Rewrites ``history.csv`` (one row per epoch) atomically after an epoch that ends
    ``interval`` seconds or more after the last write (0: every epoch), and at the end."""

    def __init__(self, path: Path, interval: float = 0.0) -> None:
        self.path, self.gate, self.written = path, Every(interval), -1

    def on_train_begin(self, state: TrainState) -> None:
        self.gate.reset()

    def on_epoch_end(self, state: TrainState, logs: dict[str, Any]) -> None:
        if self.gate.due():
            self.save(state)

    def on_train_end(self, state: TrainState) -> None:
        if self.written != state.epoch:
            self.save(state)

    def save(self, state: TrainState) -> None:
        write_history(self.path, state.history)
        self.written = state.epoch
        self.gate.reset()


def write_history(path: Path, rows: list[dict[str, Any]]) -> None:
    """The rows as CSV: every key a column, in order of appearance, ``seconds`` last."""
    columns: list[str] = []
    for row in rows:
        columns += [k for k in row if k not in columns]
    # seconds last: it is the one column that differs between identical runs.
    columns = [c for c in columns if c != "seconds"] + (["seconds"] if "seconds" in columns else [])
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=columns, lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: (f"{v:.6g}" if isinstance(v, float) else v) for k, v in row.items()})
    atomic_write(path, buf.getvalue())
