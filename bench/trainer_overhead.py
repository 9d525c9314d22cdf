"""Time canonml's trainer against a hand-written PyTorch loop, PyTorch Lightning and Keras 3.

All four train the same MLP (features → 128 relu → 10, Adam lr 1e-3, batch 64, the same
initial weights) for the same epochs on in-memory data, with per-epoch validation loss and
accuracy, in one process with ``torch.set_num_threads(--threads)`` (default 1) for all:

- **plain**: a minimal hand-written loop (seeded permutation, index-sliced batches).
- **canonml**: ``fit`` with a ``ClassificationStep`` and the callbacks a real run has
  (schedule, history.csv, checkpoints at the default ``train.checkpoint_interval``: after
  an epoch that ends a second or more after the last one written, and at the end).
- **lightning** (when installed): a ``LightningModule`` over a ``TensorDataset`` +
  ``DataLoader`` (batch 64, shuffled), ``Trainer(accelerator="cpu", devices=1,
  logger=False, enable_checkpointing=False, enable_progress_bar=False,
  enable_model_summary=False, num_sanity_val_steps=0)`` (no sanity pass: the same work
  as the others).
- **keras** (when installed; torch backend): ``Sequential`` of two ``Dense`` layers,
  ``model.fit(x, y, batch_size=64, epochs=E, validation_data=..., verbose=0)``.

Validation runs in batches of canonml's ``EVAL_BATCH`` (4,096) for canonml, Lightning and
Keras, in one batch for the plain loop. Two workloads (``--workload``): MNIST-shaped
(60,000 × 784 Gaussian rows labelled by a random linear teacher, 2 epochs) and the sklearn
digits (1,437 × 64 standardised training rows, 360 validation, 20 epochs). Each round runs
every loop once, in an order that rotates by round, so drift in machine load hits all
alike; a run's time covers building the model (and Trainer / compiled Keras model) and the
whole fit, divided by the epochs. Printed per workload: median seconds per epoch, the
ratios to the plain loop and to canonml, and each loop's last validation accuracy (similar
accuracies show they did the same work).

**Targets: canonml ≤ 1.05× the plain loop (``overhead_ratio``), and faster than Lightning
and Keras.** Missing frameworks are skipped (``pip install -e '.[bench]'``).
"""

from __future__ import annotations

import argparse
import gc
import logging
import os
import statistics
import tempfile
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from canonml.model_io import ModelIO
from canonml.models import build_model
from canonml.spec.model import MLPSpec
from canonml.spec.train import TrainSpec
from canonml.tasks.steps import ClassificationStep
from canonml.train.callbacks import Callback, HistoryCSV, LRSchedule
from canonml.train.checkpoint import Checkpointer
from canonml.train.loop import TrainState, fit
from canonml.train.optim import build_schedule
from canonml.train.steps import EVAL_BATCH

Split = tuple[torch.Tensor, torch.Tensor]
FEATURES, CLASSES, BATCH, LR, HIDDEN = 784, 10, 64, 1e-3, 128
TARGET_RATIO = 1.05
INSTALL = "pip install -e '.[bench]'"


@dataclass
class Workload:
    """A data set and how long to train on it."""

    name: str
    train: Split
    val: Split
    epochs: int
    repeats: int

    @property
    def features(self) -> int:
        return int(self.train[0].shape[1])

    def head(self, rows: int) -> Workload:
        """The same workload cut to its first ``rows`` training rows and 1 epoch (warm-up)."""
        train = (self.train[0][:rows], self.train[1][:rows])
        return Workload(self.name, train, self.val, 1, 1)


# A loop: (workload, seed) → the last epoch's validation accuracy.
Runner = Callable[[Workload, int], float]


