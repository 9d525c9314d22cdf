"""A GAN's training step and its callbacks (torch; imported when a run trains).

``AdversarialStep`` is one step over the pair (``canonml.models.adversarial.GAN``) with two
named optimizers, so checkpoints, schedules and the learning-rate log cover both. Per batch:
the discriminator learns real (target ``1 - label_smoothing``, one-sided) from generated (0);
every ``d_steps``-th batch the generator then learns with the non-saturating loss
``-log D(G(z))`` (Goodfellow et al. 2014, §3), on the same generated batch, through the
updated discriminator (as in the DCGAN reference code). Conditional pairs get the batch's
real labels for the fakes too, so every class is generated as often as it occurs.

Logged: ``train_loss``/``val_loss`` are the discriminator's loss (BCE on real plus BCE on
generated; 2·ln 2 ≈ 1.39 when D cannot tell), ``g_loss`` the generator's (ln 2 ≈ 0.69
there), ``d_real``/``d_fake`` D's mean probability of "real" on real and generated images.
No loss says how good the images are: ``SampleMonitor`` logs ``val_fd`` every few epochs.

``CollapseAlarm`` stops a run whose generator has stopped learning. With an absurd learning
rate nothing becomes NaN: the generator's tanh saturates, its gradient is exactly 0, every
image is the same (per-pixel spread 0) and D's loss sits at 0. The step counts consecutive
steps with any of those signs on the device (no sync per batch); the alarm reads the counts
every ``CHECK_EVERY`` batches and at each epoch's end, before the checkpointer, and raises
``TrainingDiverged`` after ``PATIENCE`` such steps, a whole epoch of them, or ``FROZEN``
with the generator frozen (an exactly zero gradient, or one image: never seen in a healthy
run, and a saturated tanh does not come back). Raised at an epoch's end, the epoch's state
never reaches ``last.pt``: the last checkpoint is the one before; the pipeline packages only
after training returns, so no package is written. A run that ends frozen, or with a
saturated generator (one image for any noise, in eval mode, as packaged), is refused too.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch import nn
from torch.nn.functional import binary_cross_entropy_with_logits as bce

from canonml.errors import TrainingDiverged
from canonml.train.callbacks import Callback
from canonml.train.optim import build_optimizer
from canonml.train.steps import EVAL_BATCH, Step

if TYPE_CHECKING:
    from canonml.models.adversarial import GAN
    from canonml.spec.root import Spec
    from canonml.train.loop import TrainState

PATIENCE = 50  # consecutive collapsed steps that stop a run
MIN_EPOCH = 10  # ... or a whole epoch of at least this many (small data sets)
FROZEN = 3  # ... or this many with the generator frozen: its gradient exactly 0, or one image
CHECK_EVERY = 50  # batches between two reads of the device-side counter
GRID = 10  # columns of a sample grid (and rows, unless a row per class)
D_LOSS_FLOOR = 1e-3  # D loss below this: D tells every image apart
SPREAD_FLOOR = 1e-3  # per-pixel std over a generated batch below this: one image, repeated
SIGNS = (
    "the discriminator's loss was below 1e-3",
    "the generator's gradient was exactly 0",
    "every generated image was the same (per-pixel spread below 1e-3)",
    "a loss was not finite",
)


@dataclass(frozen=True)
class Health:
    """Consecutive collapsed steps, those of them with the generator frozen (gradient 0 or
    one image), the step the run of them began at, and the signs seen (``SIGNS``)."""

    streak: int
    frozen: int
    since: int
    signs: list[str]


class AdversarialStep(Step):
    """Discriminator and generator updates of a ``GAN`` (see the module docstring)."""

    def __init__(self, model: GAN, spec: Spec) -> None:
        task = spec.task
        self.model, self.gan, self.latent = model, model, model.latent
        self.conditional = model.n_classes is not None
        self.d_steps: int = getattr(task, "d_steps", 1)
        self.real_target = 1.0 - float(getattr(task, "label_smoothing", 0.0))
        self.grad_clip = spec.train.grad_clip
        d_spec = getattr(task, "d_optimizer", None) or spec.train.optimizer
        self.optimizers = {
            "generator": build_optimizer(spec.train.optimizer, model.generator),
            "discriminator": build_optimizer(d_spec, model.discriminator),
        }
        self._g_params = list(model.generator.parameters())
        self._d_params = list(model.discriminator.parameters())
        self.seed = spec.seed
        self.steps = 0  # batches seen by this process (the alarm maps them to epochs)
        self._batch = 0  # batches this epoch: the generator's turn every d_steps-th
        self._sums: dict[str, torch.Tensor] = {}  # per epoch, on the device
        self._counts: dict[str, int] = {}
        self._health: dict[str, torch.Tensor] = {}

    def train_batch(self, *batch: torch.Tensor) -> torch.Tensor:
        x, y = batch  # (B, C, H, W) in [-1, 1]; (B,) class indices
        labels = y if self.conditional else None
        gen, disc = self.gan.generator, self.gan.discriminator
        self._batch += 1
        g_turn = self._batch % self.d_steps == 0
        z = torch.randn(x.shape[0], self.latent, device=x.device)
        with torch.set_grad_enabled(g_turn):  # the fakes' graph is kept for G's update only
            fake = gen(z, labels)  # (B, C, H, W)
        real_logit, fake_logit = disc(x, labels), disc(fake.detach(), labels)  # (B,), (B,)
        d_loss = bce(real_logit, torch.full_like(real_logit, self.real_target)) + bce(
            fake_logit, torch.zeros_like(fake_logit)
        )
        self._update("discriminator", d_loss, self._d_params)
        logs = {
            "loss": d_loss.detach(),
            "d_real": torch.sigmoid(real_logit.detach()).mean(),
            "d_fake": torch.sigmoid(fake_logit.detach()).mean(),
        }
        g_zero = torch.zeros((), dtype=torch.bool, device=x.device)
        if g_turn:
            for p in self._d_params:  # D's weights need no gradient for G's update
                p.requires_grad_(False)
            g_logit = disc(fake, labels)
            g_loss = bce(g_logit, torch.ones_like(g_logit))  # non-saturating: -log D(G(z))
            self._update("generator", g_loss, self._g_params)
            for p in self._d_params:
                p.requires_grad_(True)
            logs["g_loss"] = g_loss.detach()
            grads = [p.grad for p in self._g_params if p.grad is not None]
            g_zero = nn.utils.get_total_norm(grads) == 0 if grads else ~g_zero
        self._accumulate(logs)
        spread = fake.detach().flatten(1).std(dim=0, correction=0).mean()  # per-pixel, (B,) axis
        self._watch(d_loss.detach(), g_zero, spread)
        return logs["loss"]

    def _update(self, name: str, loss: torch.Tensor, params: list[nn.Parameter]) -> None:
        optimizer = self.optimizers[name]
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if self.grad_clip is not None:
            nn.utils.clip_grad_norm_(params, self.grad_clip)
        optimizer.step()

    def _accumulate(self, logs: dict[str, torch.Tensor]) -> None:
        for key, value in logs.items():  # device-side sums: no sync per batch
            total = self._sums.get(key)
            self._sums[key] = value if total is None else total + value
            self._counts[key] = self._counts.get(key, 0) + 1

    def _watch(self, d_loss: torch.Tensor, g_zero: torch.Tensor, spread: torch.Tensor) -> None:
        """Count consecutive collapsed steps (device tensors; ``health`` reads them)."""
        signs = torch.stack(
            [d_loss < D_LOSS_FLOOR, g_zero, spread < SPREAD_FLOOR, ~torch.isfinite(d_loss)]
        )  # (4,) bool, in the order of SIGNS
        bad, frozen = signs.any(), signs[1] | signs[2]  # frozen: G cannot move (or moves none)
        h = self._health
        if not h:
            zero = torch.zeros((), dtype=torch.long, device=signs.device)
            h.update(streak=zero, frozen=zero, since=zero, signs=torch.zeros_like(signs))
        h["since"] = torch.where(bad & (h["streak"] == 0), self.steps, h["since"])
        h["signs"] = torch.where(bad, h["signs"] | signs, torch.zeros_like(signs))
        h["streak"] = torch.where(bad, h["streak"] + 1, torch.zeros_like(h["streak"]))
        h["frozen"] = torch.where(frozen, h["frozen"] + 1, torch.zeros_like(h["frozen"]))
        self.steps += 1

    def health(self) -> Health:
        """The collapse counters (one sync)."""
        if not self._health:
            return Health(0, 0, 0, [])
        h = {k: v.cpu() for k, v in self._health.items()}
        signs = [text for text, seen in zip(SIGNS, h["signs"].tolist(), strict=True) if seen]
        return Health(int(h["streak"]), int(h["frozen"]), int(h["since"]), signs)

    def epoch_logs(self) -> dict[str, float]:
        # Called once per epoch, after its batches: the generator's turns restart with it.
        means = {k: float(v) / self._counts[k] for k, v in self._sums.items()}
        self._sums, self._counts, self._batch = {}, {}, 0
        return {k: means[k] for k in ("g_loss", "d_real", "d_fake") if k in means}

    @torch.no_grad()
    def evaluate(self, *split: torch.Tensor) -> dict[str, float]:
        x, y = split
        was_training = self.model.training
        self.model.eval()
        z = self.noise(len(x), x.device)  # the same noise every epoch: comparable numbers
        gen, disc = self.gan.generator, self.gan.discriminator
        sums = dict.fromkeys(("loss", "g_loss", "d_real", "d_fake"), 0.0)
        for start in range(0, len(x), EVAL_BATCH):
            part = slice(start, start + EVAL_BATCH)
            labels = y[part] if self.conditional else None
            real_logit = disc(x[part], labels)
            fake_logit = disc(gen(z[part], labels), labels)
            n = len(real_logit)
            real_target = torch.full_like(real_logit, self.real_target)
            d_loss = bce(real_logit, real_target) + bce(fake_logit, torch.zeros_like(fake_logit))
            sums["loss"] += float(d_loss) * n
            sums["g_loss"] += float(bce(fake_logit, torch.ones_like(fake_logit))) * n
            sums["d_real"] += float(torch.sigmoid(real_logit).sum())
            sums["d_fake"] += float(torch.sigmoid(fake_logit).sum())
        self.model.train(was_training)
        return {k: v / max(len(x), 1) for k, v in sums.items()}

    def noise(self, n: int, device: torch.device | str = "cpu", offset: int = 0) -> torch.Tensor:
        """``n`` fixed noise vectors (B, latent), seeded by the run's seed and ``offset``."""
        generator = torch.Generator().manual_seed(self.seed * 1009 + offset)
        return torch.randn(n, self.latent, generator=generator).to(device)


