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
        "template:digits-mlp", out, overrides=["train.epochs=3", "track=false"]
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
