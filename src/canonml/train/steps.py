"""Per-task steps: the model-specific part of training (forward, loss, backward, update).

``fit`` knows nothing about tasks; a step turns a batch into a loss and an optimizer update,
and a whole split into validation logs.
"""

from __future__ import annotations

import abc
from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from canonml.registry import Registry
from canonml.spec.train import TrainSpec

Augment = Callable[[torch.Tensor], torch.Tensor]
EVAL_BATCH = 4096


class Step(abc.ABC):
    """Shared mechanics; subclasses define ``loss`` and ``batch_metrics``."""

    def __init__(
        self,
        model: nn.Module,
        optimizer: torch.optim.Optimizer,
        spec: TrainSpec,
        augment: Augment | None = None,
    ) -> None:
        self.model, self.optimizer, self.spec, self.augment = model, optimizer, spec, augment
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

    def train_batch(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """One update; returns the batch's mean loss (detached, no sync)."""
        if self.augment is not None:
            x = self.augment(x)
        out = self.model(x)
        loss = self.loss(out, y)
        total = loss + self._penalty() if self._has_penalty else loss
        self.optimizer.zero_grad(set_to_none=True)
        total.backward()
        if self.spec.grad_clip is not None:
            nn.utils.clip_grad_norm_(self.model.parameters(), self.spec.grad_clip)
        self.optimizer.step()
        return loss.detach()

    def _penalty(self) -> torch.Tensor:
        reg = self.spec.regularization
        total = torch.zeros(())
        for p in self._penalised:
            if reg.l1 > 0:
                total = total + reg.l1 * p.abs().sum()
            if reg.l2 > 0:
                total = total + reg.l2 * p.pow(2).sum()
        return total

    @torch.no_grad()
    def evaluate(self, x: torch.Tensor, y: torch.Tensor) -> dict[str, float]:
        """Mean loss and metrics over a whole split, in eval mode."""
        was_training = self.model.training
        self.model.eval()
        sums: dict[str, torch.Tensor] = {}
        for start in range(0, len(x), EVAL_BATCH):
            xb, yb = x[start : start + EVAL_BATCH], y[start : start + EVAL_BATCH]
            out = self.model(xb)
            logs = {"loss": self.loss(out, yb) * len(xb), **self.batch_metrics(out, yb)}
            for k, v in logs.items():
                sums[k] = sums.get(k, torch.zeros(())) + v
        self.model.train(was_training)
        return {k: float(v) / max(len(x), 1) for k, v in sums.items()}


STEPS: Registry[type[Step]] = Registry("task", "task")


@STEPS.register("classification")
class ClassificationStep(Step):
    def loss(self, out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        # out: (B, K) logits; y: (B,) class indices
        return nn.functional.cross_entropy(out, y, label_smoothing=self.spec.label_smoothing)

    def batch_metrics(self, out: torch.Tensor, y: torch.Tensor) -> dict[str, torch.Tensor]:
        return {"accuracy": (out.argmax(dim=1) == y).sum().float()}


_REGRESSION_LOSSES: dict[str, Any] = {
    "auto": nn.functional.mse_loss,
    "mse": nn.functional.mse_loss,
    "mae": nn.functional.l1_loss,
    "huber": nn.functional.huber_loss,
}


@STEPS.register("regression")
class RegressionStep(Step):
    def loss(self, out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        # out: (B, 1); y: (B,)
        return _REGRESSION_LOSSES[self.spec.loss](out.squeeze(1), y)

    def batch_metrics(self, out: torch.Tensor, y: torch.Tensor) -> dict[str, torch.Tensor]:
        return {"mae": (out.squeeze(1) - y).abs().sum()}
