"""Checkpoints: the whole training state after each epoch, written atomically.

``last.pt`` holds the model, the step's optimizers by name, callbacks (schedules, early
stopping), RNG states, epoch and history; it contains tensors and plain containers only and
is read with ``torch.load(weights_only=True)``. ``best.safetensors`` holds the best weights so far.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import torch

from canonml.errors import CheckpointError
from canonml.io import atomic_write
from canonml.models.weights import weights_bytes
from canonml.train.callbacks import Callback, Every, Improvement, is_maximised
from canonml.train.device import rng_states, set_rng_states
from canonml.train.loop import TrainState
from canonml.train.steps import Step

FORMAT = 2  # 2: optimizers by name (a step may have several)


class Checkpointer(Callback):
    """Saves ``last.pt`` (and ``best.safetensors``, the weights of the epoch ``monitor`` was
    best at) after an epoch that ends ``interval`` seconds or more after the last save (0:
    every epoch; ``train.checkpoint_interval``), and after the last epoch. Epochs of a few
    milliseconds are not each followed by a checkpoint that costs more than they do; a
    crash loses at most ``interval`` seconds and the epoch in progress, and resuming is
    exact from any epoch."""

    def __init__(
        self,
        directory: Path,
        step: Step,
        callbacks: list[Callback],
        monitor: str,
        device: torch.device | None = None,
        write: bool = True,
        interval: float = 0.0,
    ) -> None:
        self.write = write  # False: a distributed run's other ranks (they only restore)
        self.gate = Every(interval)
        self.saved_epoch = -1  # the epoch of the last checkpoint written (-1: none yet)
        self.best: dict[str, torch.Tensor] | None = None  # improved weights not yet written
        self.dir, self.model, self.optimizers = directory, step.model, step.optimizers
        self.device = device or torch.device("cpu")
        self.scaler = step.scaler
        self.callbacks, self.monitor = callbacks, monitor
        self.track = Improvement(is_maximised(monitor))
        spec = directory.parent / "spec.yaml"  # the run's resolved spec, for the metadata
        self.spec_yaml = spec.read_bytes() if spec.is_file() else None

    def on_epoch_end(self, state: TrainState, logs: dict[str, Any]) -> None:
        if self.monitor in logs and self.track.update(float(logs[self.monitor])):
            # The best weights as they are now; written with the next checkpoint.
            self.best = _cpu(self.model.state_dict())
        if self.gate.due():
            self.save(state)

    def on_train_begin(self, state: TrainState) -> None:
        self.gate.reset()

    def on_train_end(self, state: TrainState) -> None:
        if state.epoch != self.saved_epoch:
            self.save(state)

    def save(self, state: TrainState) -> None:
        """Write ``best.safetensors`` (when it improved) and ``last.pt`` now."""
        self.saved_epoch = state.epoch
        self.gate.reset()
        if not self.write:
            return
        if self.best is not None:
            atomic_write(self.dir / "best.safetensors", weights_bytes(self.best, self.spec_yaml))
            self.best = None
        payload = {
            "format": FORMAT,
            "epoch": state.epoch,
            "stop": state.stop,
            "history": state.history,
            "model": _cpu(self.model.state_dict()),
            "optimizers": {name: _cpu(opt.state_dict()) for name, opt in self.optimizers.items()},
            "scaler": self.scaler.state_dict() if self.scaler is not None else {},
            "callbacks": {cb.key: cb.state_dict() for cb in self.callbacks if cb.key},
            "best": self.track.best,
            "rng": {
                "torch": torch.get_rng_state(),
                "generator": state.generator.get_state(),
                **rng_states(self.device),
            },
        }
        buf = io.BytesIO()
        torch.save(payload, buf)
        atomic_write(self.dir / "last.pt", buf.getvalue())


def restore(
    path: Path, state: TrainState, callbacks: list[Callback], checkpointer: Checkpointer
) -> None:
    """Load ``last.pt`` into the live objects so ``fit`` continues at the next epoch."""
    try:
        # On the CPU first: a checkpoint from a GPU loads anywhere; load_state_dict then
        # copies into the live modules and optimizers wherever they are.
        payload = torch.load(path, weights_only=True, map_location="cpu")
        if payload.get("format") != FORMAT:
            raise ValueError(f"format {payload.get('format')!r}, expected {FORMAT}")
        checkpointer.model.load_state_dict(payload["model"])
        for name, optimizer in checkpointer.optimizers.items():
            optimizer.load_state_dict(payload["optimizers"][name])
        for cb in callbacks:
            if cb.key:
                cb.load_state_dict(payload["callbacks"][cb.key])
        if checkpointer.scaler is not None and payload.get("scaler"):
            checkpointer.scaler.load_state_dict(payload["scaler"])
        torch.set_rng_state(payload["rng"]["torch"])
        set_rng_states(payload["rng"], checkpointer.device)
        state.generator.set_state(payload["rng"]["generator"])
    except Exception as e:  # any failure here means the file cannot be used
        raise CheckpointError(
            f"{path}: corrupt or not a checkpoint of this run ({type(e).__name__}: "
            f"{str(e).splitlines()[0] if str(e) else ''}); delete it to start the run over"
        ) from None
    state.epoch, state.stop, state.history = payload["epoch"], payload["stop"], payload["history"]
    checkpointer.track.best = payload["best"]


def _cpu(tree: Any) -> Any:
    """``tree`` with every tensor copied to the CPU (a checkpoint is device-independent),
    and every container copied: nothing in it changes after the call."""
    if isinstance(tree, torch.Tensor):
        return tree.detach().to("cpu", copy=True)
    if isinstance(tree, dict):
        return {k: _cpu(v) for k, v in tree.items()}
    if isinstance(tree, list | tuple):
        return type(tree)(_cpu(v) for v in tree)
    return tree
