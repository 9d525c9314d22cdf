"""Architectures, one per module, in the ``MODELS`` registry keyed by ``model.arch``.

An entry is ``build(spec, input_shape, n_outputs) -> nn.Module``: a model is rebuilt from its
spec section and the data signature alone, which is what lets a package rebuild it later.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from canonml.registry import Registry

if TYPE_CHECKING:
    from torch import nn

Builder = Callable[[Any, tuple[int, ...], int], "nn.Module"]
MODELS: Registry[Builder] = Registry("model", "model.arch")


def build_model(spec: Any, input_shape: tuple[int, ...], n_outputs: int) -> nn.Module:
    """Build the architecture ``spec.arch`` for inputs of ``input_shape`` (no batch axis)."""
    return MODELS.get(spec.arch)(spec, tuple(input_shape), n_outputs)


from canonml.models import cnn, mlp  # noqa: E402,F401  (registration)
