"""The package as an MLflow model: ONNX flavor, signature, input example, canonml metadata.

``log_package_model`` runs in the tracking worker (MLflow imported there); the rest is pure,
so the parent can build the input example without MLflow. The logged model loads with
``mlflow.pyfunc.load_model("runs:/<run id>/model")``, shows on MLflow's Models page, serves
with ``mlflow models serve`` and, with ``track.register``, becomes a registry version.
"""

from __future__ import annotations

import json
from importlib import metadata as dist
from pathlib import Path
from typing import Any

import numpy as np

MODEL_NAME = "model"  # runs:/<run id>/model
_NUMPY = {"FP32": "float32", "FP64": "float64", "INT64": "int64", "INT32": "int32"}
# Beside model.onnx in the MLflow model: what canonml itself reads and what people read
# (a text model's tokenizer.json where it has one).
EXTRA_FILES = ("canon.json", "MODEL_CARD.md", "spec.yaml", "tokenizer.json")


def input_example(state: dict[str, Any], x: np.ndarray, n: int = 2) -> list[Any] | None:
    """The first ``n`` rows of model inputs ``x`` mapped back to raw graph inputs.

    The graph takes raw values and applies ``(raw - shift) / scale`` itself, so the example
    a user copies is in the data's own units (one-hot columns pass through unchanged). Token
    ids have no raw values to map back to: text gets no example.
    """
    from canonml.package.signature import graph_constants

    if state["kind"] not in ("tabular", "image"):
        return None
    _, shift, scale = graph_constants({**state, "in_graph": True})
    view = (1, -1, 1, 1) if state["kind"] == "image" else (1, -1)
    rows = x[:n].astype(np.float64) * scale.reshape(view) + shift.reshape(view)
    return np.round(rows, 6).tolist()


def model_metadata(manifest: dict[str, Any]) -> dict[str, Any]:
    """What MLflow keeps beside the model: labels and features in the graph's order."""
    sig = manifest["signature"]
    return {
        "canonml_format": manifest["format"],
        "canonml_format_version": manifest["format_version"],
        "canonml_version": manifest.get("versions", {}).get("canonml"),
        "name": manifest["name"],
        "version": manifest["version"],
        "task": manifest["task"],
        "labels": sig.get("labels"),
        "features": sig.get("features"),
        "headline": manifest.get("headline"),
    }


def log_package_model(
    package_dir: Path, run_id: str, example: list[Any] | None, register: str | None
) -> str:
    """Log ``package_dir`` as the ONNX MLflow model ``model`` of ``run_id``; its model id.

    The tracking URI must already be set (``mlflow.set_tracking_uri``) in this process.
    """
    import mlflow.onnx
    import onnx

    manifest = json.loads((package_dir / "canon.json").read_text(encoding="utf-8"))
    sig = manifest["signature"]
    graph = onnx.load_model_from_string((package_dir / "model.onnx").read_bytes())
    feeds = None
    first = sig["inputs"][0]
    rows = np.asarray(example, dtype=_NUMPY[first["datatype"]]) if example else None
    # Examples are the data's rows: a graph of other inputs (a generator's noise) gets none.
    if rows is not None and list(rows.shape[1:]) == list(first["shape"][1:]):
        feeds = {first["name"]: rows}
    info = mlflow.onnx.log_model(
        graph,
        name=MODEL_NAME,
        run_id=run_id,
        signature=mlflow_signature(sig),
        input_example=feeds,
        metadata=model_metadata(manifest),
        pip_requirements=_requirements(),
        save_as_external_data=False,  # one self-contained model.onnx, as in the package
        extra_files=[str(package_dir / f) for f in EXTRA_FILES if (package_dir / f).is_file()],
        registered_model_name=register,
        await_registration_for=0,
    )
    return str(info.model_id)


def mlflow_signature(signature: dict[str, Any]) -> Any:
    """The package's tensors as an MLflow tensor signature (``-1`` marks the batch axis)."""
    from mlflow.models import ModelSignature
    from mlflow.types import Schema, TensorSpec

    def schema(tensors: list[dict[str, Any]]) -> Schema:
        return Schema(
            [
                TensorSpec(np.dtype(_NUMPY[t["datatype"]]), tuple(t["shape"]), t["name"])
                for t in tensors
            ]
        )

    return ModelSignature(inputs=schema(signature["inputs"]), outputs=schema(signature["outputs"]))


def _requirements() -> list[str]:
    """What loading the model needs, pinned to this environment (as MLflow's own inference
    would, without the seconds it spends importing the model to find out)."""
    out = []
    for name in ("onnx", "onnxruntime", "numpy"):
        try:
            out.append(f"{name}=={dist.version(name)}")
        except dist.PackageNotFoundError:
            out.append(name)
    return out
