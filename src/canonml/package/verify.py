"""``canon verify``: hashes, the ONNX checker, signature ↔ graph, and PyTorch ↔ ONNX parity
— of ``model.onnx`` and of every graph a task adds (``Task.extra_graphs``)."""

from __future__ import annotations

import math
import os
from typing import TYPE_CHECKING, Any

import numpy as np

from canonml.package.reader import Package, PackageError, hash_problems, open_package
from canonml.package.signature import sample_inputs
from canonml.spec.task import task_name
from canonml.tasks import get_task

if TYPE_CHECKING:
    import onnx
    from torch import nn

    from canonml.tasks.base import Graph

TOLERANCE = 1e-4  # max abs difference between ONNX Runtime and PyTorch outputs
# An int8 graph (canon compress) against the fp32 model it was quantised from, on inputs in
# the training range: measured 0.03–0.05 on digits-cnn (static QDQ), 0.01 dynamic.
QUANTIZED_TOLERANCE = 0.1
SAMPLES = 32
# ONNX TensorProto element types by Open Inference Protocol datatype.
ONNX_TYPES = {"FP32": 1, "UINT8": 2, "INT8": 3, "INT32": 6, "INT64": 7, "BOOL": 9, "FP64": 11}


def verify_package(path: str | os.PathLike[str]) -> list[str]:
    """Every problem of the package at ``path``, one line each naming the file; [] = OK."""
    try:
        pkg = open_package(path, verify_hashes=False)
    except PackageError as e:
        return [str(e)]
    problems = hash_problems(pkg)
    try:
        problems += manifest_problems(pkg)
        graph = _checked_graph(pkg, problems)
        mismatched = signature_problems(pkg.signature, graph) if graph is not None else []
        problems += mismatched
        model = _rebuilt(pkg, problems)
        if graph is not None and model is not None and not mismatched:
            problems += parity_problems(pkg, model)
        if model is not None:
            problems += extra_graph_problems(pkg, model)
        if model is not None and not problems:
            problems += get_task(pkg.task).package_problems(pkg, model)
    except (KeyError, IndexError, TypeError, ValueError) as e:
        # A hand-edited signature: report it rather than fail with a traceback.
        problems.append(f"canon.json: malformed signature ({type(e).__name__}: {e})")
    return problems


def manifest_problems(pkg: Package) -> list[str]:
    """Where ``canon.json`` contradicts the files it describes (it cannot hash itself)."""
    import yaml

    m, problems = pkg.manifest, []
    try:
        spec_hash = pkg.sha256("spec.yaml")
        spec = yaml.safe_load(pkg.read("spec.yaml"))
    except (PackageError, yaml.YAMLError):
        return []  # reported as a missing or unreadable spec.yaml
    if (m.get("lineage") or {}).get("spec_sha256") != spec_hash:
        problems.append("canon.json: lineage.spec_sha256 is not the sha256 of spec.yaml")
    if isinstance(spec, dict):
        for key, value in (("name", spec.get("name")), ("task", task_name(spec.get("task")))):
            if value != m.get(key):
                problems.append(
                    f"canon.json: {key} {m.get(key)!r} differs from spec.yaml's {value!r}"
                )
    sig = m["signature"]
    try:
        width = math.prod(sig["inputs"][0]["shape"][1:])
        # A dynamic axis (-1: a token sequence) has no fixed number of features to list.
        if width > 0 and len(sig["features"]) != width:
            problems.append(
                f"canon.json: signature lists {len(sig['features'])} features for {width} inputs"
            )
    except (KeyError, IndexError, TypeError):
        problems.append("canon.json: signature.inputs[0].shape or signature.features is missing")
    return problems


def _checked_graph(
    pkg: Package, problems: list[str], name: str = "model.onnx"
) -> onnx.ModelProto | None:
    import onnx

    try:
        model = onnx.load_from_string(pkg.read(name))
        onnx.checker.check_model(model, full_check=True)
    except PackageError as e:
        problems.append(str(e))
        return None
    except Exception as e:  # protobuf's DecodeError, onnx's ValidationError, ...
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        problems.append(f"{name}: fails the ONNX checker ({first})")
        return None
    return model


def signature_problems(
    signature: dict[str, Any], graph: onnx.ModelProto, name: str = "model.onnx"
) -> list[str]:
    """Where the graph's inputs and outputs differ from ``signature`` (names, types, shapes;
    for an extra graph ``name``, its entry in ``signature.graphs``)."""
    problems = []
    for side, declared, actual in (
        ("input", signature.get("inputs") or [], graph.graph.input),
        ("output", signature.get("outputs") or [], graph.graph.output),
    ):
        want = [(d["name"], ONNX_TYPES.get(d["datatype"]), list(d["shape"])) for d in declared]
        got = [(v.name, v.type.tensor_type.elem_type, _shape(v)) for v in actual]
        if want != got:
            problems.append(
                f"{name}: graph {side}s {_show(got)} differ from canon.json's signature "
                f"{_show(want)}"
            )
    return problems


