"""Hand-made packages (no training, no torch): a manifest, files and their hashes."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from canonml.io import sha256_bytes

# A fitted tabular state: two numeric columns and one categorical column.
TABULAR_STATE: dict[str, Any] = {
    "kind": "tabular",
    "impute": "median",
    "method": "standard",
    "numeric": [
        {"name": "age", "fill": 40.0, "shift": 42.0, "scale": 10.0},
        {"name": "bmi", "fill": 25.0, "shift": 26.0, "scale": 4.0},
    ],
    "categorical": [{"name": "city", "fill": "Paris", "categories": ["Lyon", "Nice", "Paris"]}],
    "output_features": ["age", "bmi", "city=Lyon", "city=Nice", "city=Paris"],
}
IMAGE_STATE: dict[str, Any] = {
    "kind": "image",
    "method": "standard",
    "shape": [1, 4, 4],
    "shift": [5.0],
    "scale": [6.0],
}


def signature(state: dict[str, Any], labels: list[str] | None = None) -> dict[str, Any]:
    from canonml.package.signature import build_signature
    from canonml.tasks import get_task

    image = state["kind"] == "image"
    described = {
        "kind": state["kind"],
        "input_shape": state["shape"] if image else [len(state["output_features"])],
        "feature_names": [f"pixel_{i}" for i in range(16)] if image else state["output_features"],
        "label_names": labels,
        "source": "sklearn:digits" if image else "csv:/data/patients.csv",
    }
    task = get_task("classification" if labels else "regression")
    return build_signature(task, described, state)


def write_fake_package(
    root: Path, sig: dict[str, Any], files: dict[str, bytes] | None = None, **manifest: Any
) -> Path:
    """A package directory whose ``canon.json`` lists ``files`` with their sha256."""
    files = files if files is not None else {"spec.yaml": b"name: fake\n", "model.onnx": b"x"}
    root.mkdir(parents=True, exist_ok=True)
    for name, data in files.items():
        (root / name).write_bytes(data)
    body = {
        "format": "canonml-package",
        "format_version": 1,
        "name": "fake",
        "version": "20260101-000000-abcd",
        "task": "classification" if sig["labels"] else "regression",
        "signature": sig,
        "files": {name: sha256_bytes(data) for name, data in files.items()},
        **manifest,
    }
    (root / "canon.json").write_text(json.dumps(body), encoding="utf-8")
    return root
