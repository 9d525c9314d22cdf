"""An architecture table (layer, output shape, parameters) from one forward pass."""

from __future__ import annotations

from typing import Any

import torch


def summarize(model: torch.nn.Module, sample: tuple[torch.Tensor, ...]) -> list[dict[str, Any]]:
    """One row per leaf module, in call order; ``sample``: the model's inputs for one example,
    with a batch axis."""
    rows: list[dict[str, Any]] = []
    hooks = []
    for name, module in model.named_modules():
        if any(True for _ in module.children()):
            continue

        def record(mod: torch.nn.Module, _inp: Any, out: Any, name: str = name) -> None:
            shape = list(out.shape[1:]) if isinstance(out, torch.Tensor) else []
            params = sum(p.numel() for p in mod.parameters(recurse=False))
            rows.append(
                {
                    "layer": f"{name} ({type(mod).__name__})",
                    "output_shape": shape,
                    "parameters": int(params),
                }
            )

        hooks.append(module.register_forward_hook(record))
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            model(*sample)
    finally:
        for h in hooks:
            h.remove()
        model.train(was_training)
    return rows


def count_parameters(model: torch.nn.Module) -> int:
    return int(sum(p.numel() for p in model.parameters()))
