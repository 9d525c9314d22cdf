"""Time canonml's trainer against a minimal hand-written PyTorch loop on the same work.

Both train the same MLP (784 → 128 relu → 10, Adam lr 1e-3, batch 64) from the same
initial weights and the same shuffling seed on MNIST-shaped in-memory data, with per-epoch
validation loss and accuracy. canonml runs ``fit`` with a ``ClassificationStep`` and the
callbacks a real run has (schedule, history.csv, checkpoints). Runs alternate in one
process so drift in machine load hits both alike. Target: ``overhead_ratio`` ≤ 1.10.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

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

Split = tuple[torch.Tensor, torch.Tensor]
FEATURES, CLASSES, BATCH, LR = 784, 10, 64, 1e-3


def make_data(rows: int, val_rows: int, seed: int) -> tuple[Split, Split]:
    """Gaussian inputs labelled by a random linear teacher: learnable, MNIST-shaped."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(rows + val_rows, FEATURES, generator=g)  # (N, 784) float32
    teacher = torch.randn(FEATURES, CLASSES, generator=g)
    y = (x @ teacher).argmax(dim=1)  # (N,) int64
    return (x[:rows], y[:rows]), (x[rows:], y[rows:])


def make_model(seed: int) -> nn.Module:
    torch.manual_seed(seed)  # same initial weights for both loops
    return build_model(MLPSpec(hidden=[128]), ModelIO((FEATURES,), CLASSES))


def run_plain(train: Split, val: Split, epochs: int, seed: int) -> float:
    """The hand-written loop; returns the last epoch's validation accuracy."""
    model = make_model(seed)
    opt = torch.optim.Adam(model.parameters(), lr=LR)
    gen = torch.Generator().manual_seed(seed)
    x, y = train
    acc = 0.0
    for _ in range(epochs):
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


def run_canon(train: Split, val: Split, epochs: int, seed: int) -> float:
    """canonml's ``fit`` as a run wires it; returns the last epoch's validation accuracy."""
    model = make_model(seed)
    spec = TrainSpec(epochs=epochs, batch_size=BATCH)  # adam, lr 1e-3, schedule none
    step = ClassificationStep(model, spec)
    steps = -(-len(train[0]) // BATCH)
    schedule = build_schedule(spec.schedule, step.optimizer, epochs, steps)
    state = TrainState()
    state.generator.manual_seed(seed)
    with tempfile.TemporaryDirectory() as tmp:
        callbacks: list[Callback] = [
            LRSchedule({"optimizer": schedule}, "val_loss"),
            HistoryCSV(Path(tmp) / "history.csv"),
        ]
        callbacks.append(Checkpointer(Path(tmp), step, callbacks[:], "val_loss"))
        fit(step, train, val, epochs=epochs, batch_size=BATCH, state=state, callbacks=callbacks)
    return float(state.history[-1]["val_accuracy"])


def timed(fn: Callable[..., float], *args: object) -> tuple[float, float]:
    """(seconds, result) of one call."""
    start = time.perf_counter()
    acc = fn(*args)
    return time.perf_counter() - start, acc


def compare(train: Split, val: Split, epochs: int, repeats: int, seed: int) -> None:
    """Alternate plain and canon runs; print a row per round, the medians and the ratio."""
    small = (train[0][: 20 * BATCH], train[1][: 20 * BATCH])
    for fn in (run_plain, run_canon):  # warm-up: first-call costs (allocator, kernels)
        fn(small, val, 1, seed)
    print(f"{'round':>6} {'plain_s':>8} {'canon_s':>8} {'plain_acc':>9} {'canon_acc':>9}")
    plain, canon = [], []
    for r in range(1, repeats + 1):
        tp, ap = timed(run_plain, train, val, epochs, seed)
        tc, ac = timed(run_canon, train, val, epochs, seed)
        plain.append(tp)
        canon.append(tc)
        print(f"{r:>6} {tp:>8.3f} {tc:>8.3f} {ap:>9.4f} {ac:>9.4f}")
    mp, mc = statistics.median(plain), statistics.median(canon)
    print(f"{'median':>6} {mp:>8.3f} {mc:>8.3f}")
    print(f"overhead_ratio={mc / mp:.3f}")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--epochs", type=int, default=2)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--rows", type=int, default=60_000)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--quick", action="store_true", help="6,000 rows, 1 repeat (smoke test)")
    args = p.parse_args()
    if args.quick:
        args.rows, args.repeats = 6_000, 1
    torch.set_num_threads(args.threads)
    train, val = make_data(args.rows, args.rows // 10, args.seed)
    print(
        f"rows={args.rows} val={len(val[0])} epochs={args.epochs} batch={BATCH} "
        f"threads={args.threads}"
    )
    compare(train, val, args.epochs, args.repeats, args.seed)


if __name__ == "__main__":
    main()
