"""GAN training steps/s with 1 and 2 intra-op threads, idle and with the other core busy.

Each cell runs canonml's ``AdversarialStep`` (one D update and one G update on a batch of
64, the templates' Adam settings) for about ``--seconds``; "busy" runs a pure-Python
spinning process beside it (``bench/threads.py``'s), as a second run, a test suite or a
server would. The table ends with what ``train.threads: auto`` picks for each model: it
counts the forward multiply-adds of the model's ``forward`` (the generator) per batch,
while a GAN step does about G + 3 D forwards and their backwards; both are printed.
**Target: ``auto`` is the faster choice with the other core busy.**
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

sys.path.insert(0, str(Path(__file__).parent))
from threads import busy_cores, machine_cpu_seconds  # noqa: E402  (bench/threads.py)

from canonml.model_io import ModelIO  # noqa: E402
from canonml.models import build_model  # noqa: E402
from canonml.spec import load_spec  # noqa: E402
from canonml.tasks.adversarial import AdversarialStep  # noqa: E402
from canonml.train.threads import HEAVY_BATCH_MACS, choose_threads, forward_macs  # noqa: E402

BATCH = 64
# name, template, image shape (C, H, W), classes
CASES: list[tuple[str, str, tuple[int, int, int], int]] = [
    ("digits-gan", "digits-gan", (1, 8, 8), 10),
    ("digits-dcgan", "digits-dcgan", (1, 8, 8), 10),
    ("digits-cgan", "digits-cgan", (1, 8, 8), 10),
    ("mnist-gan", "digits-gan", (1, 28, 28), 10),
    ("mnist-dcgan", "digits-dcgan", (1, 28, 28), 10),
]


@dataclass
class Case:
    step: AdversarialStep
    x: torch.Tensor  # (B, C, H, W) in [-1, 1]
    y: torch.Tensor  # (B,)
    g_macs: int  # the generator's forward per batch: what auto counts
    step_macs: int  # G + 3 D forwards per batch: a GAN step's forward work
    auto: int


def make_case(template: str, shape: tuple[int, int, int], classes: int) -> Case:
    spec = load_spec(f"template:{template}")
    torch.manual_seed(0)
    model: Any = build_model(spec.model, ModelIO(shape, 1, classes))
    k = model.n_classes
    z = torch.zeros(1, model.latent)
    noise = (z, torch.zeros(1, dtype=torch.long)) if k else (z,)
    g_macs = forward_macs(model, noise) * BATCH
    image = (torch.zeros(1, *shape), *noise[1:])
    d_macs = forward_macs(model.discriminator, image) * BATCH
    auto = choose_threads("auto", model, noise, BATCH)
    x = torch.rand(BATCH, *shape) * 2 - 1
    y = torch.randint(0, classes, (BATCH,))
    return Case(AdversarialStep(model, spec), x, y, g_macs, g_macs + 3 * d_macs, auto)


def steps_per_second(case: Case, threads: int, seconds: float) -> float:
    torch.set_num_threads(threads)
    for _ in range(3):  # (re)builds the thread pool and the kernels' caches
        case.step.train_batch(case.x, case.y)
    n, start = 0, time.perf_counter()
    while (elapsed := time.perf_counter() - start) < seconds or n < 5:
        case.step.train_batch(case.x, case.y)
        n += 1
    return n / elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=3.0, help="per cell")
    args = parser.parse_args()
    cases = [make_case(t, s, k) for _, t, s, k in CASES]
    rows: list[list[float]] = [[] for _ in cases]
    others = []
    for busy in (False, True):
        with busy_cores(1) if busy else contextlib.nullcontext():
            wall, cpu, own = time.perf_counter(), machine_cpu_seconds(), time.process_time()
            for row, case in zip(rows, cases, strict=True):
                row += [steps_per_second(case, t, args.seconds) for t in (1, 2)]
            used = machine_cpu_seconds() - cpu - (time.process_time() - own)
            others.append(used / (time.perf_counter() - wall))
    print(
        f"cores={os.cpu_count()} batch={BATCH} HEAVY_BATCH_MACS={HEAVY_BATCH_MACS:,} other load: "
        f"idle {others[0]:.2f} cores, busy {others[1]:.2f} cores (steps/s; ×: 2t over 1t)"
    )
    print(
        f"{'model':<13} {'G MACs/batch':>13} {'step MACs':>13} {'idle 1t':>8} {'idle 2t':>8} "
        f"{'×':>5} {'busy 1t':>8} {'busy 2t':>8} {'×':>5} {'auto':>4} {'faster busy':>11}"
    )
    for (name, *_), c, r in zip(CASES, cases, rows, strict=True):
        faster = 1 if r[2] >= r[3] else 2
        print(
            f"{name:<13} {c.g_macs:>13,} {c.step_macs:>13,} {r[0]:>8.1f} {r[1]:>8.1f} "
            f"{r[1] / r[0]:>5.2f} {r[2]:>8.1f} {r[3]:>8.1f} {r[3] / r[2]:>5.2f} {c.auto:>4} "
            f"{faster:>7}{' ok' if faster == c.auto else ' MISS'}"
        )


if __name__ == "__main__":
    main()
