"""The `canon` command as a user meets it: help, templates, validate, schema, bad inputs."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from canonml.cli import app
from tests.conftest import REQUIRED_TEMPLATES, tiny_spec

runner = CliRunner()


def invoke(*args: str) -> Any:
    return runner.invoke(app, list(args), catch_exceptions=False)


@pytest.mark.parametrize(
    "command",
    ["--help", "run --help", "validate --help", "schema --help", "init --help", "templates --help"],
)
def test_every_command_has_help_with_an_example(command: str) -> None:
    result = invoke(*command.split())
    assert result.exit_code == 0
    assert "Example" in result.output or "canon run" in result.output


def test_light_commands_do_not_import_torch(tmp_path: Path, write_spec: Any) -> None:
    spec = write_spec(tiny_spec())
    code = (
        "import sys\nfrom canonml.cli import main\n"
        f"for argv in (['--help'], ['validate', {str(spec)!r}], ['schema'], ['templates']):\n"
        "    try:\n        main(argv)\n    except SystemExit as e:\n        assert not e.code, e\n"
        "heavy = [m for m in ('torch', 'sklearn', 'mlflow') if m in sys.modules]\n"
        "assert not heavy, heavy\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr


def test_templates_lists_the_builtins() -> None:
    result = invoke("templates")
    for name in REQUIRED_TEMPLATES:
        assert name in result.output


def test_init_writes_an_editable_spec_and_refuses_to_overwrite(tmp_path: Path) -> None:
    target = tmp_path / "mine.yaml"
    assert invoke("init", "--template", "wine", "-o", str(target)).exit_code == 0
    assert invoke("validate", str(target)).output.startswith("ok: wine")
    again = invoke("init", "--template", "wine", "-o", str(target))
    assert again.exit_code == 2 and "already exists" in again.output


def test_schema_is_json_schema() -> None:
    schema = json.loads(invoke("schema").output)
    assert schema["title"] == "canon spec" or schema["title"] == "canonml spec"
    assert "train" in schema["properties"]


def idx_wrong_magic(d: Path) -> str:
    (d / "train-images-idx3-ubyte").write_bytes(b"\x00\x00\x08\x99" + b"\x00" * 64)
    (d / "train-labels-idx1-ubyte").write_bytes(b"\x00\x00\x08\x01\x00\x00\x00\x00")
    return f"idx:{d}"


def cifar_truncated(d: Path) -> str:
    (d / "data_batch_1.bin").write_bytes(bytes(3073 + 100))
    (d / "test_batch.bin").write_bytes(bytes(3073))
    return f"cifar10:{d}"


def csv_file(text: str) -> Any:
    def make(d: Path) -> str:
        (d / "data.csv").write_text(text, encoding="utf-8")
        return f"csv:{d / 'data.csv'}"

    return make


BAD_RUNS = [
    ("unknown key", {"trian": {}}, None, "trian: unknown key 'trian'; did you mean 'train'?"),
    (
        "negative lr",
        {"train": {"optimizer": {"lr": -1}}},
        None,
        "train.optimizer.lr: must be > 0.0, got -1",
    ),
    (
        "missing csv",
        {"data": {"source": "csv:nope.csv", "target": "y"}},
        None,
        "csv file not found",
    ),
    (
        "non-numeric cell",
        {"data": {"target": "y"}},
        csv_file("age,y\n1,a\n2,b\n3,a\nabc,b\n5,a\n"),
        "row 5: 'abc' is not a number",
    ),
    ("IDX wrong magic", {"data": {}}, idx_wrong_magic, "magic"),
    ("truncated CIFAR", {"data": {}}, cifar_truncated, "not a multiple of 3073"),
    ("empty data set", {"data": {"target": "y"}}, csv_file("age,y\n"), "empty data set"),
    (
        "missing target column",
        {"data": {"target": "label"}},
        csv_file("age,y\n1,a\n"),
        "data.target: column 'label' is not in csv file",
    ),
    ("cnn on tabular data", {"model": {"arch": "cnn"}}, None, "model.arch: cnn needs image"),
    (
        "key of another arch",
        {"model": {"arch": "cnn", "hidden": [3]}},
        None,
        "model.hidden: unknown key 'hidden'; known: activation, arch, batch_norm, channels",
    ),
]


@pytest.mark.parametrize(
    ("case", "change", "make_source", "message"), BAD_RUNS, ids=[row[0] for row in BAD_RUNS]
)
def test_bad_input_exits_2_with_one_line_naming_the_place(
    tmp_path: Path,
    write_spec: Any,
    case: str,
    change: dict[str, Any],
    make_source: Any,
    message: str,
) -> None:
    spec = tiny_spec()
    for key, value in change.items():
        merge = key != "model" and isinstance(value, dict) and value
        spec[key] = {**spec.get(key, {}), **value} if merge else value
    if make_source is not None:
        spec["data"]["source"] = make_source(tmp_path)
    result = invoke("run", str(write_spec(spec)), "--out", str(tmp_path / "runs"))
    assert result.exit_code == 2, result.output
    assert message in result.output
    assert "Traceback" not in result.output
    assert len(result.output.strip().splitlines()) == 1
    assert not (tmp_path / "runs").exists(), "a failed run must leave no run directory"


def test_bad_input_through_a_real_process(tmp_path: Path, write_spec: Any, cli: Any) -> None:
    spec = tiny_spec(train={"optimizer": {"lr": -1}})
    result = cli("run", str(write_spec(spec)))
    assert result.code == 2
    assert result.stderr.strip() == "error: train.optimizer.lr: must be > 0.0, got -1"
    assert "Traceback" not in result.stderr + result.stdout


def test_spec_and_template_together_is_an_error() -> None:
    result = invoke("validate", "x.yaml", "--template", "iris")
    assert result.exit_code == 2 and "either a spec file or --template" in result.output


def test_resume_of_a_non_run_dir(tmp_path: Path) -> None:
    result = invoke("run", "--resume", str(tmp_path))
    assert result.exit_code == 2 and "not a run directory" in result.output