def make_data(rows: int, val_rows: int, seed: int) -> tuple[Split, Split]:
    """Gaussian inputs labelled by a random linear teacher: learnable, MNIST-shaped."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(rows + val_rows, FEATURES, generator=g)  # (N, 784) float32
    teacher = torch.randn(FEATURES, CLASSES, generator=g)
    y = (x @ teacher).argmax(dim=1)  # (N,) int64
    return (x[:rows], y[:rows]), (x[rows:], y[rows:])


def make_digits(seed: int) -> tuple[Split, Split]:
    """sklearn digits, 80/20 stratified, standardised with the training rows' statistics."""
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split
    from sklearn.preprocessing import StandardScaler

    x, y = load_digits(return_X_y=True)  # (1797, 64) pixels 0..16, (1797,)
    xt, xv, yt, yv = train_test_split(x, y, test_size=0.2, stratify=y, random_state=seed)
    scaler = StandardScaler().fit(xt)

    def split(a: Any, b: Any) -> Split:
        return torch.as_tensor(scaler.transform(a), dtype=torch.float32), torch.as_tensor(b)

    return split(xt, yt), split(xv, yv)


def make_model(seed: int, features: int) -> nn.Module:
    torch.manual_seed(seed)  # same initial weights for every loop
    return build_model(MLPSpec(hidden=[HIDDEN]), ModelIO((features,), CLASSES))