def parity_problems(pkg: Package, model: nn.Module) -> list[str]:
    """Compare ONNX Runtime on seeded sample inputs with the rebuilt PyTorch model."""
    sig, task = pkg.signature, get_task(pkg.task)
    quantized = bool((pkg.manifest.get("compression") or {}).get("quantized"))
    tolerance = QUANTIZED_TOLERANCE if quantized else TOLERANCE
    feeds, inputs = task.verify_samples(sig, SAMPLES) or _raw_samples(sig, quantized)
    try:
        got = pkg.session().run(None, feeds)
    except PackageError as e:
        return [str(e)]
    except Exception as e:  # onnxruntime's own errors (bad shapes, missing ops)
        return [f"model.onnx: ONNX Runtime fails on sample inputs ({str(e).splitlines()[0]})"]
    want = task.reference_outputs(model, inputs, sig)
    names = [o["name"] for o in sig["outputs"]]
    problems = closeness_problems(
        "model.onnx", names, want, list(got), task.exact_outputs(), tolerance
    )
    if not problems:
        problems += task.output_problems(want, list(got), tolerance)
    return problems


def closeness_problems(
    file: str,
    names: list[str],
    want: list[np.ndarray],
    got: list[np.ndarray],
    exact: tuple[str, ...] = (),
    tolerance: float = TOLERANCE,
) -> list[str]:
    """One line per output of graph ``file`` whose shape or values differ from PyTorch's
    (outputs in ``exact`` are the task's to compare)."""
    problems = []
    for name, w, g in zip(names, want, got, strict=False):
        if w.shape != g.shape:
            problems.append(
                f"{file}: output '{name}' has shape {list(g.shape)}, PyTorch gives {list(w.shape)}"
            )
        elif name in exact:
            continue  # the task compares it (an argmax is robust to near-ties)
        elif np.any(np.abs(w - g) > tolerance * _magnitude(w)):
            diff = float(np.max(np.abs(w - g)))
            problems.append(
                f"{file}: output '{name}' differs from the PyTorch model rebuilt from "
                f"spec.yaml + weights.safetensors by {diff:.3g} (max abs; allowed {tolerance:g}"
                + (" of the value's size)" if float(np.max(np.abs(w))) > 1 else ")")
            )
    return problems


def extra_graph_problems(pkg: Package, model: nn.Module) -> list[str]:
    """The task's extra graphs (an autoencoder's encoder and decoder): each present, checked
    by ONNX, as ``signature.graphs`` declares it, and equal to PyTorch on seeded inputs."""
    graphs = get_task(pkg.task).extra_graphs(model, pkg.signature)
    listed = pkg.signature.get("graphs") or {}
    problems = []
    if sorted(listed) != sorted(graphs):
        problems.append(
            f"canon.json: signature.graphs lists {sorted(listed)}; the package's model has "
            f"{sorted(graphs)}"
        )
    for name, extra in graphs.items():
        graph = _checked_graph(pkg, problems, name)
        if graph is None:
            continue
        mismatched = signature_problems(listed.get(name) or {}, graph, name)
        problems += mismatched or _extra_parity(pkg, name, extra)
    return problems


def _extra_parity(pkg: Package, name: str, extra: Graph) -> list[str]:
    import onnxruntime as ort
    import torch

    feeds = extra.feeds(SAMPLES)
    try:
        session = ort.InferenceSession(pkg.read(name), providers=["CPUExecutionProvider"])
        got = session.run(None, feeds)
    except Exception as e:  # onnxruntime's own errors
        return [f"{name}: ONNX Runtime fails on sample inputs ({str(e).splitlines()[0]})"]
    with torch.no_grad():
        out = extra.module(*(torch.from_numpy(feeds[i["name"]]) for i in extra.inputs))
    want = [t.double().numpy() for t in (out if isinstance(out, tuple) else (out,))]
    return closeness_problems(name, [o["name"] for o in extra.outputs], want, list(got))


def _raw_samples(
    sig: dict[str, Any], in_range: bool = False
) -> tuple[dict[str, np.ndarray], tuple[np.ndarray, ...]]:
    """Raw inputs for the standard graph and the model inputs the training code makes of
    them (so the comparison also checks the preprocessing folded into the graph); inside
    the training range for an int8 graph."""
    shape = sig["inputs"][0]["shape"][1:]
    raw, prepared = sample_inputs(sig["preprocessing"], shape, SAMPLES, in_range=in_range)
    return {"input": raw}, (prepared,)


def _magnitude(values: np.ndarray) -> np.ndarray:
    # Probabilities are in [0, 1]; a prediction in the data's units (prices, say) is compared
    # relative to its size, since float32 cannot hold 250000.0 to 1e-4.
    return np.maximum(1.0, np.abs(values))


def _rebuilt(pkg: Package, problems: list[str]) -> nn.Module | None:
    from canonml.package.rebuild import rebuild_model

    try:
        spec_text = pkg.read("spec.yaml").decode("utf-8")
        return rebuild_model(spec_text, pkg.read("weights.safetensors"), pkg.signature)
    except UnicodeDecodeError:
        problems.append("spec.yaml: not UTF-8 text")
    except (PackageError, KeyError, TypeError, ValueError) as e:
        problems.append(str(e) if isinstance(e, PackageError) else f"canon.json: signature {e}")
    return None


def _shape(value: Any) -> list[int]:
    dims = value.type.tensor_type.shape.dim
    return [d.dim_value if d.HasField("dim_value") else -1 for d in dims]


def _show(items: list[tuple[Any, Any, list[int]]]) -> str:
    return ", ".join(f"{name} (type {t}) {shape}" for name, t, shape in items)
