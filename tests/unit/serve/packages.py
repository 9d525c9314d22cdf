"""Tiny hand-built packages (model.onnx + canon.json) for the server's own tests.

Each model is a linear layer and a softmax, built with ``onnx.helper``: enough to check the
protocol, the batcher and the page without training anything. The manifest lists the
graph's sha256, so ``open_package`` (and so ``canon serve``) opens them too.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np


@dataclass
class FixturePackage:
    """A package-like object: what ``create_app`` needs from an opened package."""

    path: Path
    manifest: dict[str, Any]

    @property
    def name(self) -> str:
        return str(self.manifest["name"])

    @property
    def signature(self) -> dict[str, Any]:
        return dict(self.manifest["signature"])

    def session(self, threads: int = 1) -> Any:
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        return ort.InferenceSession(str(self.path / "model.onnx"), options)


def _graph(
    name: str, names: list[str], in_shape: list[Any], n_out: int, regression: bool, seed: int
) -> Any:
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(seed)
    n_in = int(np.prod([d for d in in_shape[1:]])) * len(names)
    weights = numpy_helper.from_array(rng.normal(size=(n_in, n_out)).astype(np.float32), "_w")
    bias = numpy_helper.from_array(rng.normal(size=n_out).astype(np.float32), "_b")
    nodes = [
        helper.make_node("Concat", names, ["joined"], axis=1),
        helper.make_node("Flatten", ["joined"], ["flat"], axis=1),
        helper.make_node("MatMul", ["flat", "_w"], ["mm"]),
        helper.make_node("Add", ["mm", "_b"], ["logits"]),
    ]
    inputs = [
        helper.make_tensor_value_info(n, TensorProto.FLOAT, ["N", *in_shape[1:]]) for n in names
    ]
    if regression:
        nodes.append(helper.make_node("Squeeze", ["logits", "axes"], ["prediction"]))
        axes = numpy_helper.from_array(np.array([1], dtype=np.int64), "axes")
        outputs = [helper.make_tensor_value_info("prediction", TensorProto.FLOAT, ["N"])]
        init = [weights, bias, axes]
    else:
        nodes += [
            helper.make_node("Softmax", ["logits"], ["probabilities"], axis=1),
            helper.make_node("ArgMax", ["logits"], ["label"], axis=1, keepdims=0),
        ]
        outputs = [
            helper.make_tensor_value_info("probabilities", TensorProto.FLOAT, ["N", n_out]),
            helper.make_tensor_value_info("label", TensorProto.INT64, ["N"]),
        ]
        init = [weights, bias]
    graph = helper.make_graph(nodes, name, inputs, outputs, init)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=9)


def make_package(
    root: Path,
    name: str = "tab",
    kind: str = "tabular",
    features: int = 4,
    classes: int = 3,
    image_shape: tuple[int, int, int] = (1, 8, 8),
    regression: bool = False,
    seed: int = 0,
    inputs: tuple[str, ...] = ("input",),
) -> FixturePackage:
    """Write ``root/name/{model.onnx,canon.json}`` and return the package-like object."""
    import onnx

    from canonml.io import sha256_file

    in_shape: list[int] = [-1, *image_shape] if kind == "image" else [-1, features]
    n_out = 1 if regression else classes
    path = root / name
    path.mkdir(parents=True)
    graph = _graph(name, list(inputs), in_shape, n_out, regression, seed)
    onnx.save(graph, str(path / "model.onnx"))
    if regression:
        outputs = [{"name": "prediction", "datatype": "FP32", "shape": [-1]}]
    else:
        outputs = [
            {"name": "probabilities", "datatype": "FP32", "shape": [-1, classes]},
            {"name": "label", "datatype": "INT64", "shape": [-1]},
        ]
    n_features = int(np.prod(in_shape[1:]))
    manifest = {
        "format": "canonml-package",
        "format_version": 1,
        "files": {"model.onnx": sha256_file(path / "model.onnx")},
        "name": name,
        "version": "1",
        "task": "regression" if regression else "classification",
        "signature": {
            "inputs": [{"name": n, "datatype": "FP32", "shape": in_shape} for n in inputs],
            "outputs": outputs,
            "labels": None if regression else [f"class-{i}" for i in range(classes)],
            "features": [f"feature {i}" for i in range(n_features)],
            "kind": kind,
            "image_shape": list(image_shape) if kind == "image" else None,
            "pixel_max": 16.0 if kind == "image" else None,
        },
    }
    (path / "canon.json").write_text(json.dumps(manifest), encoding="utf-8")
    return FixturePackage(path, manifest)
