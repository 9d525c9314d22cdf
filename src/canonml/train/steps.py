"""Steps: the model-specific part of training (forward, loss, backward, update).

``fit`` knows nothing about tasks; a step (made by the task, ``canonml.tasks``) turns a
batch into a loss and optimizer updates, and a whole split into validation logs.
"""

from __future__ import annotations

import abc
import contextlib
from collections.abc import Callable

import torch
from torch import nn

from canonml.spec.train import TrainSpec

Augment = Callable[[torch.Tensor], torch.Tensor]
EVAL_BATCH = 4096


class Step(abc.ABC):
    """One training update and one evaluation pass, over ``model`` and its optimizers.

    ``model`` is one module (a GAN's holds its generator and discriminator); ``optimizers``
    are named (one per part that is updated on its own). Checkpoints, schedules and the
    learning-rate log go over them; ``fit`` only slices batches and calls the step.
    """

    model: nn.Module
    optimizers: dict[str, torch.optim.Optimizer]
    # fp16 training needs a gradient scaler around backward and the update; a step that
    # applies ``scaler`` says so (the others refuse ``train.precision: fp16``).
    scales_gradients: bool = False
    scaler: torch.amp.GradScaler | None = None

    @abc.abstractmethod
    def train_batch(self, *batch: torch.Tensor) -> torch.Tensor:
        """One update on a batch (a slice of each training tensor); the batch's mean loss,
        detached (no sync)."""

    @abc.abstractmethod
    def evaluate(self, *split: torch.Tensor) -> dict[str, float]:
        """Mean loss and metrics over a whole split, in eval mode (logged as ``val_*``)."""

    def epoch_logs(self) -> dict[str, float]:
        """Training logs of the epoch beyond the mean loss (e.g. a GAN's two losses)."""
        return {}


class SupervisedStep(Step):
    """A model mapping ``x`` to outputs scored against ``y``: one optimizer from
    ``train.optimizer``, L1/L2 penalties, gradient clipping. Subclasses define ``loss`` and
    ``batch_metrics``."""

    scales_gradients = True

    def __init__(self, model: nn.Module, spec: TrainSpec, augment: Augment | None = None) -> None:
        from canonml.train.optim import build_optimizer

        self.model, self.spec, self.augment = model, spec, augment
        self.optimizer = build_optimizer(spec.optimizer, model)
        self.optimizers = {"optimizer": self.optimizer}
        # Explicit L1/L2 penalties apply to weights, not biases or norm parameters.
        self._penalised = [p for n, p in model.named_parameters() if p.ndim > 1]
        reg = spec.regularization
        self._has_penalty = reg.l1 > 0 or reg.l2 > 0

    @abc.abstractmethod
    def loss(self, out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """The task's training loss of a batch (mean over examples)."""

    def batch_metrics(self, out: torch.Tensor, y: torch.Tensor) -> dict[str, torch.Tensor]:
        """Per-batch sums of extra validation metrics (divided by N over the split)."""
        return {}

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """The model's outputs for a batch of inputs (a step may trim or mask them first)."""
        return self.model(x)

    def training_loss(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """What a training batch minimises (a step may add an auxiliary loss)."""
        return self.loss(self.forward(x), y)

    def train_batch(self, *batch: torch.Tensor) -> torch.Tensor:
        x, y = batch
        if self.augment is not None:
            x = self.augment(x)
        self.optimizer.zero_grad(set_to_none=True)
        parts = self.spec.grad_accum
        if parts == 1:
            loss = self.training_loss(x, y)
            self._backward(loss + self._penalty() if self._has_penalty else loss)
        else:  # micro-batches: each one's mean loss weighted by its share of the batch
            loss = torch.zeros((), device=x.device)
            micro = [
                (xb, yb)
                for xb, yb in zip(x.tensor_split(parts), y.tensor_split(parts), strict=True)
                if len(xb) > 0
            ]
            # Under DDP only the last backward averages gradients across processes.
            defer = getattr(self.model, "no_sync", contextlib.nullcontext)
            for i, (xb, yb) in enumerate(micro):
                last = i == len(micro) - 1
                with contextlib.nullcontext() if last else defer():
                    part = self.training_loss(xb, yb) * (len(xb) / len(x))
                    penalty = self._penalty() if last and self._has_penalty else 0.0
                    self._backward(part + penalty)
                loss = loss + part.detach()
        if self.scaler is not None:
            self.scaler.unscale_(self.optimizer)  # clip the true gradients
        if self.spec.grad_clip is not None:
            nn.utils.clip_grad_norm_(self.model.parameters(), self.spec.grad_clip)
        if self.scaler is not None:
            self.scaler.step(self.optimizer)  # skipped when a gradient overflowed
            self.scaler.update()
        else:
            self.optimizer.step()
        return loss.detach()

    def _backward(self, loss: torch.Tensor) -> None:
        (loss if self.scaler is None else self.scaler.scale(loss)).backward()

    def _penalty(self) -> torch.Tensor:
        reg = self.spec.regularization
        total = torch.zeros((), device=self._penalised[0].device if self._penalised else None)
        for p in self._penalised:
            if reg.l1 > 0:
                total = total + reg.l1 * p.abs().sum()
            if reg.l2 > 0:
                total = total + reg.l2 * p.pow(2).sum()
        return total

    @torch.no_grad()
    def evaluate(self, *split: torch.Tensor) -> dict[str, float]:
        x, y = split
        was_training = self.model.training
        self.model.eval()
        sums: dict[str, torch.Tensor] = {}
        for start in range(0, len(x), EVAL_BATCH):
            xb, yb = x[start : start + EVAL_BATCH], y[start : start + EVAL_BATCH]
            out = self.forward(xb)
            logs = {"loss": self.loss(out, yb) * len(xb), **self.batch_metrics(out, yb)}
            for k, v in logs.items():
                sums[k] = sums.get(k, torch.zeros((), device=v.device)) + v
        self.model.train(was_training)
        return {k: float(v) / max(len(x), 1) for k, v in sums.items()}
