"""Optimizers and learning-rate schedules, in registries keyed by their spec names."""

from __future__ import annotations

import abc
import math
from collections.abc import Callable, Iterable
from typing import Any

import torch

from canonml.registry import Registry
from canonml.spec.train import OptimizerSpec, ScheduleSpec

OptimizerBuilder = Callable[[OptimizerSpec, Iterable[torch.nn.Parameter]], torch.optim.Optimizer]
OPTIMIZERS: Registry[OptimizerBuilder] = Registry("optimizer", "train.optimizer.name")


@OPTIMIZERS.register("sgd")
def _sgd(spec: OptimizerSpec, params: Iterable[torch.nn.Parameter]) -> torch.optim.Optimizer:
    return torch.optim.SGD(params, lr=spec.lr, weight_decay=spec.weight_decay)


@OPTIMIZERS.register("momentum")
def _momentum(spec: OptimizerSpec, params: Iterable[torch.nn.Parameter]) -> torch.optim.Optimizer:
    return torch.optim.SGD(
        params, lr=spec.lr, momentum=spec.momentum, nesterov=True, weight_decay=spec.weight_decay
    )


@OPTIMIZERS.register("adam")
def _adam(spec: OptimizerSpec, params: Iterable[torch.nn.Parameter]) -> torch.optim.Optimizer:
    return torch.optim.Adam(params, lr=spec.lr, betas=spec.betas, weight_decay=spec.weight_decay)


@OPTIMIZERS.register("adamw")
def _adamw(spec: OptimizerSpec, params: Iterable[torch.nn.Parameter]) -> torch.optim.Optimizer:
    return torch.optim.AdamW(params, lr=spec.lr, betas=spec.betas, weight_decay=spec.weight_decay)


class Schedule:
    """A learning-rate schedule that knows whether it steps per batch or per epoch."""

    def __init__(self, scheduler: Any, per_batch: bool, needs_metric: bool = False) -> None:
        self.scheduler, self.per_batch, self.needs_metric = scheduler, per_batch, needs_metric

    def step_batch(self) -> None:
        if self.scheduler is not None and self.per_batch:
            self.scheduler.step()

    def step_epoch(self, metric: float | None) -> None:
        if self.scheduler is None or self.per_batch:
            return
        if self.needs_metric:
            self.scheduler.step(metric)
        else:
            self.scheduler.step()

    def set_horizon(self, steps: int) -> None:
        """End the decay after ``steps`` optimizer steps instead of the planned ones, where
        the schedule can (``warmup_cosine``, ``warmup_stable_decay``; a time budget moves
        their end: ``TimeBudget``)."""
        for factor in getattr(self.scheduler, "lr_lambdas", []):
            if isinstance(factor, Budgeted):
                factor.total = max(factor.warm + 1, min(factor.planned, steps))

    def state_dict(self) -> dict[str, Any]:
        return self.scheduler.state_dict() if self.scheduler is not None else {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if self.scheduler is not None:
            self.scheduler.load_state_dict(state)


ScheduleBuilder = Callable[[ScheduleSpec, torch.optim.Optimizer, int, int], Schedule]
SCHEDULES: Registry[ScheduleBuilder] = Registry("schedule", "train.schedule.name")


@SCHEDULES.register("none")
def _none(spec: ScheduleSpec, opt: torch.optim.Optimizer, epochs: int, steps: int) -> Schedule:
    return Schedule(None, per_batch=False)


@SCHEDULES.register("step")
def _step(spec: ScheduleSpec, opt: torch.optim.Optimizer, epochs: int, steps: int) -> Schedule:
    return Schedule(torch.optim.lr_scheduler.StepLR(opt, spec.step_size, spec.gamma), False)


@SCHEDULES.register("cosine")
def _cosine(spec: ScheduleSpec, opt: torch.optim.Optimizer, epochs: int, steps: int) -> Schedule:
    return Schedule(torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=epochs), False)


@SCHEDULES.register("onecycle")
def _onecycle(spec: ScheduleSpec, opt: torch.optim.Optimizer, epochs: int, steps: int) -> Schedule:
    max_lr = [group["lr"] for group in opt.param_groups]
    sched = torch.optim.lr_scheduler.OneCycleLR(
        opt, max_lr=max_lr, epochs=epochs, steps_per_epoch=steps, pct_start=spec.warmup
    )
    return Schedule(sched, per_batch=True)


class Budgeted(abc.ABC):
    """A learning-rate factor that rises linearly for ``warm`` steps and reaches 0 at step
    ``total`` (at most the ``planned`` epochs × steps; a time budget can move it earlier:
    ``Schedule.set_horizon``). An object, not a function, so LambdaLR's state dict keeps
    ``total`` across a resume."""

    def __init__(self, warm: int, total: int) -> None:
        self.warm, self.total, self.planned = warm, total, total

    def __call__(self, step: int) -> float:
        if step < self.warm:
            return (step + 1) / self.warm
        return self.after_warmup(step)

    @abc.abstractmethod
    def after_warmup(self, step: int) -> float:
        """The factor at ``step`` once the warm-up is over."""


class WarmupCosine(Budgeted):
    """``warmup_cosine``: then a cosine from 1 to 0."""

    def after_warmup(self, step: int) -> float:
        progress = min(1.0, (step - self.warm) / max(1, self.total - self.warm))
        return 0.5 * (1.0 + math.cos(math.pi * progress))


class WarmupStableDecay(Budgeted):
    """``warmup_stable_decay``: then 1 until the last ``decay`` share of the steps, and a
    straight line to 0 over them (the schedule of budgeted pretraining: most steps at the
    peak rate, a short cool-down at the end)."""

    def __init__(self, warm: int, total: int, decay: float) -> None:
        super().__init__(warm, total)
        self.decay = decay

    def after_warmup(self, step: int) -> float:
        length = max(1, round(self.decay * self.total))
        start = max(self.warm, self.total - length)
        if step < start:
            return 1.0
        return max(0.0, (self.total - step) / max(1, self.total - start))


@SCHEDULES.register("warmup_cosine")
def _warmup_cosine(
    spec: ScheduleSpec, opt: torch.optim.Optimizer, epochs: int, steps: int
) -> Schedule:
    total = max(1, epochs * steps)
    factor = WarmupCosine(int(spec.warmup * total), total)
    return Schedule(torch.optim.lr_scheduler.LambdaLR(opt, factor), per_batch=True)


@SCHEDULES.register("warmup_stable_decay")
def _warmup_stable_decay(
    spec: ScheduleSpec, opt: torch.optim.Optimizer, epochs: int, steps: int
) -> Schedule:
    total = max(1, epochs * steps)
    factor = WarmupStableDecay(int(spec.warmup * total), total, spec.decay)
    return Schedule(torch.optim.lr_scheduler.LambdaLR(opt, factor), per_batch=True)


@SCHEDULES.register("plateau")
def _plateau(spec: ScheduleSpec, opt: torch.optim.Optimizer, epochs: int, steps: int) -> Schedule:
    sched = torch.optim.lr_scheduler.ReduceLROnPlateau(
        opt, mode="min", factor=spec.gamma, patience=spec.patience
    )
    return Schedule(sched, per_batch=False, needs_metric=True)


def build_optimizer(spec: OptimizerSpec, model: torch.nn.Module) -> torch.optim.Optimizer:
    return OPTIMIZERS.get(spec.name)(spec, model.parameters())


def build_schedule(
    spec: ScheduleSpec, opt: torch.optim.Optimizer, epochs: int, steps_per_epoch: int
) -> Schedule:
    return SCHEDULES.get(spec.name)(spec, opt, epochs, steps_per_epoch)
