"""Knowledge distillation as a training wrapper: the student's step gets a frozen teacher
and minimises ``alpha · soft + (1 − alpha) · hard`` (Hinton et al. 2015)."""

from __future__ import annotations

from typing import Any

import torch

from canonml.train.callbacks import Callback


class Distillation(Callback):
    """Wraps ``step.training_loss``: the task's soft loss against the teacher's outputs on
    the same (augmented) batch, plus the task's own loss on the labels."""

    def __init__(
        self, step: Any, teacher: torch.nn.Module, task: Any, temperature: float, alpha: float
    ) -> None:
        self.teacher = teacher.eval()
        for p in self.teacher.parameters():
            p.requires_grad_(False)
        self.step, self.task, self.t, self.alpha = step, task, temperature, alpha
        step.training_loss = self.training_loss

    def on_train_begin(self, state: Any) -> None:
        device = next(self.step.model.parameters()).device
        self.teacher.to(device)

    def training_loss(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        out = self.step.forward(x)
        with torch.no_grad():
            target = self.teacher(x)
        soft = self.task.soft_loss(out.float(), target.float(), self.t)
        return self.alpha * soft + (1.0 - self.alpha) * self.step.loss(out, y)
