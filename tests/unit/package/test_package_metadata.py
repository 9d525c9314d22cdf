"""Files that describe themselves: safetensors metadata and model.onnx's metadata_props."""

from __future__ import annotations

import json
from pathlib import Path

import torch
from safetensors import safe_open
from safetensors.torch import load

from canonml.io import sha256_bytes
from canonml.models.weights import weights_bytes, weights_metadata
from canonml.package.export import onnx_doc_string, onnx_metadata
from tests.unit.package.fakes import TABULAR_STATE, signature

SPEC = b"name: x\nmodel:\n  arch: mlp\n  hidden: [4]\n"


def model() -> torch.nn.Module:
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.BatchNorm1d(4))


def test_weights_carry_format_architecture_and_spec_hash(tmp_path: Path) -> None:
    m = model()
    path = tmp_path / "w.safetensors"
    path.write_bytes(weights_bytes(m, SPEC))
    with safe_open(str(path), "pt") as f:
        meta = f.metadata()
    assert meta["format"] == "pt" and meta["architecture"] == "mlp"
    assert meta["spec_sha256"] == sha256_bytes(SPEC) and meta["canonml_version"]
    loaded = load(path.read_bytes())
    assert all(torch.equal(loaded[k], v) for k, v in m.state_dict().items())
    assert weights_bytes(m.state_dict(), SPEC) == path.read_bytes()  # a state dict works too
    assert set(weights_metadata(None)) == {"format", "canonml_version"}


def test_weights_bytes_do_not_depend_on_hash_order() -> None:
    # safetensors orders metadata by a random hash seed (it differs call to call, and
    # process to process); weights_bytes sorts it, so the same weights give the same bytes.
    from safetensors.torch import save

    m = model()
    meta = weights_metadata(SPEC)
    assert len({save(dict(m.state_dict()), metadata=meta) for _ in range(10)}) > 1
    assert len({weights_bytes(m, SPEC) for _ in range(10)}) == 1


def test_onnx_metadata_is_strings_with_json_lists() -> None:
    manifest = {
        "format": "canonml-package",
        "format_version": 1,
        "name": "patients",
        "version": "20260101-000000-abcd",
        "task": "classification",
        "license": "MIT",
        "versions": {"canonml": "0.1.0"},
        "signature": signature(TABULAR_STATE, ["no", "yes"]),
        "metrics": {"accuracy": 0.9},
        "lineage": {"spec_sha256": "ab" * 32},
    }
    meta = onnx_metadata(manifest)
    assert all(isinstance(v, str) for v in meta.values())
    assert json.loads(meta["labels"]) == ["no", "yes"]
    assert json.loads(meta["features"]) == TABULAR_STATE["output_features"]
    assert (meta["name"], meta["version"], meta["task"]) == (
        "patients",
        "20260101-000000-abcd",
        "classification",
    )
    assert meta["format"] == "canonml-package" and meta["format_version"] == "1"
    assert meta["license"] == "MIT" and json.loads(meta["metrics"]) == {"accuracy": 0.9}
    doc = onnx_doc_string(manifest)
    assert "classifies rows of 5 features into 2 classes (no, yes)" in doc
    assert "Input 'input' FP32 [-1, 5] takes raw values" in doc