def run_plain(w: Workload, seed: int) -> float:
    """The hand-written loop; returns the last epoch's validation accuracy."""
    model = make_model(seed, w.features)
    opt = torch.optim.Adam(model.parameters(), lr=LR)
    gen = torch.Generator().manual_seed(seed)
    (x, y), val = w.train, w.val
    acc = 0.0
    for _ in range(w.epochs):
        model.train()
        perm = torch.randperm(len(x), generator=gen)
        for lo in range(0, len(x), BATCH):
            idx = perm[lo : lo + BATCH]
            loss = nn.functional.cross_entropy(model(x[idx]), y[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
        model.eval()
        with torch.no_grad():
            out = model(val[0])
            _ = float(nn.functional.cross_entropy(out, val[1]))  # val_loss, as fit logs it
            acc = float((out.argmax(dim=1) == val[1]).float().mean())
    return acc


def run_canon(w: Workload, seed: int) -> float:
    """canonml's ``fit`` as a run wires it; returns the last epoch's validation accuracy."""
    model = make_model(seed, w.features)
    spec = TrainSpec(epochs=w.epochs, batch_size=BATCH)  # adam, lr 1e-3, schedule none
    step = ClassificationStep(model, spec)
    steps = -(-len(w.train[0]) // BATCH)
    schedule = build_schedule(spec.schedule, step.optimizer, w.epochs, steps)
    state = TrainState()
    state.generator.manual_seed(seed)
    with tempfile.TemporaryDirectory() as tmp:
        callbacks: list[Callback] = [
            LRSchedule({"optimizer": schedule}, "val_loss"),
            HistoryCSV(Path(tmp) / "history.csv", spec.checkpoint_interval),
        ]
        saved = callbacks[:]
        every = spec.checkpoint_interval  # as a run: at most every second, and at the end
        callbacks.append(Checkpointer(Path(tmp), step, saved, "val_loss", interval=every))
        fit(
            step,
            w.train,
            w.val,
            epochs=w.epochs,
            batch_size=BATCH,
            state=state,
            callbacks=callbacks,
        )
    return float(state.history[-1]["val_accuracy"])


def lightning_runner() -> Runner | None:
    """The Lightning loop, or None (and a line saying so) where Lightning is missing."""
    try:
        import lightning as L
    except ImportError:
        print(f"lightning: skipped (not installed; {INSTALL})")
        return None
    print(f"lightning {L.__version__}")
    from torch.utils.data import DataLoader, TensorDataset

    logging.getLogger("lightning").setLevel(logging.ERROR)  # "GPU available: False ..."
    logging.getLogger("lightning.pytorch").setLevel(logging.ERROR)
    warnings.filterwarnings("ignore", ".*does not have many workers.*")
    warnings.filterwarnings("ignore", ".*isinstance\\(treespec, LeafSpec\\)` is deprecated.*")

    class LitMLP(L.LightningModule):
        def __init__(self, model: nn.Module) -> None:
            super().__init__()
            self.model = model

        def training_step(self, batch: Split, batch_idx: int) -> torch.Tensor:
            x, y = batch
            return nn.functional.cross_entropy(self.model(x), y)

        def validation_step(self, batch: Split, batch_idx: int) -> None:
            x, y = batch
            out = self.model(x)
            loss = nn.functional.cross_entropy(out, y)
            acc = (out.argmax(dim=1) == y).float().mean()
            self.log("val_loss", loss, batch_size=len(x))
            self.log("val_accuracy", acc, batch_size=len(x))

        def configure_optimizers(self) -> torch.optim.Optimizer:
            return torch.optim.Adam(self.parameters(), lr=LR)

    def run_lightning(w: Workload, seed: int) -> float:
        module = LitMLP(make_model(seed, w.features))
        train = DataLoader(
            TensorDataset(*w.train),
            batch_size=BATCH,
            shuffle=True,
            generator=torch.Generator().manual_seed(seed),
        )
        val = DataLoader(TensorDataset(*w.val), batch_size=EVAL_BATCH)
        trainer = L.Trainer(
            accelerator="cpu",
            devices=1,
            logger=False,
            enable_checkpointing=False,
            enable_progress_bar=False,
            enable_model_summary=False,
            num_sanity_val_steps=0,
            max_epochs=w.epochs,
        )
        trainer.fit(module, train, val)
        return float(trainer.callback_metrics["val_accuracy"])

    return run_lightning


def keras_runner() -> Runner | None:
    """The Keras 3 loop (torch backend), or None (and a line saying so) where it is missing."""
    os.environ["KERAS_BACKEND"] = "torch"
    try:
        import keras
    except ImportError:
        print(f"keras: skipped (not installed; {INSTALL})")
        return None
    if keras.backend.backend() != "torch":  # keras was imported before, with another backend
        print(f"keras: skipped (backend {keras.backend.backend()}, not torch)")
        return None
    print(f"keras {keras.__version__} (backend torch)")

    def run_keras(w: Workload, seed: int) -> float:
        torch_model = make_model(seed, w.features)  # its initial weights, copied below
        keras.utils.set_random_seed(seed)  # the shuffling
        model = keras.Sequential(
            [
                keras.Input((w.features,)),
                keras.layers.Dense(HIDDEN, activation="relu"),
                keras.layers.Dense(CLASSES),
            ]
        )
        linears = [m for m in torch_model.modules() if isinstance(m, nn.Linear)]
        for dense, linear in zip(model.layers, linears, strict=True):
            # torch Linear weight is (out, in); a Dense kernel is (in, out)
            dense.set_weights([linear.weight.detach().T.numpy(), linear.bias.detach().numpy()])
        model.compile(
            optimizer=keras.optimizers.Adam(learning_rate=LR),
            loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
            metrics=["accuracy"],
        )
        history = model.fit(
            w.train[0].numpy(),
            w.train[1].numpy(),
            batch_size=BATCH,
            epochs=w.epochs,
            validation_data=(w.val[0].numpy(), w.val[1].numpy()),
            validation_batch_size=EVAL_BATCH,
            verbose=0,
        )
        return float(history.history["val_accuracy"][-1])

    return run_keras


def timed(fn: Runner, w: Workload, seed: int, threads: int) -> tuple[float, float]:
    """(seconds, validation accuracy) of one run, from a collected heap, at ``threads``."""
    gc.collect()  # one loop's garbage is not collected on another's clock
    torch.set_num_threads(threads)
    start = time.perf_counter()
    acc = fn(w, seed)
    seconds = time.perf_counter() - start
    if torch.get_num_threads() != threads:
        print(f"warning: a run left torch at {torch.get_num_threads()} threads")
        torch.set_num_threads(threads)
    return seconds, acc


def compare(w: Workload, runners: dict[str, Runner], seed: int, threads: int) -> dict[str, float]:
    """Alternate the loops on ``w``; print per round and a table; return s/epoch medians."""
    names = list(runners)
    print(
        f"\n== {w.name}: train {tuple(w.train[0].shape)}, val {len(w.val[0])}, "
        f"epochs={w.epochs}, batch={BATCH}, repeats={w.repeats}, threads={threads}"
    )
    warm = w.head(20 * BATCH)
    for name in names:  # warm-up: first-call costs (allocator, kernels, imports)
        timed(runners[name], warm, seed, threads)
    print(f"{'round':>6} " + " ".join(f"{n + '_s':>12}" for n in names) + "  (whole run, s)")
    seconds: dict[str, list[float]] = {n: [] for n in names}
    accs: dict[str, float] = {}
    for r in range(w.repeats):
        order = names[r % len(names) :] + names[: r % len(names)]  # rotate the order
        for name in order:
            t, accs[name] = timed(runners[name], w, seed, threads)
            seconds[name].append(t)
        print(f"{r + 1:>6} " + " ".join(f"{seconds[n][-1]:>12.3f}" for n in names))
    per_epoch = {n: statistics.median(s) / w.epochs for n, s in seconds.items()}
    plain, canon = per_epoch["plain"], per_epoch["canonml"]
    print(f"\n{'loop':<10} {'s/epoch':>9} {'×plain':>8} {'×canonml':>9} {'val_acc':>8}")
    for n in names:
        p = per_epoch[n]
        print(f"{n:<10} {p:>9.4f} {p / plain:>8.3f} {p / canon:>9.3f} {accs[n]:>8.4f}")
    return per_epoch


def verdicts(results: dict[str, dict[str, float]]) -> list[str]:
    """The target lines: PASS/FAIL per workload and target (skipped frameworks: SKIP)."""
    lines = []
    for wname, per_epoch in results.items():
        canon = per_epoch["canonml"]
        ratio = canon / per_epoch["plain"]
        ok = ratio <= TARGET_RATIO
        lines.append(
            f"{'PASS' if ok else 'FAIL'} [{wname}] canonml ≤ {TARGET_RATIO}× plain: {ratio:.3f}×"
        )
        for other in ("lightning", "keras"):
            label = {"lightning": "Lightning", "keras": "Keras"}[other]
            if other not in per_epoch:
                lines.append(f"SKIP [{wname}] canonml faster than {label}: not installed")
                continue
            r = per_epoch[other] / canon
            lines.append(
                f"{'PASS' if r > 1 else 'FAIL'} [{wname}] canonml faster than {label}: "
                f"{label} takes {r:.3f}× canonml's time"
            )
    return lines


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--workload", choices=["mnist", "digits", "both"], default="both")
    p.add_argument("--epochs", type=int, default=2, help="MNIST-shaped epochs")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--repeats", type=int, default=5, help="MNIST-shaped rounds")
    p.add_argument("--rows", type=int, default=60_000, help="MNIST-shaped training rows")
    p.add_argument("--digits-epochs", type=int, default=20)
    p.add_argument("--digits-repeats", type=int, default=5)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--quick", action="store_true", help="6,000 rows, 1 repeat (smoke test)")
    args = p.parse_args()
    if args.quick:
        args.rows, args.repeats, args.digits_repeats = 6_000, 1, 1
    torch.set_num_threads(args.threads)
    runners: dict[str, Runner] = {"plain": run_plain, "canonml": run_canon}
    keras_run = keras_runner()  # first: KERAS_BACKEND must be set before keras is imported
    lightning_run = lightning_runner()
    if lightning_run is not None:
        runners["lightning"] = lightning_run
    if keras_run is not None:
        runners["keras"] = keras_run
    print(
        f"torch {torch.__version__}, torch.set_num_threads({args.threads}) for all loops; "
        f"loops: {', '.join(runners)}"
    )
    workloads = []
    if args.workload in ("mnist", "both"):
        train, val = make_data(args.rows, args.rows // 10, args.seed)
        workloads.append(Workload("mnist", train, val, args.epochs, args.repeats))
    if args.workload in ("digits", "both"):
        train, val = make_digits(args.seed)
        workloads.append(Workload("digits", train, val, args.digits_epochs, args.digits_repeats))
    results = {w.name: compare(w, runners, args.seed, args.threads) for w in workloads}
    print()
    for line in verdicts(results):
        print(line)
    for wname, per_epoch in results.items():
        key = "overhead_ratio" if wname == "mnist" else f"overhead_ratio_{wname}"
        print(f"{key}={per_epoch['canonml'] / per_epoch['plain']:.3f}")


if __name__ == "__main__":
    main()
