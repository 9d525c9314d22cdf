"""The PyTorch model rebuilt from ``spec.yaml`` text and ``weights.safetensors`` bytes."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from canonml.errors import CanonError
from canonml.package.reader import PackageError

if TYPE_CHECKING:
    from torch import nn


def rebuild_model(spec_text: str, weights: bytes, signature: dict[str, Any]) -> nn.Module:
    """Build ``model:`` of the spec for the signature's input shape and load the weights.

    Raises ``PackageError`` naming ``spec.yaml`` or ``weights.safetensors``.
    """
    from canonml.models.weights import load_trained
    from canonml.spec import validate_spec
    from canonml.spec.load import parse_spec_text
    from canonml.tasks import get_task

    try:
        spec = validate_spec(parse_spec_text(spec_text, "spec.yaml"))
    except CanonError as e:
        text = str(e)
        raise PackageError(text if text.startswith("spec.yaml") else f"spec.yaml: {text}") from None
    # The data's shape: a generator's graph inputs are noise, not the images it was built for.
    shape = tuple(
        int(d) for d in signature.get("image_shape") or signature["inputs"][0]["shape"][1:]
    )
    io = get_task(spec).model_io(shape, signature.get("labels"), signature.get("preprocessing"))
    return load_trained(spec.model, io, weights, "weights.safetensors", PackageError)
