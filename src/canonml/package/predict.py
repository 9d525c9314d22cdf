"""``canon predict PKG INPUT...``: ONNX Runtime on a package — torch is never imported."""

from __future__ import annotations

import os
from typing import Any

import numpy as np

from canonml.package.inputs import read_inputs
from canonml.package.reader import Package, PackageError, open_package
from canonml.tasks import get_task


def predict_inputs(
    pkg_path: str | os.PathLike[str], inputs: list[str], threads: int = 1
) -> list[dict[str, Any]]:
    """One row per input example: ``input`` (where it came from) and the prediction.

    Classification rows hold ``label``, ``probability`` (of that label) and
    ``probabilities`` (label → probability); regression rows hold ``prediction``.
    Raises ``PackageError`` for a bad package, ``DataError`` for a bad input file.
    """
    pkg = open_package(pkg_path)
    if pkg.signature.get("text"):  # a text classifier: texts in, tokenized as in training
        from canonml.package.text_inputs import read_texts, run_texts

        texts, refs = read_texts(pkg, [str(p) for p in inputs])
        return prediction_rows(pkg, refs, run_texts(pkg, texts, threads))
    takes = [i.get("name") for i in pkg.signature.get("inputs") or []]
    if takes != ["input"]:  # a generator's graph takes noise, not examples
        hint = (
            f"; draw images with: canon sample {pkg_path}"
            if pkg.signature.get("sampler")
            else f"; generate text with: canon generate {pkg_path} --prompt TEXT"
            if pkg.signature.get("generator")
            else ""
        )
        raise PackageError(
            f"{pkg.path}: model.onnx takes {', '.join(map(str, takes))}, not input examples, "
            f"so canon predict cannot run it{hint}"
        )
    x, refs = read_inputs(pkg, [str(p) for p in inputs])
    outputs = run_graph(pkg, x, threads)
    return prediction_rows(pkg, refs, outputs)


def run_graph(pkg: Package, x: np.ndarray, threads: int = 1) -> dict[str, np.ndarray]:
    """The graph's outputs by name for the raw input batch ``x``."""
    session = pkg.session(threads)
    names = [o.name for o in session.get_outputs()]
    try:
        values = session.run(names, {"input": x.astype(np.float32)})
    except Exception as e:  # onnxruntime's own error types
        raise PackageError(f"model.onnx: ONNX Runtime failed ({str(e).splitlines()[0]})") from None
    return dict(zip(names, values, strict=True))


def prediction_rows(
    pkg: Package, refs: list[str], outputs: dict[str, np.ndarray]
) -> list[dict[str, Any]]:
    """Plain JSON-able rows, one per input, as the package's task words them."""
    return get_task(pkg.task).rows(refs, outputs, pkg.signature.get("labels"))
