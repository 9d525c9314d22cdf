"""`canon export | verify | predict` as a user runs them on a finished run."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import canonml


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("runs")
    return canonml.run(
        "template:digits-mlp", out, overrides=["train.epochs=3", "track=false", "license=mit"]
    ).run_dir


def test_run_ends_with_a_package_that_verifies(run_dir: Path, cli: Any) -> None:
    pkg = run_dir / "package"
    assert {p.name for p in pkg.iterdir()} == {
        "canon.json",
        "model.onnx",
        "weights.safetensors",
        "spec.yaml",
        "MODEL_CARD.md",
    }
    result = cli("verify", str(pkg))
    assert result.code == 0, result.stderr
    assert result.stdout.startswith("ok:")


@pytest.mark.parametrize("name", ["weights.safetensors", "model.onnx"])
def test_one_flipped_byte_fails_verify_naming_the_file(
    run_dir: Path, tmp_path: Path, cli: Any, name: str
) -> None:
    import shutil

    pkg = tmp_path / "pkg"
    shutil.copytree(run_dir / "package", pkg)
    data = bytearray((pkg / name).read_bytes())
    data[len(data) // 2] ^= 0x01
    (pkg / name).write_bytes(bytes(data))
    result = cli("verify", str(pkg))
    assert result.code == 1
    lines = [line for line in result.stderr.splitlines() if line.startswith("problem:")]
    assert lines and all(name in line for line in lines[:1])


def test_export_zip_then_predict_json(run_dir: Path, tmp_path: Path, cli: Any) -> None:
    from sklearn.datasets import load_digits

    target = tmp_path / "digits.zip"
    assert cli("export", str(run_dir), "--zip", "-o", str(target)).code == 0
    assert cli("verify", str(target)).code == 0
    digits = load_digits()
    np.save(tmp_path / "x.npy", digits.data[:5].reshape(5, 1, 8, 8).astype(np.float32))
    result = cli("predict", str(target), str(tmp_path / "x.npy"), "--json")
    assert result.code == 0, result.stderr
    rows = json.loads(result.stdout)
    assert len(rows) == 5
    assert sum(row["label"] == str(t) for row, t in zip(rows, digits.target[:5], strict=True)) >= 4


def test_predict_works_without_torch(run_dir: Path, tmp_path: Path) -> None:
    np.save(tmp_path / "x.npy", np.zeros((2, 1, 8, 8), np.float32))
    code = (
        "import sys\nsys.modules['torch'] = None  # any 'import torch' now fails\n"
        "from canonml.cli import main\n"
        f"main(['predict', {str(run_dir / 'package')!r}, {str(tmp_path / 'x.npy')!r}, '--json'])"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert len(json.loads(proc.stdout)) == 2


def test_predict_bad_input_exits_2(run_dir: Path, tmp_path: Path, cli: Any) -> None:
    (tmp_path / "bad.json").write_text("{not json")
    result = cli("predict", str(run_dir / "package"), str(tmp_path / "bad.json"))
    assert result.code == 2 and "bad.json" in result.stderr and "Traceback" not in result.stderr


def test_export_hf_writes_a_card_the_hub_parser_reads(
    run_dir: Path, tmp_path: Path, cli: Any
) -> None:
    from huggingface_hub import ModelCard

    from tests.unit.package.checks import check_card_against_metrics

    result = cli("export", str(run_dir), "--format", "hf", "-o", str(tmp_path / "hf"))
    assert result.code == 0, result.stderr
    assert result.stdout.strip() == f"hugging face folder: {tmp_path / 'hf'}"
    hf = tmp_path / "hf"
    assert sorted(p.name for p in hf.iterdir()) == [
        "README.md",
        "canon.json",
        "model.onnx",
        "model.safetensors",
        "spec.yaml",
    ]
    card = ModelCard.load(hf / "README.md")
    assert card.data.license == "mit"  # the spec's MIT, as the Hub spells it
    assert card.data.pipeline_tag == "image-classification"
    check_card_against_metrics(card, json.loads((run_dir / "metrics.json").read_text()))
    pkg = run_dir / "package"
    assert (hf / "README.md").read_bytes() == (pkg / "MODEL_CARD.md").read_bytes()
    assert (hf / "model.safetensors").read_bytes() == (pkg / "weights.safetensors").read_bytes()


def test_export_triton_from_a_zipped_package(run_dir: Path, tmp_path: Path, cli: Any) -> None:
    from tests.unit.package.checks import parse_triton_config

    zipped = tmp_path / "digits.zip"
    assert cli("export", str(run_dir), "--format", "zip", "-o", str(zipped)).code == 0
    result = cli("export", str(zipped), "--format", "triton", "--max-batch-size", "8")
    assert result.code == 0, result.stderr
    model = tmp_path / "triton" / "digits-mlp"  # the default: beside the package
    assert result.stdout.strip() == f"triton model: {model}"
    config = parse_triton_config((model / "config.pbtxt").read_text())
    assert config.max_batch_size == 8 and list(config.input[0].dims) == [1, 8, 8]


BAD_EXPORTS = [
    (["--format", "hff"], "error: --format: unknown format 'hff'; did you mean 'hf'? known: hf"),
    (["--format", "onnx"], "error: --format: unknown format 'onnx'; known: hf, package, triton"),
    (["--zip", "--format", "triton"], "error: --zip: is --format zip; it cannot be combined"),
    (["--format", "triton", "--max-batch-size", "0"], "error: --max-batch-size: must be >= 1"),
    (["--format", "hf", "--max-batch-size", "8"], "error: --max-batch-size: applies to --format"),
]


@pytest.mark.parametrize(("args", "message"), BAD_EXPORTS)
def test_bad_export_options_exit_2_naming_the_option(
    run_dir: Path, tmp_path: Path, cli: Any, args: list[str], message: str
) -> None:
    result = cli("export", str(run_dir), *args, "-o", str(tmp_path / "out"))
    assert result.code == 2 and result.stderr.startswith(message), result.stderr
    assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr
    assert not (tmp_path / "out").exists()


def test_export_refuses_a_folder_it_did_not_write(run_dir: Path, tmp_path: Path, cli: Any) -> None:
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("keep me")
    result = cli("export", str(run_dir), "--format", "hf", "-o", str(tmp_path / "mine"))
    assert result.code == 2 and "not a model folder canon export wrote" in result.stderr
    assert (tmp_path / "mine" / "notes.txt").read_text() == "keep me"
    missing = cli("export", str(tmp_path / "nope"), "--format", "triton")
    assert missing.code == 2 and "no such run directory or package" in missing.stderr


def test_a_bad_license_exits_2_naming_the_key(cli: Any) -> None:
    result = cli("validate", "--template", "iris", "--set", "license=apache-2")
    assert result.code == 2 and result.stderr.count("\n") == 1
    assert result.stderr.startswith("error: license: unknown SPDX license id, got 'apache-2'")
    assert "did you mean 'Apache-2.0'?" in result.stderr


def test_readme_kserve_manifests_use_kserves_field_names() -> None:
    import re

    import yaml

    readme = (Path(__file__).parents[2] / "README.md").read_text(encoding="utf-8")
    start = readme.index("### Triton and KServe")
    section = readme[start : readme.index("\n## ", start)]
    docs = [
        d
        for block in re.findall(r"```yaml\n(.*?)```", section, re.S)
        for d in yaml.safe_load_all(block)
    ]
    kinds = [(d["apiVersion"], d["kind"]) for d in docs]
    assert kinds == [
        ("serving.kserve.io/v1beta1", "InferenceService"),
        ("serving.kserve.io/v1alpha1", "ServingRuntime"),
        ("serving.kserve.io/v1beta1", "InferenceService"),
    ]
    triton, runtime, canon = docs
    assert set(triton["spec"]["predictor"]["model"]) == {
        "modelFormat",
        "runtime",
        "protocolVersion",
        "storageUri",
    }
    assert triton["spec"]["predictor"]["model"]["modelFormat"] == {"name": "onnx"}
    assert runtime["spec"]["protocolVersions"] == ["v2"]
    assert runtime["spec"]["supportedModelFormats"][0]["name"] == "canonml"
    container = runtime["spec"]["containers"][0]
    assert container["command"] == [
        "canon",
        "serve",
        "/mnt/models",
        "--host",
        "0.0.0.0",
        "--port",
        "8080",
    ]
    assert canon["spec"]["predictor"]["model"]["runtime"] == runtime["metadata"]["name"]
