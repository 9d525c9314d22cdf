"""Hugging Face front matter: the Hub's vocabularies, parsed by huggingface_hub's ModelCard."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pytest
from huggingface_hub import ModelCard

from canonml.errors import PackageError
from canonml.package.hf import HF_FILES, front_matter, hub_license, hub_metrics, write_hf
from canonml.package.reader import open_package
from tests.unit.package.checks import check_card_against_metrics
from tests.unit.package.fakes import IMAGE_STATE, TABULAR_STATE, signature, write_fake_package

METRICS = {"accuracy": 0.9, "f1_macro": 0.85, "roc_auc": 0.93, "log_loss": 0.31}


def manifest(sig: dict[str, Any], metrics: dict[str, float], **extra: Any) -> dict[str, Any]:
    task = "classification" if sig["labels"] else "regression"
    data = {"source": "csv:/home/me/data.csv"}
    return {
        "name": "fake",
        "task": task,
        "signature": sig,
        "metrics": metrics,
        "data": data,
    } | extra


def card(m: dict[str, Any]) -> Any:
    return ModelCard(front_matter(m) + "# fake\n")


@pytest.mark.parametrize(
    ("sig", "metrics", "pipeline"),
    [
        (signature(TABULAR_STATE, ["no", "yes"]), METRICS, "tabular-classification"),
        (signature(IMAGE_STATE, ["a", "b", "c"]), METRICS, "image-classification"),
        (signature(TABULAR_STATE), {"mse": 4.0, "rmse": 2.0, "r2": 0.7}, "tabular-regression"),
    ],
)
def test_the_card_parses_and_its_results_are_the_metrics(
    sig: dict[str, Any], metrics: dict[str, float], pipeline: str
) -> None:
    parsed = card(manifest(sig, metrics, license="Apache-2.0"))
    assert parsed.data.pipeline_tag == pipeline
    assert parsed.data.license == "apache-2.0"
    assert parsed.data.library_name == "onnx"
    check_card_against_metrics(parsed, metrics)
    assert "/home/me" not in parsed.content  # a local path stays out of the tags


def test_averaging_goes_into_args_with_evaluate_ids() -> None:
    entries = {e["name"]: e for e in hub_metrics({**METRICS, "rmse": 2.0, "r2": 0.5}, 3)}
    assert entries["F1 (macro)"] == {
        "type": "f1",
        "name": "F1 (macro)",
        "value": 0.85,
        "args": {"average": "macro"},
    }
    assert entries["ROC AUC"]["args"] == {"average": "macro", "multi_class": "ovr"}
    assert entries["RMSE"]["type"] == "mse" and entries["RMSE"]["args"] == {"squared": False}
    assert entries["R-squared"]["type"] == "r_squared"
    assert "args" not in hub_metrics({"roc_auc": 0.9}, 2)[0]  # binary: no averaging


def test_an_undefined_metric_is_left_out() -> None:
    assert hub_metrics({"roc_auc": math.nan, "accuracy": 1.0}, 2) == [
        {"type": "accuracy", "name": "Accuracy", "value": 1.0}
    ]
    parsed = card(manifest(signature(TABULAR_STATE, ["no", "yes"]), {"roc_auc": math.nan}))
    assert parsed.data.eval_results is None  # no model-index rather than an empty one


@pytest.mark.parametrize(
    ("spdx", "keys"),
    [
        ("MIT", {"license": "mit"}),
        ("GPL-3.0-or-later", {"license": "gpl-3.0"}),
        ("LGPL-2.1-only", {"license": "lgpl-2.1"}),
        ("ODbL-1.0", {"license": "odbl"}),
        (
            "0BSD",
            {
                "license": "other",
                "license_name": "0bsd",
                "license_link": "https://spdx.org/licenses/0BSD.html",
            },
        ),
        ("MIT OR Apache-2.0", {"license": "other", "license_name": "mit-or-apache-2.0"}),
        ("LicenseRef-acme-1", {"license": "other", "license_name": "licenseref-acme-1"}),
        (None, {}),
    ],
)
def test_spdx_ids_become_hub_license_ids(spdx: str | None, keys: dict[str, str]) -> None:
    assert hub_license(spdx) == keys
    parsed = card(manifest(signature(TABULAR_STATE, ["no", "yes"]), METRICS, license=spdx))
    assert parsed.data.license == keys.get("license")
    assert parsed.data.license_name == keys.get("license_name")


def test_write_hf_writes_the_hub_layout_and_guards_other_folders(tmp_path: Path) -> None:
    files = {name: name.encode() for name in HF_FILES.values() if name != "canon.json"}
    pkg = open_package(write_fake_package(tmp_path / "pkg", signature(TABULAR_STATE), files))
    out = write_hf(pkg, tmp_path / "hf")
    assert sorted(p.name for p in out.iterdir()) == sorted(HF_FILES)
    assert (out / "README.md").read_bytes() == b"MODEL_CARD.md"
    assert (out / "model.safetensors").read_bytes() == b"weights.safetensors"
    assert write_hf(pkg, out) == out  # again, over its own export
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "notes.txt").write_text("keep me")
    with pytest.raises(PackageError, match="not a model folder canon export wrote"):
        write_hf(pkg, mine)
    with pytest.raises(PackageError, match="not a model folder canon export wrote"):
        write_hf(pkg, tmp_path / "pkg")  # a package is not an export folder


def test_the_exported_folder_opens_as_the_package_it_came_from(tmp_path: Path) -> None:
    files = {name: name.encode() for name in HF_FILES.values() if name != "canon.json"}
    pkg = open_package(write_fake_package(tmp_path / "pkg", signature(TABULAR_STATE), files))
    again = open_package(write_hf(pkg, tmp_path / "hf"))  # hashes checked under Hub names
    assert again.aliases == {
        "MODEL_CARD.md": "README.md",
        "weights.safetensors": "model.safetensors",
    }
    assert again.read("weights.safetensors") == b"weights.safetensors"
    assert again.names() == pkg.names()
    (tmp_path / "hf" / "model.safetensors").write_bytes(b"changed")
    with pytest.raises(PackageError, match="weights.safetensors: sha256 mismatch"):
        open_package(tmp_path / "hf")