def generate(
    model: GAN, z: torch.Tensor, labels: torch.Tensor | None, batch: int = EVAL_BATCH
) -> np.ndarray:
    """The generator's images for noise ``z`` in eval mode, ``(N, C, H, W)`` in [-1, 1]."""
    was_training = model.training
    model.eval()
    with torch.no_grad():
        out = [
            model.generator(z[i : i + batch], None if labels is None else labels[i : i + batch])
            for i in range(0, len(z), batch)
        ]
    model.train(was_training)
    return torch.cat(out).cpu().numpy() if out else np.zeros((0, *model.image_shape), np.float32)


def cycled_labels(n: int, n_classes: int | None) -> torch.Tensor | None:
    """0, 1, ..., K-1, 0, ... for a conditional model (every class as often); else None."""
    return None if n_classes is None else torch.arange(n) % n_classes


class CollapseAlarm(Callback):
    """Raises ``TrainingDiverged`` when the generator has collapsed (module docstring)."""

    def __init__(self, step: AdversarialStep, run_dir: Path | None, lr: str) -> None:
        self.step, self.run_dir, self.lr = step, run_dir, lr
        self.first_step: dict[int, int] = {}  # epoch (1-based) → the first step it took
        self.epoch = 0

    def on_epoch_begin(self, state: TrainState) -> None:
        self.epoch = state.epoch + 1
        self.first_step[self.epoch] = self.step.steps

    def on_batch_end(self, state: TrainState, batch: int, loss: torch.Tensor) -> None:
        if (batch + 1) % CHECK_EVERY == 0:
            self._check(self.epoch, state.epoch)  # epochs done so far are checkpointed

    def on_epoch_end(self, state: TrainState, logs: dict[str, Any]) -> None:
        # Before the checkpointer: raising here keeps this epoch's state out of last.pt.
        epoch_steps = self.step.steps - self.first_step.get(state.epoch, 0)
        self._check(state.epoch, state.epoch - 1, epoch_steps)

    def on_train_end(self, state: TrainState) -> None:
        # Never package a collapsed generator: the last steps, and the final one itself (in
        # eval mode, as packaged): one saturated image for any noise. (An untrained one may
        # also vary little, but it is not saturated.)
        z = self.step.noise(64, offset=7)
        images = generate(self.step.gan, z, cycled_labels(64, self.step.gan.n_classes))
        finite = bool(np.isfinite(images).all())
        spread = float(images.reshape(len(images), -1).std(axis=0).mean()) if finite else 0.0
        saturated = finite and spread < SPREAD_FLOOR and float(np.abs(images).mean()) > 0.99
        frozen = self.step.health().frozen > 0
        if not finite or saturated or frozen:
            what = (
                "its images are not finite"
                if not finite
                else "its tanh output is saturated: every image is the same"
                if saturated
                else "its gradient was exactly 0 in the last steps"
            )
            raise TrainingDiverged(
                f"train: the trained generator is collapsed ({what}); no package was "
                f"written ({self.lr})"
            )

    def _check(self, epoch: int, saved: int, epoch_steps: int | None = None) -> None:
        """Raise when collapsed; ``saved``: the last epoch whose checkpoint is written."""
        h = self.step.health()
        whole_epoch = epoch_steps is not None and MIN_EPOCH <= epoch_steps <= h.streak
        if h.streak < PATIENCE and h.frozen < FROZEN and not whole_epoch:
            return
        began = max((e for e, s in self.first_step.items() if s <= h.since), default=epoch)
        saturated = SIGNS[1] in h.signs or SIGNS[2] in h.signs
        raise TrainingDiverged(
            f"train: the GAN has collapsed since epoch {began}: for {h.streak} consecutive "
            f"steps {', '.join(h.signs)}"
            + (" (the generator's tanh output saturated)" if saturated else "")
            + f"; training stopped in epoch {epoch} and no package was written"
            + self._checkpoint(saved, began)
            + f" ({self.lr})"
        )

    def _checkpoint(self, saved: int, began: int) -> str:
        if self.run_dir is None:
            return ""
        where = self.run_dir / "checkpoints" / "last.pt"
        # Checkpoints follow train.checkpoint_interval: the file says which epoch it holds.
        saved = min(saved, _saved_epoch(where))
        if saved == 0:
            return "; no checkpoint was written (it began before the first checkpoint)"
        when = "before the collapse" if saved < began else "after it began"
        return f"; {where} is kept: epoch {saved}, {when}"


