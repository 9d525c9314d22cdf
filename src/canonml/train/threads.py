"""How many intra-op threads torch uses for a run (``train.threads``).

torch's OpenMP threads spin-wait for each other. Measured here (bench/threads.py, 2 cores):
on an idle machine 2 threads train 1.2–1.8× faster than 1 for batches of 15 M multiply-adds
and more; with the other core busy they are 1.25–5× slower up to 2.6 G multiply-adds per
batch (and up to ~170× slower when the other load is a second torch process — a server, a
second run, CI). A run cannot know the future load, so ``auto`` uses 1 thread unless a
training batch is so heavy that the idle gain outweighs the busy loss, and never more
threads than the cores this process may use. It depends only on the spec and the machine's
core count, never on the current load, so the same spec gives the same numbers.
"""

from __future__ import annotations

import os

import torch

# Forward multiply-adds per batch above which more threads pay off on balance: the product of
# the idle gain and the busy loss first exceeds 1 near 2.8 G (bench/threads.py).
HEAVY_BATCH_MACS = 3_000_000_000


def choose_threads(
    setting: int | str, model: torch.nn.Module, sample: torch.Tensor, batch_size: int
) -> int:
    """The thread count for ``setting`` ('auto' or a number) and this model and batch."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    cores = cores or 1
    if setting != "auto":
        return int(setting)
    macs = forward_macs(model, sample) * batch_size
    return 1 if macs < HEAVY_BATCH_MACS else min(cores, 8)


def forward_macs(model: torch.nn.Module, sample: torch.Tensor) -> int:
    """Multiply-adds of one forward pass on ``sample`` (one example, batch axis included)."""
    from torch.utils.flop_counter import FlopCounterMode

    was_training = model.training
    model.eval()
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        model(sample)
    model.train(was_training)
    return int(counter.get_total_flops() // 2)
