"""Architectures, one per module, in the ``MODELS`` registry keyed by ``model.arch``.

An entry is ``build(spec, io) -> nn.Module`` with ``io`` a ``ModelIO`` (shapes from the
task): a model is rebuilt from its spec section and the data signature alone, which is what
lets a package rebuild it later.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from canonml.model_io import ModelIO
from canonml.registry import Registry

if TYPE_CHECKING:
    from torch import nn

Builder = Callable[[Any, ModelIO], "nn.Module"]
MODELS: Registry[Builder] = Registry("model", "model.arch")


def build_model(spec: Any, io: ModelIO) -> nn.Module:
    """Build the architecture ``spec.arch`` for the shapes in ``io``."""
    return MODELS.get(spec.arch)(spec, io)


from canonml.models import autoencoder, cnn, dcgan, gan, gpt, mlp, pretrained, vae  # noqa: E402,F401  (registration)
