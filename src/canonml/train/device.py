"""``train.device``: where a run's modules, batches and metrics live while it trains.

The choice is made once, before the run directory exists, so a device the machine lacks
fails like any other bad spec value. Everything written from a run (checkpoints, weights,
packages) is taken from CPU copies, so a run started on a GPU resumes on a CPU and the other
way round.
"""

from __future__ import annotations

import contextlib
from typing import Any

import torch

from canonml.errors import SpecError


def available() -> list[str]:
    """The devices this machine can train on, ``cpu`` first."""
    found = ["cpu"]
    if torch.cuda.is_available():
        found += ["cuda"] + [f"cuda:{i}" for i in range(torch.cuda.device_count())]
    mps = getattr(torch.backends, "mps", None)
    if mps is not None and mps.is_available():
        found.append("mps")
    return found


def resolve_device(name: str, path: str = "train.device") -> torch.device:
    """``auto`` → CUDA when available, else CPU; anything else must exist on this machine."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    have = available()
    if name not in have:
        raise SpecError(
            path,
            f"{name!r} is not available on this machine (available: {', '.join(have)}); "
            "use train.device: auto or one of those",
        )
    return torch.device(name)


def check_precision(precision: str, device: torch.device) -> None:
    """fp16 autocast needs CUDA (and gets a gradient scaler there); bf16 works everywhere."""
    if precision == "fp16" and device.type != "cuda":
        raise SpecError(
            "train.precision",
            f"fp16 needs a CUDA device, got train.device {device.type!r} (use precision: "
            "bf16, which needs no gradient scaler, or fp32)",
        )


def autocast(
    precision: str, device: torch.device | str = "cpu"
) -> contextlib.AbstractContextManager[Any]:
    """The context a training batch runs in: autocast to bfloat16 (``bf16``) or float16
    (``fp16``) on ``device``'s type, else none."""
    kind = torch.device(device).type
    if precision == "bf16":
        return torch.autocast(kind, dtype=torch.bfloat16)
    if precision == "fp16":
        return torch.autocast(kind, dtype=torch.float16)
    return contextlib.nullcontext()


def module_device(module: torch.nn.Module) -> torch.device:
    """The device of ``module``'s first parameter (CPU for a module without any)."""
    for p in module.parameters():
        return p.device
    return torch.device("cpu")


def rng_states(device: torch.device) -> dict[str, Any]:
    """The RNG states a checkpoint keeps besides the CPU one: CUDA's, when training on it."""
    if device.type == "cuda":
        return {"cuda": torch.cuda.get_rng_state_all()}
    return {}


def set_rng_states(states: dict[str, Any], device: torch.device) -> None:
    """Restore what :func:`rng_states` saved, where it still applies (a CUDA checkpoint
    resumed on a CPU leaves the CUDA generators alone: there are none)."""
    if device.type == "cuda" and "cuda" in states:
        with contextlib.suppress(RuntimeError, IndexError):  # fewer GPUs than when saved
            torch.cuda.set_rng_state_all(states["cuda"])
