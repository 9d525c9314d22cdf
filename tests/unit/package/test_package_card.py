"""MODEL_CARD.md: front matter in the Hugging Face style, every section, nothing invented."""

from __future__ import annotations

from typing import Any

import yaml

from canonml.package.card import UNKNOWN, model_card
from tests.unit.package.fakes import TABULAR_STATE, signature

SECTIONS = (
    "## Model details",
    "## Intended use",
    "### Out-of-scope use",
    "## Training data",
    "## Evaluation data",
    "## Metrics",
    "## Ethical considerations",
    "## Caveats and recommendations",
)


def _card(license: str | None = None, **evaluation: Any) -> str:
    manifest = {
        "license": license,
        "name": "patients",
        "version": "20260101-000000-abcd",
        "task": "classification",
        "created": "2026-01-01T00:00:00Z",
        "versions": {"canonml": "0.1.0", "torch": "2.13.0", "onnx": "1.23.2", "opset": 17},
        "signature": signature(TABULAR_STATE, ["no", "yes"]),
        "metrics": {"accuracy": 0.9, "f1_macro": 0.85},
        "headline": "accuracy",
        "interval": [0.8, 0.95],
        "data": {
            "fingerprint": "ab" * 32,
            "source": "csv:/home/me/patients.csv",
            "sizes": {"train": 70, "val": 10, "test": 20},
        },
    }
    spec = {
        "seed": 0,
        "model": {"arch": "mlp", "hidden": [8], "batch_norm": False},
        "data": {
            "preprocess": {"impute": "median", "scale": "standard"},
            "split": {"val": 0.1, "test": 0.2, "stratify": True},
        },
        "train": {"early_stopping": None},
        "evaluate": {"ci": 1000},
    }
    return model_card(manifest, spec, evaluation, {"rows": 100}, 42)


def test_front_matter_is_hugging_face_metadata_filled_from_the_run() -> None:
    text = _card()
    assert text.startswith("---\n")
    meta = yaml.safe_load(text.split("---\n")[1])
    assert "license" not in meta  # the run does not know it; the body says so
    assert f"- License: {UNKNOWN}" in text
    assert meta["library_name"] == "onnx"  # the Hub's library for a repository of ONNX files
    assert meta["pipeline_tag"] == "tabular-classification"
    assert meta["tags"][:4] == ["canonml", "classification", "tabular", "csv:patients.csv"]
    assert meta["metrics"] == ["accuracy", "f1"]  # evaluate's metric ids
    result = meta["model-index"][0]["results"][0]
    assert result["metrics"][0] == {"type": "accuracy", "name": "Accuracy", "value": 0.9}
    assert "/home/me" not in text.split("---\n")[1]  # a local path stays out of the tags


def test_a_license_in_the_spec_reaches_the_card() -> None:
    text = _card(license="CC-BY-4.0")
    assert yaml.safe_load(text.split("---\n")[1])["license"] == "cc-by-4.0"  # the Hub's id
    assert "- License: `CC-BY-4.0` (SPDX)" in text


def test_every_model_card_section_is_present_and_unknowns_are_marked() -> None:
    text = _card(
        metrics={"accuracy": 0.9, "log_loss": 0.3},
        per_class=[{"label": "no", "precision": 1, "recall": 0.5, "f1": 0.6, "support": 4}],
    )
    positions = [text.index(s) for s in SECTIONS]
    assert positions == sorted(positions)
    assert text.count(UNKNOWN) >= 4
    assert "License:" in text and "ab" * 32 in text
    assert "| accuracy | 0.9000 | 0.8000 – 0.9500 |" in text
    assert "| log_loss | 0.3000 | — |" in text
    assert "Lowest recall on the test split: class no (0.500)" in text
    assert "early stopping" not in text  # the spec had none
    assert "`privacy: null`" in text
