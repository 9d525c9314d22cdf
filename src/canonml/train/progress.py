"""Progress: a rich bar (epoch, batch, loss, ETA) on a terminal, plain epoch lines otherwise."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

import torch
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from canonml.train.callbacks import Callback

if TYPE_CHECKING:
    from canonml.train.loop import TrainState

REFRESH_SECONDS = 0.1  # reading the loss forces no sync on CPU, but rendering costs time


class ProgressReporter(Callback):
    def __init__(self, console: Console, epochs: int, batches: int) -> None:
        self.console, self.epochs, self.batches = console, epochs, batches
        self.live = console.is_terminal
        self._bar: Progress | None = None
        self._last = 0.0

    def on_train_begin(self, state: TrainState) -> None:
        if not self.live:
            return
        self._bar = Progress(
            TextColumn("epoch {task.fields[epoch]}/{task.fields[epochs]}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("loss {task.fields[loss]}"),
            TimeElapsedColumn(),
            TextColumn("ETA"),
            TimeRemainingColumn(),
            console=self.console,
            transient=True,
        )
        self._bar.start()
        self._epoch_task = self._bar.add_task(
            "epoch", total=self.batches, epoch=state.epoch + 1, epochs=self.epochs, loss="-"
        )
        self._all = self._bar.add_task(
            "all",
            total=self.epochs,
            completed=state.epoch,
            epoch="all",
            epochs=self.epochs,
            loss="",
        )

    def on_epoch_begin(self, state: TrainState) -> None:
        if self._bar is not None:
            self._bar.reset(self._epoch_task, total=self.batches, epoch=state.epoch + 1)

    def on_batch_end(self, state: TrainState, batch: int, loss: torch.Tensor) -> None:
        now = time.perf_counter()
        if self._bar is not None and now - self._last > REFRESH_SECONDS:
            self._last = now
            self._bar.update(self._epoch_task, completed=batch + 1, loss=f"{float(loss):.4f}")

    def on_epoch_end(self, state: TrainState, logs: dict[str, Any]) -> None:
        if self._bar is not None:
            self._bar.update(self._all, completed=state.epoch)
            return
        shown = "  ".join(f"{k} {v:.4g}" for k, v in logs.items() if k not in ("epoch", "seconds"))
        self.console.print(
            f"epoch {state.epoch}/{self.epochs}  {shown}  ({logs['seconds']:.2f}s)", highlight=False
        )

    def on_train_end(self, state: TrainState) -> None:
        if self._bar is not None:
            self._bar.stop()
            self._bar = None
