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
from typing import cast

import torch
from torch import nn

# Forward multiply-adds per batch above which more threads pay off on balance: the product of
# the idle gain and the busy loss first exceeds 1 near 2.8 G (bench/threads.py).
HEAVY_BATCH_MACS = 3_000_000_000


def choose_threads(
    setting: int | str, model: torch.nn.Module, sample: tuple[torch.Tensor, ...], batch_size: int
) -> int:
    """The thread count for ``setting`` ('auto' or a number) and this model and batch."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    cores = cores or 1
    if setting != "auto":
        return int(setting)
    if int(os.environ.get("WORLD_SIZE", "1") or 1) > 1:
        return 1  # a process of a distributed run: its siblings use the other cores
    if cores == 1:
        return 1  # nothing to choose: no need to count
    macs = forward_macs(model, sample) * batch_size
    return 1 if macs < HEAVY_BATCH_MACS else min(cores, 8)


# Layers whose cost is a weight-shaped product per output position, counted by a hook.
_COUNTED = (nn.Linear, nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.ConvTranspose1d, nn.ConvTranspose2d)
# Layers that are cheap beside those (element-wise, reshapes, pooling, norms) or containers.
_CHEAP = (
    nn.Sequential,
    nn.ModuleList,
    nn.Flatten,
    nn.Unflatten,
    nn.Identity,
    nn.Dropout,
    nn.ReLU,
    nn.GELU,
    nn.Tanh,
    nn.Sigmoid,
    nn.SiLU,
    nn.LeakyReLU,
    nn.ELU,
    nn.MaxPool1d,
    nn.MaxPool2d,
    nn.AvgPool1d,
    nn.AvgPool2d,
    nn.AdaptiveAvgPool2d,
    nn.BatchNorm1d,
    nn.BatchNorm2d,
    nn.LayerNorm,
    nn.GroupNorm,
)


def forward_macs(model: torch.nn.Module, sample: torch.Tensor | tuple[torch.Tensor, ...]) -> int:
    """Multiply-adds of one forward pass on ``sample`` (the inputs of one example, batch axis
    included; one tensor or a tuple of them).

    Models built only of standard layers are counted with forward hooks (microseconds);
    anything else goes through torch's ``FlopCounterMode``, which counts every operator but
    costs about a second on first use (it imports torch's compiler stack).
    """
    layers = list(model.modules())
    if not all(isinstance(m, _COUNTED + _CHEAP) for m in layers):
        return _traced_macs(model, sample)
    total = 0

    def count(module: nn.Module, inputs: tuple[torch.Tensor, ...], output: torch.Tensor) -> None:
        nonlocal total
        weight = cast(torch.Tensor, module.weight)
        if isinstance(module, nn.Linear):  # weight (out, in): one row per output vector
            total += weight.numel() * (output.numel() // output.shape[-1])
        elif isinstance(module, nn.Conv1d | nn.Conv2d | nn.Conv3d):
            # weight (out, in/groups, *k): each output element sums in/groups × k inputs
            total += output.numel() * (weight.numel() // weight.shape[0])
        else:  # ConvTranspose, weight (in, out/groups, *k): each input element is spread
            total += inputs[0].numel() * (weight.numel() // weight.shape[0])

    hooks = [m.register_forward_hook(count) for m in layers if isinstance(m, _COUNTED)]
    try:
        _run_eval(model, sample)
    finally:
        for hook in hooks:
            hook.remove()
    return total


def _run_eval(model: torch.nn.Module, sample: torch.Tensor | tuple[torch.Tensor, ...]) -> None:
    was_training = model.training
    model.eval()
    with torch.no_grad():
        model(*(sample if isinstance(sample, tuple) else (sample,)))
    model.train(was_training)


def _traced_macs(model: torch.nn.Module, sample: torch.Tensor | tuple[torch.Tensor, ...]) -> int:
    from torch.utils.flop_counter import FlopCounterMode

    with FlopCounterMode(display=False) as counter:
        _run_eval(model, sample)
    return int(counter.get_total_flops() // 2)