class SampleMonitor(Callback):
    """Every few epochs: ``val_fd`` (FD of fixed-noise samples vs the validation split, into
    the history) and a grid of fixed-noise samples, ``plots/samples_epoch_NNN.png``."""

    def __init__(
        self,
        step: AdversarialStep,
        fd_epochs: set[int],
        score: Callable[[np.ndarray], float] | None,
        grid_epochs: set[int],
        draw: Callable[[np.ndarray, int], None] | None,
        n_fd: int,
    ) -> None:
        self.step, self.fd_epochs, self.score = step, fd_epochs, score
        self.grid_epochs, self.draw, self.n_fd = grid_epochs, draw, n_fd

    def on_epoch_end(self, state: TrainState, logs: dict[str, Any]) -> None:
        model, epoch = self.step.gan, state.epoch
        if self.score is not None and epoch in self.fd_epochs:
            z = self.step.noise(self.n_fd, offset=1)
            logs["val_fd"] = self.score(
                generate(model, z, cycled_labels(self.n_fd, model.n_classes))
            )
        if self.draw is not None and epoch in self.grid_epochs:
            k = model.n_classes
            z = self.step.noise((k or GRID) * GRID, offset=2)  # rows × GRID columns
            labels = None if k is None else torch.arange(k).repeat_interleave(GRID)  # a row each
            self.draw(generate(model, z, labels), epoch)


class SamplerGraph(nn.Module):
    """``model.onnx`` of a GAN: ``noise`` (B, latent) [+ ``label`` (B,)] → the generator →
    images (B, C, H, W) in raw units: ``(g + 1) / 2 · scale + shift`` per channel."""

    mul: torch.Tensor
    add: torch.Tensor

    def __init__(self, model: GAN, shift: np.ndarray, scale: np.ndarray) -> None:
        super().__init__()
        self.generator = model.generator
        half = scale / 2.0  # (1, C, 1, 1): raw = g · half + (shift + half)
        self.register_buffer("mul", torch.from_numpy(half.astype(np.float32)))
        self.register_buffer("add", torch.from_numpy((shift + half).astype(np.float32)))

    def forward(self, noise: torch.Tensor, label: torch.Tensor | None = None) -> torch.Tensor:
        return self.generator(noise, label) * self.mul + self.add


def _saved_epoch(path: Path) -> int:
    """The epoch a run's ``last.pt`` holds (0: none, or unreadable)."""
    try:
        return int(torch.load(path, weights_only=True, map_location="cpu")["epoch"])
    except Exception:  # no checkpoint (yet), or not one: nothing is kept
        return 0
