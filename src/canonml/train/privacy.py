"""``privacy.dp``: DP-SGD as a training wrapper, with Opacus doing the privacy work.

``PrivateTraining`` wraps a supervised step before training starts:

- Opacus' ``GradSampleModule`` hooks compute per-example gradients of the step's model
  (the model object stays the same: checkpoints, export and the package see a plain model);
- the step's optimizer becomes Opacus' ``DPOptimizer``: each example's gradient clipped to
  ``max_grad_norm`` (C), Gaussian noise of std ``noise_multiplier × C`` added to the sum,
  divided by the expected batch size; the noise comes from a seeded generator of its own;
- batches are Poisson samples, as the accountant assumes: each training example is in a
  batch with probability q = batch_size / N, independently, ``ceil(N / batch_size)``
  batches an epoch (``train.steps_per_epoch`` if set), drawn with the run's generator;
- the noise multiplier is Opacus' ``get_noise_multiplier`` for the target ε, δ, q and the
  planned steps; the accountant (``rdp`` or ``prv``) counts every step, so the ε recorded
  is the one spent (less when early stopping ends the run sooner).

The accountant's history and the noise generator are in the checkpoint: a resumed run
continues the same noise and the same ε. ``privacy.json`` (and ``dp_*`` metrics) hold
everything needed to re-derive ε with Opacus' accountant alone.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch  # noqa: TID253  (imported only when a run trains with privacy.dp)

from canonml.errors import SpecError
from canonml.io import write_json
from canonml.spec.privacy import DPSpec, default_delta
from canonml.train.callbacks import Callback
from canonml.train.steps import Step

PRIVACY_FILE = "privacy.json"
NOISE_SEED_OFFSET = 7919  # the noise generator's seed: the run's seed + this (not the batches')


def check_private(dp: DPSpec, n: int, batch_size: int) -> float:
    """δ for ``n`` training examples (the spec's, or the default), checked; also that a
    Poisson batch is a sample. Raises ``SpecError`` naming the key."""
    delta = dp.delta if dp.delta is not None else default_delta(n)
    if delta >= 1.0 / n:
        raise SpecError(
            "privacy.dp.delta",
            f"must be below 1/N = {1.0 / n:.3g} (N = {n} training examples), got {delta:g}: "
            f"a δ that large allows releasing an example outright; leave it out for "
            f"{default_delta(n):.3g}",
        )
    if batch_size >= n:
        raise SpecError(
            "train.batch_size",
            f"DP-SGD samples each example with probability batch_size / N; {batch_size} is "
            f"not below the {n} training examples",
        )
    return delta


class PrivateTraining(Callback):
    """DP-SGD around ``step`` (see the module); also the Poisson ``sampler`` for ``fit``."""

    key = "privacy"

    def __init__(
        self,
        dp: DPSpec,
        step: Step,
        n: int,
        batch_size: int,
        epochs: int,
        steps_per_epoch: int | None,
        seed: int,
        out: Path | None,
        info: dict[str, Any],
    ) -> None:
        from opacus import GradSampleModule
        from opacus.accountants import PRVAccountant, RDPAccountant
        from opacus.accountants.utils import get_noise_multiplier
        from opacus.optimizers import DPOptimizer
        from opacus.validators import ModuleValidator

        problems = ModuleValidator.validate(step.model, strict=False)
        if problems:
            raise SpecError("model", f"DP-SGD (Opacus) cannot train this model: {problems[0]}")
        self.delta = check_private(dp, n, batch_size)
        self.dp, self.n, self.out, self.info = dp, n, out, info
        self.sample_rate = batch_size / n
        self.steps_per_epoch = steps_per_epoch or math.ceil(n / batch_size)
        self.planned_steps = epochs * self.steps_per_epoch
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # see epsilon()
            self.noise_multiplier = float(
                get_noise_multiplier(
                    target_epsilon=dp.epsilon,
                    target_delta=self.delta,
                    sample_rate=self.sample_rate,
                    steps=self.planned_steps,
                    accountant=dp.accountant,
                )
            )
        # Opacus' per-example hooks make torch warn that the first layer's input needs no
        # gradient: expected, and harmless.
        warnings.filterwarnings("ignore", message="Full backward hook is firing")
        self.hooks = GradSampleModule(step.model)  # hooks on the model's own layers
        self.noise = torch.Generator().manual_seed(seed + NOISE_SEED_OFFSET)
        optimizer = DPOptimizer(
            step.optimizers["optimizer"],
            noise_multiplier=self.noise_multiplier,
            max_grad_norm=dp.max_grad_norm,
            expected_batch_size=batch_size,
            generator=self.noise,
        )
        self.accountant = RDPAccountant() if dp.accountant == "rdp" else PRVAccountant()
        optimizer.attach_step_hook(self.accountant.get_optimizer_hook_fn(self.sample_rate))
        step.optimizer = optimizer  # type: ignore[attr-defined]  # a supervised step's
        step.optimizers = {"optimizer": optimizer}

    def sampler(self, n: int, generator: torch.Generator) -> Iterator[torch.Tensor]:
        """An epoch of Poisson batches: each row in each batch with probability q. A batch
        that draws no row is not trained on, but the accountant still counts it."""
        for _ in range(self.steps_per_epoch):
            rows = torch.nonzero(torch.rand(n, generator=generator) < self.sample_rate)
            if len(rows) == 0:
                self.accountant.step(
                    noise_multiplier=self.noise_multiplier, sample_rate=self.sample_rate
                )
                continue
            yield rows.flatten()

    def steps(self) -> int:
        return sum(int(k) for _, _, k in self.accountant.history)

    def epsilon(self) -> float:
        if not self.accountant.history:
            return 0.0
        with warnings.catch_warnings():  # "optimal order is the largest alpha": a looser
            warnings.simplefilter("ignore", UserWarning)  # bound, still a valid one
            return float(self.accountant.get_epsilon(delta=self.delta))

    def summary(self) -> dict[str, Any]:
        """What was spent and how: enough to re-derive ε with the accountant alone."""
        return {
            "mechanism": "DP-SGD (Opacus), Poisson sampling, add/remove-one adjacency",
            "accountant": self.dp.accountant,
            "epsilon": self.epsilon(),
            "target_epsilon": self.dp.epsilon,
            "delta": self.delta,
            "noise_multiplier": self.noise_multiplier,
            "max_grad_norm": self.dp.max_grad_norm,
            "sample_rate": self.sample_rate,
            "steps": self.steps(),
            "planned_steps": self.planned_steps,
            "training_examples": self.n,
            "history": [list(h) for h in self.accountant.history],
        }

    def on_epoch_end(self, state: Any, logs: dict[str, Any]) -> None:
        logs["epsilon"] = self.epsilon()

    def on_train_end(self, state: Any) -> None:
        self.hooks.remove_hooks()  # the plain model again: no hooks in export or inference
        for param in self.hooks.parameters():
            param.grad_sample = None
        summary = self.summary()
        self.info["privacy"] = summary
        self.info.setdefault("run_metrics", {}).update(
            {
                "dp_epsilon": summary["epsilon"],
                "dp_delta": summary["delta"],
                "dp_noise_multiplier": summary["noise_multiplier"],
                "dp_max_grad_norm": summary["max_grad_norm"],
                "dp_sample_rate": summary["sample_rate"],
                "dp_steps": float(summary["steps"]),
            }
        )
        if self.out is not None:
            write_json(self.out / PRIVACY_FILE, summary)

    def state_dict(self) -> dict[str, Any]:
        return {"accountant": self.accountant.state_dict(), "noise": self.noise.get_state()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.accountant.load_state_dict(state["accountant"])
        self.noise.set_state(state["noise"])
