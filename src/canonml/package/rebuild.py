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
    from safetensors import SafetensorError
    from safetensors.torch import load

    from canonml.models import build_model
    from canonml.models.io import ModelIO
    from canonml.spec import validate_spec
    from canonml.spec.load import parse_spec_text

    try:
        spec = validate_spec(parse_spec_text(spec_text, "spec.yaml"))
    except CanonError as e:
        text = str(e)
        raise PackageError(text if text.startswith("spec.yaml") else f"spec.yaml: {text}") from None
    labels = signature.get("labels")
    shape = tuple(int(d) for d in signature["inputs"][0]["shape"][1:])
    try:
        model = build_model(spec.model, ModelIO(shape, len(labels) if labels else 1))
    except CanonError as e:
        raise PackageError(f"spec.yaml: cannot build the model ({e})") from None
    try:
        model.load_state_dict(load(weights))
    except (SafetensorError, RuntimeError, ValueError, OSError) as e:
        first = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise PackageError(
            f"weights.safetensors: unreadable or not this model's ({first})"
        ) from None
    return model.eval()
