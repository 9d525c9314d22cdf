"""``model.onnx`` of a text classifier: (input_ids, attention_mask) → its outputs, with
dynamic batch and sequence axes (tokenizing happens outside, with ``tokenizer.json``)."""

from __future__ import annotations

import io
import warnings
from typing import TYPE_CHECKING

from canonml.package.export import OPSET

if TYPE_CHECKING:
    from torch import nn

INPUTS = ("input_ids", "attention_mask")


def export_text_graph(module: nn.Module, outputs: list[str]) -> bytes:
    """The ONNX bytes (opset 17, weights inside) of ``module(input_ids, attention_mask)``."""
    import torch

    # Traced on rows of different lengths, so that no length becomes a constant.
    ids = torch.tensor([[5, 6, 7, 8], [5, 6, 0, 0]], dtype=torch.int64)
    mask = torch.tensor([[1, 1, 1, 1], [1, 1, 0, 0]], dtype=torch.int64)
    axes = {name: {0: "batch", 1: "sequence"} for name in INPUTS}
    axes |= {name: {0: "batch"} for name in outputs}
    buf = io.BytesIO()
    with warnings.catch_warnings(), torch.no_grad():
        # The TorchScript exporter, as for every standard graph (canonml.package.export);
        # tracing a Hugging Face model warns about Python values it records as constants.
        warnings.simplefilter("ignore", DeprecationWarning)
        warnings.simplefilter("ignore", torch.jit.TracerWarning)
        warnings.simplefilter("ignore", UserWarning)
        torch.onnx.export(
            module,
            (ids, mask),
            buf,  # type: ignore[arg-type]  # the TorchScript exporter writes to file objects
            input_names=list(INPUTS),
            output_names=outputs,
            dynamic_axes=axes,
            opset_version=OPSET,
            dynamo=False,
        )
    return buf.getvalue()
