"""How many intra-op threads torch uses for a run (``train.threads``).

On small models, torch's OpenMP threads spend more time spin-waiting than working: measured
here (bench/threads.py), 2 threads on 2 cores are at best slightly faster than 1 on an idle
machine and 3–60× slower when the other core is busy (a server, a second run, CI). The
``auto`` rule therefore uses 1 thread unless a training batch is heavy enough to pay for the
hand-off, and never more threads than cores. It depends only on the spec and the machine's
core count, never on the current load, so the same spec gives the same numbers.
"""

from __future__ import annotations

import os

import torch

# Forward multiply-adds per batch above which more threads pay off (bench/threads.py).
HEAVY_BATCH_MACS = 200_000_000


def choose_threads(
    setting: int | str, model: torch.nn.Module, sample: torch.Tensor, batch_size: int
) -> int:
    """The thread count for ``setting`` ('auto' or a number) and this model and batch."""
    cores = os.cpu_count() or 1
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
