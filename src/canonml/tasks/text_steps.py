"""Fine-tuning a pretrained text classifier (torch; imported when a run trains).

``TextClassificationStep``: the classification loss over token ids, with the attention mask
built from the padding id and each batch trimmed to its longest row (dynamic padding), and
two parameter groups — the encoder (and adapters) at ``model.encoder_lr``, the head at
``train.optimizer.lr``. ``FineTuneMonitor`` records the trainable and total parameters and
merges LoRA adapters into the weights when training ends (after writing them, with the
head, to ``adapter.safetensors``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch  # noqa: TID253  (this module is imported only when a run trains)
from torch import nn  # noqa: TID253

from canonml.tasks.steps import ClassificationStep
from canonml.train.callbacks import Callback

EVAL_BATCH = 128  # rows per evaluation batch: attention is rows × heads × tokens²
ADAPTER_FILE = "adapter.safetensors"


def trimmed(ids: torch.Tensor, pad_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    """ids (B, S) right-padded → (ids, mask) cut to the longest row's length (at least 1)."""
    mask = (ids != pad_id).long()  # (B, S), 1 = token
    width = max(int(mask.sum(dim=1).max()), 1) if len(ids) else 1
    return ids[:, :width], mask[:, :width]


def by_length(ids: torch.Tensor, pad_id: int) -> torch.Tensor:
    """Row order that puts texts of similar length together (less padding per batch)."""
    return torch.argsort((ids != pad_id).sum(dim=1), stable=True)


class TextClassificationStep(ClassificationStep):
    def __init__(self, model: nn.Module, spec: Any, encoder_lr: float | None) -> None:
        from canonml.train.optim import OPTIMIZERS

        super().__init__(model, spec)
        self.pad_id = int(model.pad_id)  # type: ignore[arg-type]
        head = [p for p in model.head.parameters() if p.requires_grad]  # type: ignore[union-attr]
        ids = {id(p) for p in head}
        encoder = [p for p in model.parameters() if p.requires_grad and id(p) not in ids]
        groups: list[dict[str, Any]] = [{"params": head}]
        if encoder:  # freeze: all trains the head alone
            groups.append({"params": encoder, "lr": encoder_lr or spec.optimizer.lr})
        build = OPTIMIZERS.get(spec.optimizer.name)
        self.optimizer = build(spec.optimizer, groups)  # type: ignore[arg-type]  # param groups
        self.optimizers = {"optimizer": self.optimizer}
        self._penalised = [p for p in model.parameters() if p.requires_grad and p.ndim > 1]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        ids, mask = trimmed(x, self.pad_id)
        return self.model(ids, mask)

    def training_loss(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """The classification loss, plus ``model.lm_loss`` × the next-token loss of the same
        texts when it is set (the encoder keeps modelling the language it is tuned on)."""
        weight = float(getattr(self.model, "lm_weight", 0.0))
        if weight == 0:
            return super().training_loss(x, y)
        ids, mask = trimmed(x, self.pad_id)
        logits, lm = self.model.with_lm_loss(ids, mask)  # type: ignore[operator]
        return self.loss(logits, y) + weight * lm

    @torch.no_grad()
    def evaluate(self, *split: torch.Tensor) -> dict[str, float]:
        x, y = split
        was_training = self.model.training
        self.model.eval()
        order = by_length(x, self.pad_id)
        sums: dict[str, torch.Tensor] = {}
        for start in range(0, len(x), EVAL_BATCH):
            rows = order[start : start + EVAL_BATCH]
            out, yb = self.forward(x[rows]), y[rows]
            logs = {"loss": self.loss(out, yb) * len(rows), **self.batch_metrics(out, yb)}
            for k, v in logs.items():
                sums[k] = sums.get(k, torch.zeros((), device=v.device)) + v
        self.model.train(was_training)
        return {k: float(v) / max(len(x), 1) for k, v in sums.items()}


class FineTuneMonitor(Callback):
    """Trainable and total parameters (into ``data.info["fine_tune"]``, kept across a
    resume); at the end, the adapters and head saved, then merged into the weights."""

    key = "fine_tune"

    def __init__(self, model: nn.Module, data: Any, out: Path | None) -> None:
        self.model, self.data, self.out = model, data, out
        self.counts: dict[str, int] | None = None

    def on_train_begin(self, state: Any) -> None:
        if self.counts is None:
            params = list(self.model.parameters())
            self.counts = {
                "trainable": sum(p.numel() for p in params if p.requires_grad),
                "total": sum(p.numel() for p in params),
            }
        self.data.info["fine_tune"] = dict(self.counts)

    def on_train_end(self, state: Any) -> None:
        adapted = {n: p for n, p in self.model.state_dict().items() if _adapter_or_head(n)}
        has_adapter = any(not n.startswith("head.") for n in adapted)
        if has_adapter and self.out is not None:
            from canonml.io import atomic_write
            from canonml.models.weights import weights_bytes

            atomic_write(self.out, weights_bytes(adapted, None))
        self.model.merge_adapter()  # type: ignore[operator]

    def state_dict(self) -> dict[str, Any]:
        return {"counts": self.counts}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.counts = state["counts"]


PROBE_TEXTS = 5000  # training texts the linear probe is fitted on (as the frozen baseline)
PROBE_ITERATIONS = 2000


class ProbeHead(Callback):
    """``model.head.init: probe``: before the first epoch's first batch (its time counts in
    that epoch, so a time budget pays for it), logistic regression on the frozen encoder's
    standardised pooled features of a seeded sample of training texts; its weights, with the
    standardisation folded in, become the linear head's."""

    key = "probe_head"

    def __init__(self, model: nn.Module, data: Any, seed: int) -> None:
        self.model, self.data, self.seed = model, data, seed
        self.done = False

    def on_epoch_begin(self, state: Any) -> None:
        if self.done or state.epoch > 0:
            return
        import numpy as np
        from sklearn.linear_model import LogisticRegression
        from sklearn.preprocessing import StandardScaler

        from canonml.tasks.text_classification import features

        x, y = self.data.train.x, self.data.train.y
        rng = np.random.default_rng(self.seed)
        rows = np.sort(rng.permutation(len(x))[:PROBE_TEXTS])
        f = features(self.model, x[rows], int(self.model.pad_id))  # type: ignore[arg-type]
        scaler = StandardScaler().fit(f)
        fitted = LogisticRegression(max_iter=PROBE_ITERATIONS, random_state=self.seed)
        fitted.fit(scaler.transform(f), y[rows])
        coef = fitted.coef_ / scaler.scale_  # on raw features: w·(f − μ)/σ + b
        bias = fitted.intercept_ - coef @ scaler.mean_
        linear: Any = self.model.head[-1]  # type: ignore[index]
        k = linear.out_features
        weight, offset = np.zeros((k, coef.shape[1])), np.zeros(k)
        classes = [int(c) for c in fitted.classes_]
        if len(classes) == 2 and coef.shape[0] == 1:  # one score: half to each side
            weight[classes[1]], weight[classes[0]] = coef[0] / 2, -coef[0] / 2
            offset[classes[1]], offset[classes[0]] = bias[0] / 2, -bias[0] / 2
        else:
            weight[classes], offset[classes] = coef, bias
        with torch.no_grad():
            linear.weight.copy_(torch.from_numpy(weight))
            linear.bias.copy_(torch.from_numpy(offset))
        self.done = True

    def state_dict(self) -> dict[str, Any]:
        return {"done": self.done}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.done = bool(state["done"])


def _adapter_or_head(name: str) -> bool:
    return name.startswith("head.") or ".lora_" in name
