"""The supervised tasks' training steps (torch; imported when a run trains)."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from canonml.train.steps import SupervisedStep


class ClassificationStep(SupervisedStep):
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


class RegressionStep(SupervisedStep):
    def loss(self, out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        # out: (B, 1); y: (B,)
        return _REGRESSION_LOSSES[self.spec.loss](out.squeeze(1), y)

    def batch_metrics(self, out: torch.Tensor, y: torch.Tensor) -> dict[str, torch.Tensor]:
        return {"mae": (out.squeeze(1) - y).abs().sum()}
