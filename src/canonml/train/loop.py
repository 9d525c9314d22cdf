"""``fit``: the one training loop — epochs, shuffled index-sliced batches, callbacks."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

import torch

from canonml.train.callbacks import Callback
from canonml.train.device import autocast
from canonml.train.steps import Step


@dataclass
class TrainState:
    """What a checkpoint must hold to continue exactly where training stopped."""

    epoch: int = 0  # epochs completed
    stop: bool = False  # a callback asked to stop
    history: list[dict[str, float]] = field(default_factory=list)
    generator: torch.Generator = field(default_factory=torch.Generator)


# An epoch's batches as row indices, drawn with the run's generator (DP-SGD: Poisson).
Sampler = Callable[[int, torch.Generator], Iterable[torch.Tensor]]


def batch_slices(
    n: int, batch_size: int, steps_per_epoch: int | None, generator: torch.Generator
) -> Iterator[torch.Tensor]:
    """Consecutive slices of a seeded permutation (several, for ``steps_per_epoch``)."""
    if steps_per_epoch is None:
        perm = torch.randperm(n, generator=generator)
        # A trailing batch of one example breaks batch norm; it is seen next epoch.
        stop = n - 1 if n % batch_size == 1 and n > 1 else n
    else:
        stop = steps_per_epoch * batch_size
        perm = torch.cat([torch.randperm(n, generator=generator) for _ in range(-(-stop // n))])
    for lo in range(0, stop, batch_size):
        yield perm[lo : lo + batch_size]


def fit(
    step: Step,
    train: tuple[torch.Tensor, ...],
    val: tuple[torch.Tensor, ...] | None,
    *,
    epochs: int,
    batch_size: int,
    state: TrainState,
    callbacks: list[Callback],
    steps_per_epoch: int | None = None,
    sampler: Sampler | None = None,
    precision: str = "fp32",
    device: torch.device | None = None,
) -> TrainState:
    """Train ``step.model`` from ``state.epoch`` to ``epochs`` or until a callback stops it.

    Batches are the same slice of every tensor of ``train`` (``(x, y)``, ``(x,)``, ...) by a
    seeded permutation (no DataLoader: for data that fits in memory, index slicing is several
    times cheaper). With ``steps_per_epoch``, an epoch is that many batches from fresh
    permutations (as many as it takes), not one pass. Logs per epoch: ``train_loss``, the
    step's own epoch logs, ``val_*`` from ``step.evaluate``, ``lr`` (and ``lr_<name>`` of
    further optimizers) and ``seconds``. With ``precision`` bf16 each training batch runs
    under ``torch.autocast`` to bfloat16 (fp16 likewise, on CUDA; evaluation stays fp32).
    With ``device``, the splits are moved there once (in-memory data: one copy, no
    per-batch transfer) and the batch indices with them; ``step.model`` must be there
    already.
    """
    device = device or torch.device("cpu")
    if device.type != "cpu":
        train = tuple(t.to(device) for t in train)
        val = None if val is None else tuple(t.to(device) for t in val)
    n = len(train[0])
    on_device, mixed = device.type != "cpu", precision != "fp32"
    # Only callbacks that act per batch are called per batch (a few µs each on small steps).
    per_batch = [cb for cb in callbacks if type(cb).on_batch_end is not Callback.on_batch_end]
    for cb in callbacks:
        cb.on_train_begin(state)
    while state.epoch < epochs and not state.stop:
        start = time.perf_counter()
        for cb in callbacks:
            cb.on_epoch_begin(state)
        step.model.train()
        if sampler is not None:
            batches = sampler(n, state.generator)
        else:
            batches = batch_slices(n, batch_size, steps_per_epoch, state.generator)
        # The batch losses stay tensors (no sync) and are summed once, after the epoch.
        losses: list[torch.Tensor] = []
        sizes: list[int] = []
        for b, idx in enumerate(batches):
            if on_device:
                idx = idx.to(device, non_blocking=True)
            if mixed:
                with autocast(precision, device):
                    loss = step.train_batch(*[t[idx] for t in train])
            else:
                loss = step.train_batch(*[t[idx] for t in train])
            losses.append(loss)
            sizes.append(len(idx))
            for cb in per_batch:
                cb.on_batch_end(state, b, loss)
        seen = sum(sizes)
        total = (
            float(
                torch.stack(losses).double()
                @ torch.tensor(sizes, dtype=torch.float64, device=device)
            )
            if losses
            else 0.0
        )
        logs: dict[str, Any] = {"epoch": state.epoch + 1, "train_loss": total / max(seen, 1)}
        logs.update({f"train_{k}": v for k, v in step.epoch_logs().items()})
        if val is not None and len(val[0]) > 0:
            logs.update({f"val_{k}": v for k, v in step.evaluate(*val).items()})
        for i, (name, optimizer) in enumerate(step.optimizers.items()):
            logs["lr" if i == 0 else f"lr_{name}"] = optimizer.param_groups[0]["lr"]
        logs["seconds"] = time.perf_counter() - start
        state.epoch += 1
        state.history.append(logs)
        for cb in callbacks:
            cb.on_epoch_end(state, logs)
    for cb in callbacks:
        cb.on_train_end(state)
    return state
