"""``.safetensors`` bytes that describe themselves: weights plus string metadata.

Every weights file canonml writes carries ``format: pt`` (what Hugging Face loaders expect),
the architecture, the sha256 of the run's resolved ``spec.yaml`` (the manifest's
``lineage.spec_sha256``) and the canonml version. The safetensors writer orders metadata by
a per-process hash, so the header is rewritten with sorted keys: the same weights and spec
give the same bytes in every process.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import yaml

from canonml import __version__
from canonml.errors import CanonError
from canonml.io import sha256_bytes
from canonml.model_io import ModelIO

if TYPE_CHECKING:
    import torch
    from torch import nn

ALIGN = 8  # safetensors pads its JSON header with spaces to a multiple of 8 bytes


def weights_metadata(spec_yaml: bytes | None) -> dict[str, str]:
    """The metadata of weights trained from the resolved spec ``spec_yaml`` (None: unknown)."""
    meta = {"format": "pt", "canonml_version": __version__}
    if spec_yaml is not None:
        spec = yaml.safe_load(spec_yaml) or {}
        arch = (spec.get("model") or {}).get("arch") if isinstance(spec, dict) else None
        if arch:
            meta["architecture"] = str(arch)
        meta["spec_sha256"] = sha256_bytes(spec_yaml)
    return meta


def weights_bytes(
    weights: nn.Module | Mapping[str, torch.Tensor], spec_yaml: bytes | None
) -> bytes:
    """``weights`` (a model or a state dict) as safetensors bytes with ``weights_metadata``."""
    from safetensors.torch import save
    from torch import nn

    state = weights.state_dict() if isinstance(weights, nn.Module) else weights
    tensors = {k: v.detach().cpu().contiguous() for k, v in state.items()}
    return _sorted_header(save(tensors, metadata=weights_metadata(spec_yaml)))


def _sorted_header(blob: bytes) -> bytes:
    """``blob`` with its header re-encoded: metadata keys sorted, tensors in file order."""
    n = int.from_bytes(blob[:8], "little")
    header = json.loads(blob[8 : 8 + n])
    meta = header.pop("__metadata__", None)
    tensors = sorted(header.items(), key=lambda kv: (kv[1]["data_offsets"], kv[0]))
    ordered = ({"__metadata__": dict(sorted(meta.items()))} if meta else {}) | dict(tensors)
    text = json.dumps(ordered, separators=(",", ":")).encode("utf-8")
    text += b" " * (-len(text) % ALIGN)
    return len(text).to_bytes(8, "little") + text + blob[8 + n :]


def load_trained(
    spec: Any, io: ModelIO, blob: bytes, where: str, error: type[CanonError]
) -> nn.Module:
    """The model ``spec`` (a ``model:`` section) built for ``io`` with the weights in
    ``blob``, in eval mode. ``error`` is raised naming ``where`` if they do not fit."""
    from safetensors import SafetensorError
    from safetensors.torch import load

    from canonml.models import build_model

    # A model section that loads weights of its own when built (a pretrained checkpoint)
    # says how to build it bare: the trained weights replace them anyway.
    bare = getattr(spec, "bare", None)
    try:
        model = build_model(bare() if callable(bare) else spec, io)
    except CanonError as e:
        raise error(f"{where}: cannot build the model of its spec ({e})") from None
    try:
        model.load_state_dict(load(blob))
    except (SafetensorError, RuntimeError, ValueError, OSError) as e:
        first = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise error(f"{where}: corrupt, or not this model's weights ({first})") from None
    return model.eval()
