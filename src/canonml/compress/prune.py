"""Magnitude pruning with ``torch.nn.utils.prune``: global unstructured (zeros in place:
the same shapes, so the same file size) or structured (whole units and conv channels
removed: a smaller model, described by a smaller spec)."""

from __future__ import annotations

import copy
from typing import Any

import torch
from torch import nn
from torch.nn.utils import prune

from canonml.errors import SpecError

NORMS = (nn.BatchNorm1d, nn.BatchNorm2d, nn.GroupNorm, nn.LayerNorm)
# The spec keys of each architecture's widths, in the order of its weight layers (the last
# layer, the head, keeps its outputs).
WIDTH_KEYS = {"mlp": ("hidden",), "cnn": ("channels", "dense")}


def weight_layers(model: nn.Module) -> list[nn.Module]:
    """The Linear and Conv2d layers of ``model``, in order."""
    return [m for m in model.modules() if isinstance(m, nn.Linear | nn.Conv2d)]


def prune_unstructured(model: nn.Module, amount: float) -> nn.Module:
    """Zero the ``amount`` share of all weights with the smallest magnitude, across layers
    (``prune.global_unstructured``). The masks stay on (``make_permanent`` removes them),
    so fine-tuning keeps pruned weights at zero."""
    targets = [(m, "weight") for m in weight_layers(model)]
    prune.global_unstructured(targets, pruning_method=prune.L1Unstructured, amount=amount)
    return model


def make_permanent(model: nn.Module) -> nn.Module:
    """Fold every pruning mask into its weight (``prune.remove``)."""
    for m in weight_layers(model):
        if prune.is_pruned(m):
            prune.remove(m, "weight")
    return model


def kept_units(layer: nn.Module, amount: float) -> torch.Tensor:
    """The output units (rows, or conv filters) of ``layer`` that structured L1 pruning of
    ``amount`` keeps (``prune.LnStructured``; at least one), in order."""
    weight: torch.Tensor = layer.weight.detach()  # type: ignore[operator]
    method = prune.LnStructured(amount, n=1, dim=0)
    mask = method.compute_mask(weight, default_mask=torch.ones_like(weight))
    keep = torch.nonzero(mask.reshape(len(mask), -1).any(dim=1)).flatten()
    if len(keep) == 0:  # amount rounds every unit away: keep the strongest
        keep = weight.reshape(len(weight), -1).abs().sum(dim=1).argmax().reshape(1)
    return keep


def structured_spec(model_spec: Any, model: nn.Module, amount: float) -> tuple[Any, list[Any]]:
    """The model section with every hidden width cut by structured pruning, and the kept
    unit indices per weight layer (None for the head, which keeps every output)."""
    keys = WIDTH_KEYS.get(model_spec.arch)
    if keys is None:
        raise SpecError(
            "compress.prune.structured",
            f"removing units needs a model whose widths the spec lists (mlp, cnn); "
            f"{model_spec.arch} is not one (use structured: false)",
        )
    layers = weight_layers(model)
    keeps: list[Any] = [kept_units(m, amount) for m in layers[:-1]] + [None]
    widths = [len(k) for k in keeps[:-1]]
    update, at = {}, 0
    for key in keys:
        n = len(getattr(model_spec, key))
        update[key], at = widths[at : at + n], at + n
    return model_spec.model_copy(update=update), keeps


@torch.no_grad()
def copy_kept(old: nn.Module, new: nn.Module, keeps: list[Any]) -> nn.Module:
    """Copy ``old``'s weights into the smaller ``new`` (same layer sequence): each weight
    layer's kept outputs over the previous layer's kept inputs, the norms between them
    likewise. A Linear after conv layers reads channel × position features."""
    old_mods, new_mods = _leaves(old), _leaves(new)
    if [type(m) for m in old_mods] != [type(m) for m in new_mods]:
        raise ValueError("the pruned model does not have the original's layers")
    # The next weight layer's kept inputs, and (after a conv) the conv's channel count.
    layer_i, prev, prev_channels = 0, None, None
    for o, n in zip(old_mods, new_mods, strict=True):
        if isinstance(o, nn.Linear | nn.Conv2d):
            keep = keeps[layer_i]
            w = o.weight
            if prev is not None:
                cols = prev
                if isinstance(o, nn.Linear) and prev_channels is not None:
                    per = o.in_features // prev_channels  # positions per conv channel
                    cols = (prev[:, None] * per + torch.arange(per)[None, :]).flatten()
                w = w[:, cols]
            if keep is not None:
                w = w[keep]
            n.weight.copy_(w)  # type: ignore[operator]
            if o.bias is not None:
                n.bias.copy_(o.bias if keep is None else o.bias[keep])  # type: ignore[operator]
            prev = keep
            prev_channels = o.out_channels if isinstance(o, nn.Conv2d) else None
            layer_i += 1
        elif isinstance(o, NORMS) and prev is not None:
            for name in ("weight", "bias", "running_mean", "running_var"):
                src = getattr(o, name, None)
                if isinstance(src, torch.Tensor):
                    getattr(n, name).copy_(src[prev])
    return new


def _leaves(model: nn.Module) -> list[nn.Module]:
    return [m for m in model.modules() if not list(m.children())]


def pruned_structured(
    model_spec: Any, model: nn.Module, amount: float, build: Any
) -> tuple[Any, nn.Module]:
    """(the smaller model section, the smaller model with the kept weights); ``build``
    makes a model from a model section (the task's inputs and outputs)."""
    spec, keeps = structured_spec(model_spec, model, amount)
    small = build(spec)
    return spec, copy_kept(copy.deepcopy(model).eval(), small, keeps)
