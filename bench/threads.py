"""Training steps/s with 1 vs all intra-op threads, idle and with another core kept busy.

The figure behind ``HEAVY_BATCH_MACS`` in ``canonml.train.threads``: below it ``auto``
picks 1 thread, above it all cores. Each cell trains one model with canonml's
``ClassificationStep`` for about ``--seconds``; "busy" runs a pure-Python spinning process
beside it, as a second run, a test suite or a server would.
"""

from __future__ import annotations

import argparse
import contextlib
import multiprocessing as mp
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import torch

from canonml.model_io import ModelIO
from canonml.models import build_model
from canonml.spec.model import CNNSpec, MLPSpec
from canonml.spec.train import TrainSpec
from canonml.tasks.steps import ClassificationStep
from canonml.train.threads import HEAVY_BATCH_MACS, choose_threads, forward_macs

# name, model spec, input shape (no batch axis), batch size
CASES: list[tuple[str, Any, tuple[int, ...], int]] = [
    ("digits-mlp", MLPSpec(hidden=[128]), (64,), 32),
    ("mnist-mlp", MLPSpec(hidden=[128]), (784,), 64),
    ("digits-cnn", CNNSpec(), (1, 8, 8), 32),
    ("wide-mlp", MLPSpec(hidden=[512, 512]), (784,), 256),
    ("mnist-cnn", CNNSpec(), (1, 28, 28), 64),
    ("cifar-cnn", CNNSpec(channels=[32, 64, 128]), (3, 32, 32), 64),
    ("cifar-wide", CNNSpec(channels=[64, 128, 256]), (3, 32, 32), 64),
]
CLASSES = 10


def _spin(ready: Any, stop: Any) -> None:
    """Keep one core busy with pure Python until ``stop`` is set."""
    ready.set()
    while not stop.is_set():
        for _ in range(200_000):
            pass


@contextlib.contextmanager
def busy_cores(n: int) -> Iterator[None]:
    """Run ``n`` spinning processes for the duration of the block."""
    ctx = mp.get_context("spawn")  # a fresh interpreter: no inherited OpenMP state
    stop, ready = ctx.Event(), [ctx.Event() for _ in range(n)]
    procs = [ctx.Process(target=_spin, args=(r, stop), daemon=True) for r in ready]
    for p in procs:
        p.start()
    for r in ready:
        r.wait(30)  # spinning before anything is measured
    try:
        yield
    finally:
        stop.set()
        for p in procs:
            p.join(5)
            if p.is_alive():
                p.terminate()
                p.join()


def steps_per_second(
    step: ClassificationStep, x: torch.Tensor, y: torch.Tensor, threads: int, seconds: float
) -> float:
    """Train on one fixed batch for about ``seconds``; warm-up steps are not counted."""
    torch.set_num_threads(threads)
    for _ in range(2):  # (re)builds the thread pool and the kernels' caches
        step.train_batch(x, y)
    n, start = 0, time.perf_counter()
    while (elapsed := time.perf_counter() - start) < seconds or n < 3:
        step.train_batch(x, y)
        n += 1
    return n / elapsed


@dataclass
class Case:
    step: ClassificationStep
    x: torch.Tensor  # (B, *shape)
    y: torch.Tensor  # (B,)
    macs: int  # forward multiply-adds per batch
    auto: int  # what choose_threads("auto", ...) picks


def make_case(spec: Any, shape: tuple[int, ...], batch: int) -> Case:
    """A model with its optimizer, one random batch, and its MACs and auto thread count."""
    torch.manual_seed(0)
    model = build_model(spec, ModelIO(shape, CLASSES))
    sample = torch.zeros(1, *shape)
    macs = forward_macs(model, sample) * batch
    auto = choose_threads("auto", model, (sample,), batch)
    train = TrainSpec(batch_size=batch)
    step = ClassificationStep(model, train)
    x, y = torch.randn(batch, *shape), torch.randint(0, CLASSES, (batch,))
    return Case(step, x, y, macs, auto)


def machine_cpu_seconds() -> float:
    """CPU seconds all processes have used since boot (Linux; NaN elsewhere)."""
    try:
        with open("/proc/stat") as f:
            user, nice, system, _idle, _iowait, *rest = map(int, f.readline().split()[1:])
    except (OSError, ValueError):
        return float("nan")
    return (user + nice + system + sum(rest[:3])) / os.sysconf("SC_CLK_TCK")


def measure(
    cases: list[Case], many: int, spinners: int, seconds: float
) -> tuple[list[list[float]], list[float]]:
    """Per case: steps/s idle 1t, idle Nt, busy 1t, busy Nt; and per phase, the cores that
    other processes kept busy on average (the load this script does not control)."""
    rows: list[list[float]] = [[] for _ in cases]
    others = []
    for busy in (False, True):
        with busy_cores(spinners) if busy else contextlib.nullcontext():
            wall, cpu, own = time.perf_counter(), machine_cpu_seconds(), time.process_time()
            for row, c in zip(rows, cases, strict=True):
                row += [steps_per_second(c.step, c.x, c.y, t, seconds) for t in (1, many)]
            used = machine_cpu_seconds() - cpu - (time.process_time() - own)
            others.append(used / (time.perf_counter() - wall))
    return rows, others


def print_table(
    cases: list[Case], rows: list[list[float]], others: list[float], many: int, spinners: int
) -> None:
    cores = os.cpu_count() or 1
    print(
        f"cores={cores} spinners={spinners} HEAVY_BATCH_MACS={HEAVY_BATCH_MACS:,} "
        f"other load: idle {others[0]:.2f} cores, busy {others[1]:.2f} cores "
        f"(steps/s; ×: {many}t over 1t)"
    )
    print(
        f"{'model':<11} {'batch':>5} {'MACs/batch':>13} {'idle 1t':>8} {f'idle {many}t':>8} "
        f"{'×':>5} {'busy 1t':>8} {f'busy {many}t':>8} {'×':>5} {'auto':>4}"
    )
    for (name, *_, batch), c, r in zip(CASES, cases, rows, strict=True):
        print(
            f"{name:<11} {batch:>5} {c.macs:>13,} {r[0]:>8.1f} {r[1]:>8.1f} "
            f"{r[1] / r[0]:>5.2f} {r[2]:>8.1f} {r[3]:>8.1f} {r[3] / r[2]:>5.2f} {c.auto:>4}"
        )


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seconds", type=float, default=1.0, help="per measurement")
    p.add_argument("--spinners", type=int, default=1, help="busy processes in 'busy' runs")
    args = p.parse_args()
    many = min(os.cpu_count() or 1, 8)  # what choose_threads uses above the threshold
    cases = [make_case(spec, shape, batch) for _, spec, shape, batch in CASES]
    rows, others = measure(cases, many, args.spinners, args.seconds)
    print_table(cases, rows, others, many, args.spinners)


if __name__ == "__main__":
    main()
