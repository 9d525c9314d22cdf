"""The supervised tasks' training steps (torch; imported when a run trains), and the
language model's step and monitor."""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch import nn

from canonml.train.callbacks import Callback
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


LM_EVAL_BATCH = 32  # windows per evaluation batch: logits are windows × tokens × vocabulary


class LanguageModelStep(SupervisedStep):
    """Next-token cross-entropy over packed windows (batches are ``(windows,)``): a window's
    first tokens are the input and the same tokens shifted by one the targets. Weight decay
    applies to matrices only (not to norms, biases or positions), as in GPT-2."""

    def __init__(self, model: nn.Module, spec: Any) -> None:
        from canonml.train.optim import OPTIMIZERS

        super().__init__(model, spec)
        params = [p for p in model.parameters() if p.requires_grad]
        named = dict(model.named_parameters())
        decay = [p for n, p in named.items() if p.requires_grad and p.ndim >= 2 and "pos" not in n]
        ids = {id(p) for p in decay}
        groups = [
            {"params": decay},
            {"params": [p for p in params if id(p) not in ids], "weight_decay": 0.0},
        ]
        build = OPTIMIZERS.get(spec.optimizer.name)
        self.optimizer = build(spec.optimizer, groups)  # type: ignore[arg-type]  # param groups
        self.optimizers = {"optimizer": self.optimizer}

    def loss(self, out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        # out: (B, S, V) logits; y: (B, S) next tokens
        return nn.functional.cross_entropy(
            out.reshape(-1, out.shape[-1]), y.reshape(-1), label_smoothing=self.spec.label_smoothing
        )

    def train_batch(self, *batch: torch.Tensor) -> torch.Tensor:
        (windows,) = batch
        return super().train_batch(windows[:, :-1], windows[:, 1:])

    @torch.no_grad()
    def evaluate(self, *split: torch.Tensor) -> dict[str, float]:
        (windows,) = split
        was_training = self.model.training
        self.model.eval()
        total, count = torch.zeros((), dtype=torch.float64, device=windows.device), 0
        for lo in range(0, len(windows), LM_EVAL_BATCH):
            w = windows[lo : lo + LM_EVAL_BATCH]
            out = self.model(w[:, :-1])
            total += nn.functional.cross_entropy(
                out.reshape(-1, out.shape[-1]), w[:, 1:].reshape(-1), reduction="sum"
            ).double()
            count += w[:, 1:].numel()
        self.model.train(was_training)
        loss = float(total) / max(count, 1)
        return {"loss": loss, "perplexity": math.exp(min(loss, 700.0))}


class LanguageModelMonitor(Callback):
    """The language model's own training logs and facts: ``val_bits_per_char`` every epoch;
    the validation loss and report samples before training, samples after it (kept in the
    checkpoint, so a resumed run reports the same initial figures); ``data.info`` and
    ``samples.json`` get them at the end."""

    key = "language_model"

    def __init__(
        self,
        step: Any,
        data: Any,
        chars_per_token: float,
        sampler: Callable[[nn.Module], list[dict[str, str]]],
        out: Path | None,
    ) -> None:
        self.step, self.data, self.ratio = step, data, chars_per_token
        self.sampler, self.out = sampler, out
        self.initial: dict[str, float] | None = None
        self.samples: dict[str, list[dict[str, str]]] = {}

    def on_train_begin(self, state: Any) -> None:
        if self.initial is not None or state.epoch > 0:
            return
        model = self.step.model
        windows = torch.from_numpy(self.data.val.x if len(self.data.val) else self.data.train.x)
        logs = self.step.evaluate(windows.to(model.tok.weight.device))
        self.initial = {"loss": logs["loss"], "perplexity": logs["perplexity"]}
        self.samples["initial"] = self._sample(model)

    def on_epoch_end(self, state: Any, logs: dict[str, Any]) -> None:
        if "val_loss" in logs:
            logs["val_bits_per_char"] = logs["val_loss"] / math.log(2.0) / self.ratio

    def on_train_end(self, state: Any) -> None:
        self.samples["final"] = self._sample(self.step.model)
        self.data.info["language_model"] = {"initial": self.initial, "samples": self.samples}
        if self.out is not None:
            from canonml.tasks.language_modeling import write_samples

            write_samples(self.out, {"before_training": self.initial, "samples": self.samples})

    def _sample(self, model: nn.Module) -> list[dict[str, str]]:
        was_training = model.training
        model.eval()
        try:
            return self.sampler(model)
        finally:
            model.train(was_training)

    def state_dict(self) -> dict[str, Any]:
        return {"initial": self.initial, "samples": self.samples}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.initial, self.samples = state["initial"], state["samples"]
