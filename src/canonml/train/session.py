"""Wire one run's training: step, optimizer, schedule, callbacks, checkpoint, then ``fit``."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import torch
from rich.console import Console

from canonml.data.augment import make_augment
from canonml.data.prepare import Prepared
from canonml.errors import SpecError
from canonml.rundir import RunDir
from canonml.spec.root import Spec
from canonml.tasks.base import Task
from canonml.train.callbacks import Callback, EarlyStopping, HistoryCSV, LRSchedule, TimeBudget
from canonml.train.checkpoint import Checkpointer, restore
from canonml.train.device import check_precision, resolve_device
from canonml.train.distributed import (
    DistributedTraining,
    check_distributed,
    is_distributed,
    is_follower,
    place,
)
from canonml.train.loop import TrainState, fit
from canonml.train.optim import build_schedule
from canonml.train.progress import ProgressReporter
from canonml.train.steps import Step


def train_model(
    spec: Spec,
    task: Task,
    model: torch.nn.Module,
    data: Prepared,
    run_dir: RunDir | None,
    console: Console | None = None,
    wrap: Sequence[Callable[[Step], Callback]] = (),
) -> tuple[list[dict[str, Any]], int | None]:
    """Train ``model`` with ``task``'s step as ``spec.train`` says, resuming from
    ``run_dir``'s last checkpoint.

    Without ``run_dir`` (cross-validation folds) nothing is written; in a distributed run
    only rank 0 writes (the others read ``run_dir``'s checkpoint to resume). ``wrap``:
    training wrappers a driver or stage adds (distillation's teacher), each made from the
    step. Returns the history and the epoch whose weights the model ends with when early
    stopping restored the best.
    """
    cfg = spec.train
    device = place(resolve_device(cfg.device))
    lead = not is_follower()
    model.to(device)
    state = TrainState()
    state.generator.manual_seed(spec.seed)
    step = task.make_step(spec, model, _augment(spec, data, state.generator))
    if cfg.precision == "fp16":
        if not step.scales_gradients:
            raise SpecError(
                "train.precision",
                f"fp16 needs a gradient scaler, which {type(step).__name__} does not apply; "
                "use precision: bf16 or fp32",
            )
        step.scaler = torch.amp.GradScaler(device.type)
    batches = cfg.steps_per_epoch or max(1, math.ceil(len(data.train) / cfg.batch_size))
    # Before the schedules: DP's optimizer.
    wrappers = [*training_wrappers(spec, step, data, run_dir), *(w(step) for w in wrap)]
    schedules = {
        name: build_schedule(cfg.schedule, opt, cfg.epochs, batches)
        for name, opt in step.optimizers.items()
    }
    has_val = len(data.val) > 0
    monitor = "val_loss" if has_val else "train_loss"
    callbacks: list[Callback] = [LRSchedule(schedules, monitor), *wrappers]
    distributed = _distributed(spec, step, device)
    callbacks = distributed + callbacks  # first: the others see the averaged logs
    if cfg.early_stopping is not None:
        callbacks.append(EarlyStopping(cfg.early_stopping, model))
    if cfg.max_minutes is not None:
        callbacks.append(TimeBudget(cfg.max_minutes, schedules, batches, cfg.epochs))
    callbacks += task.callbacks(spec, step, data, run_dir if lead else None)
    if console is not None and lead:
        callbacks.append(ProgressReporter(console, cfg.epochs, batches))
    if run_dir is not None:
        if lead:
            callbacks.append(HistoryCSV(run_dir.history, cfg.checkpoint_interval))
        best_monitor = cfg.early_stopping.monitor if cfg.early_stopping else monitor
        saved = [cb for cb in callbacks if cb.key]
        checkpointer = Checkpointer(
            run_dir.checkpoints,
            step,
            saved,
            best_monitor,
            device,
            write=lead,
            interval=cfg.checkpoint_interval,
        )
        callbacks.append(checkpointer)
        if run_dir.last_checkpoint.is_file():
            restore(run_dir.last_checkpoint, state, callbacks, checkpointer)
    train = task.tensors(data.train)
    val = task.tensors(data.val) if has_val else None
    fit(
        step,
        train,
        val,
        epochs=cfg.epochs,
        batch_size=cfg.batch_size,
        state=state,
        callbacks=callbacks,
        steps_per_epoch=cfg.steps_per_epoch,
        sampler=next((w.sampler for w in [*distributed, *wrappers] if hasattr(w, "sampler")), None),
        precision=cfg.precision,
        device=device,
    )
    model.to("cpu")  # evaluation, stages and the package work on CPU copies
    stopper = next((cb for cb in callbacks if isinstance(cb, EarlyStopping)), None)
    restored = stopper is not None and stopper.spec.restore_best and stopper.best_epoch > 0
    return state.history, (stopper.best_epoch if restored and stopper else None)


def check_wrappers(spec: Spec, data: Prepared) -> None:
    """What training needs of the machine and the data, checked before a run directory
    exists: ``train.device`` is there (and fp16 has CUDA); ``privacy.dp``: δ below 1/N, a
    batch smaller than N; ``--nproc``: what the spec allows."""
    check_precision(spec.train.precision, resolve_device(spec.train.device))
    check_distributed(spec, spec.train.batch_size, len(data.train))
    dp = spec.privacy.dp
    if dp is not None and dp.is_private:
        from canonml.train.privacy import check_private

        check_private(dp, len(data.train), spec.train.batch_size)


def training_wrappers(
    spec: Spec, step: Any, data: Prepared, run_dir: RunDir | None
) -> list[Callback]:
    """The spec's training wrappers around ``step`` (DESIGN §7), as callbacks: today
    ``privacy.dp`` (DP-SGD, which also samples the batches)."""
    dp = spec.privacy.dp
    if dp is None or not dp.is_private:
        return []
    from canonml.train.privacy import PrivateTraining

    cfg = spec.train
    return [
        PrivateTraining(
            dp,
            step,
            len(data.train),
            cfg.batch_size,
            cfg.epochs,
            cfg.steps_per_epoch,
            spec.seed,
            run_dir.path if run_dir is not None else None,
            data.info,
        )
    ]


def _distributed(spec: Spec, step: Step, device: torch.device) -> list[Callback]:
    """DDP (``canon run --nproc``) while a distributed run's process group is up; the model
    a stage trains afterwards (distillation's student, a fold) trains in one process."""
    import torch.distributed as dist

    if not (is_distributed() and dist.is_available() and dist.is_initialized()):
        return []
    cfg = spec.train
    return [DistributedTraining(step, cfg.batch_size, cfg.steps_per_epoch, spec.seed, device)]


def _augment(spec: Spec, data: Prepared, generator: torch.Generator) -> Any:
    aug = spec.data.augment
    if aug is None or data.kind != "image":
        return None
    # The background after preprocessing is where a raw 0 pixel lands: (0 - shift) / scale.
    pre = data.preprocess
    fill = -torch.tensor(pre["shift"]) / torch.tensor(pre["scale"])
    return make_augment(aug, fill.float(), generator)
