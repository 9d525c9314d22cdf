"""``model.onnx``: the trained model wrapped with its preprocessing and output head.

raw input → NaN ← fill → (x - shift) / scale → model → softmax / argmax (classification) or
the prediction in the data's units (regression). Exported with the TorchScript-based
exporter (``dynamo=False``): ~0.05 s against ~5 s for the dynamo one, and it handles these
feed-forward graphs exactly (``canon verify`` checks the parity). ``describe_onnx`` then
writes the package's name, version, labels and features into the file's metadata.
"""

from __future__ import annotations

import io
import json
import warnings
from typing import TYPE_CHECKING, Any

from canonml.package.signature import graph_constants

if TYPE_CHECKING:
    from torch import nn

    from canonml.tasks.base import StandardGraphTask, Task

OPSET = 17
# OIP datatypes of graph inputs → torch dtypes of the sample the exporter traces with.
TORCH_DTYPES = {"FP32": "float32", "INT64": "int64"}


def inference_module(
    model: nn.Module, signature: dict[str, Any], task: StandardGraphTask
) -> nn.Module:
    """``model`` in eval mode behind in-graph preprocessing and the task's output head."""
    import torch
    from torch import nn

    state = signature["preprocessing"]
    fill, shift, scale = graph_constants(state)
    # Constants broadcast over the batch: (1, F) per column, or (1, C, 1, 1) per channel.
    view = (1, -1, 1, 1) if state["kind"] == "image" else (1, -1)
    target = state.get("target")  # what the task learned from the training targets, if any

    class Inference(nn.Module):
        fill: torch.Tensor
        shift: torch.Tensor
        scale: torch.Tensor

        def __init__(self) -> None:
            super().__init__()
            self.model = model
            self.has_fill = fill is not None
            if fill is not None:
                self.register_buffer("fill", torch.from_numpy(fill).reshape(view))
            self.register_buffer("shift", torch.from_numpy(shift).reshape(view))
            self.register_buffer("scale", torch.from_numpy(scale).reshape(view))

        def forward(self, x: torch.Tensor) -> Any:
            if self.has_fill:
                x = torch.where(torch.isnan(x), self.fill, x)
            out = self.model((x - self.shift) / self.scale)  # (B, K)
            return task.head(out, target)

    return Inference().eval()


def export_onnx(model: nn.Module, signature: dict[str, Any], task: Task) -> bytes:
    """The ONNX bytes (opset 17) of the task's graph of ``model`` (``Task.export_graph``):
    its own, or raw inputs → in-graph preprocessing → model → head."""
    return task.export_graph(model, signature)


def export_module(module: nn.Module, tensors: list[dict[str, Any]], outputs: list[str]) -> bytes:
    """The ONNX bytes (opset 17, dynamic batch axis, weights inside) of ``module`` taking the
    inputs ``tensors`` (name, OIP datatype, shape) and giving ``outputs`` in order."""
    import torch

    wrapper = module
    inputs = [i["name"] for i in tensors]
    sample = tuple(
        torch.zeros(2, *i["shape"][1:], dtype=getattr(torch, TORCH_DTYPES[i["datatype"]]))
        for i in tensors
    )
    buf = io.BytesIO()
    with warnings.catch_warnings(), torch.no_grad():
        # The TorchScript exporter is chosen on purpose (see the module docstring).
        warnings.filterwarnings(
            "ignore", "You are using the legacy TorchScript-based ONNX export", DeprecationWarning
        )
        warnings.filterwarnings("ignore", "The feature will be removed", DeprecationWarning)
        torch.onnx.export(
            wrapper,
            sample,
            buf,  # type: ignore[arg-type]  # the TorchScript exporter writes to file objects
            input_names=inputs,
            output_names=outputs,
            dynamic_axes={name: {0: "batch"} for name in [*inputs, *outputs]},
            opset_version=OPSET,
            dynamo=False,
        )
    return buf.getvalue()


def describe_onnx(onnx_bytes: bytes, manifest: dict[str, Any]) -> bytes:
    """``onnx_bytes`` with ``metadata_props``, a doc string and canonml as the producer.

    Tools show these without canonml: ONNX Runtime's ``get_modelmeta()`` (its
    ``custom_metadata_map`` and ``description``), Netron, ``onnx.load``.
    """
    import onnx

    model = onnx.load_from_string(onnx_bytes)
    del model.metadata_props[:]
    for key, value in onnx_metadata(manifest).items():
        model.metadata_props.add(key=key, value=value)
    model.doc_string = onnx_doc_string(manifest)
    model.producer_name, model.producer_version = "canonml", str(manifest["versions"]["canonml"])
    return model.SerializeToString()


def onnx_metadata(manifest: dict[str, Any]) -> dict[str, str]:
    """String metadata of ``model.onnx``: lists and mappings as compact JSON (pure)."""
    sig = manifest["signature"]
    meta = {
        "name": manifest["name"],
        "version": manifest["version"],
        "task": manifest["task"],
        "labels": _json(sig["labels"]),
        "features": _json(sig["features"]),
        "input_kind": sig["kind"],
        "metrics": _json(manifest["metrics"]),
        "format": manifest["format"],
        "format_version": str(manifest["format_version"]),
        "canonml_version": str(manifest["versions"]["canonml"]),
        "spec_sha256": manifest["lineage"]["spec_sha256"],
    }
    if manifest.get("license"):
        meta["license"] = manifest["license"]
    return meta


def onnx_doc_string(manifest: dict[str, Any]) -> str:
    """Two sentences: what the model does, and what the graph takes and returns."""
    from canonml.package.card import what_it_does

    sig = manifest["signature"]
    outputs = ", ".join(f"'{o['name']}' {o['datatype']} {o['shape']}" for o in sig["outputs"])
    inputs = ", ".join(f"'{i['name']}' {i['datatype']} {i['shape']}" for i in sig["inputs"])
    takes = (
        f"Input {inputs} takes raw values, batch axis first (imputation and scaling are "
        "inside the graph)"
        if [i["name"] for i in sig["inputs"]] == ["input"]
        else f"Inputs: {inputs}, batch axis first"  # a graph of its own (a generator's noise)
    )
    return (
        f"{manifest['name']} (canonml package, version {manifest['version']}) "
        f"{what_it_does(manifest)}. {takes}; outputs: {outputs}."
    )


def _json(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"), sort_keys=True)
