"""The command line's outline: version, completion, exit codes, Ctrl-C, init's schema link."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from importlib import metadata
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml
from typer.testing import CliRunner

import canonml
from canonml.cli import app
from tests.conftest import tiny_spec

runner = CliRunner()


def invoke(*args: str) -> Any:
    return runner.invoke(app, list(args), catch_exceptions=False)


def test_version_has_one_source() -> None:
    result = invoke("--version")
    assert result.exit_code == 0
    assert result.output.strip() == f"canon (canonml) {canonml.__version__}"
    assert metadata.version("canonml") == canonml.__version__


def test_help_lists_exit_codes_and_completion() -> None:
    text = invoke("--help").output
    for fragment in ("Exit codes", "1 canon verify", "2 bad input", "130 interrupted"):
        assert fragment in text
    assert "--install-completion" in text and "--version" in text


def test_completion_script_for_bash() -> None:
    result = invoke("--show-completion", "bash")
    assert result.exit_code == 0 and "_CANON_COMPLETE" in result.output


def test_import_canonml_is_light_and_exposes_every_capability() -> None:
    code = (
        "import sys, canonml\n"
        "heavy = [m for m in ('torch', 'sklearn', 'mlflow', 'onnxruntime', 'pydantic', "
        "'fastapi') if m in sys.modules]\n"
        "assert not heavy, heavy\n"
        "names = ['run', 'load_spec', 'evaluate_run', 'write_package', 'open_package', "
        "'verify_package', 'predict', 'create_app', 'build_app', 'run_server', 'find_runs']\n"
        "assert all(callable(getattr(canonml, n)) for n in names)\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr


def test_init_links_the_spec_to_a_schema_beside_it(tmp_path: Path) -> None:
    target = tmp_path / "specs" / "mine.yaml"
    target.parent.mkdir()
    result = invoke("init", "--template", "breast-cancer", "-o", str(target))
    assert result.exit_code == 0, result.output
    text = target.read_text(encoding="utf-8")
    assert text.splitlines()[0] == "# yaml-language-server: $schema=canon.schema.json"
    schema = json.loads((target.parent / "canon.schema.json").read_text(encoding="utf-8"))
    jsonschema.Draft202012Validator.check_schema(schema)
    spec = yaml.safe_load(text)
    jsonschema.validate(spec, schema)  # the editor's check agrees with canon validate
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({**spec, "trian": {}}, schema)
    assert invoke("validate", str(target)).exit_code == 0


def _start_long_run(tmp_path: Path, write_spec: Any, track: bool = False) -> Any:
    """A digits run that would take hours, in its own process group (as a terminal runs it),
    once it has finished two epochs (so it has a checkpoint and its helpers are up)."""
    spec = tiny_spec(
        data={"source": "sklearn:digits"},
        train={"epochs": 100_000, "batch_size": 8, "checkpoint_interval": 0},
        track=track,
    )
    proc = subprocess.Popen(
        [sys.executable, "-m", "canonml", "run", str(write_spec(spec)), "--out", "runs"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=tmp_path,
        env={**os.environ, "COLUMNS": "120"},
        start_new_session=True,
        # As a terminal's foreground job: Ctrl-C is not ignored, even when this test runs
        # under nohup or a background shell (which start every child with SIGINT ignored).
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    assert proc.stderr is not None
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if proc.stderr.readline().startswith("epoch 2/"):
            return proc
    proc.kill()
    raise AssertionError("the run did not finish two epochs in 120 s")


def _children(pid: int) -> set[int]:
    found = set()
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            found.add(int(stat.parent.name))
    return found


def test_ctrl_c_exits_130_and_says_how_to_continue(tmp_path: Path, write_spec: Any) -> None:
    proc = _start_long_run(tmp_path, write_spec, track=True)
    try:
        os.killpg(proc.pid, signal.SIGINT)  # what Ctrl-C in a terminal does: the whole group
        _, rest = proc.communicate(timeout=60)
    finally:
        proc.kill()
    assert proc.returncode == 130, rest
    last = rest.strip().splitlines()[-1]
    assert last.startswith("interrupted; continue it with: canon run --resume runs/tiny/")
    assert "Traceback" not in rest  # nor from a helper process


def test_a_killed_run_leaves_no_helper_behind(tmp_path: Path, write_spec: Any) -> None:
    proc = _start_long_run(tmp_path, write_spec)
    helpers = _children(proc.pid)
    assert helpers  # the plot painter
    proc.kill()  # kill -9: the run cannot clean up
    proc.communicate(timeout=30)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and any(Path(f"/proc/{p}").exists() for p in helpers):
        time.sleep(0.2)
    assert not [p for p in helpers if Path(f"/proc/{p}").exists()]


@pytest.mark.slow
def test_the_readme_python_example_runs(tmp_path: Path, write_spec: Any) -> None:
    import re

    from sklearn.datasets import load_iris

    readme = (Path(__file__).parents[2] / "README.md").read_text(encoding="utf-8")
    example = re.search(r"```python\n(.*?)```", readme, re.S)
    assert example is not None
    write_spec(tiny_spec(track=True), name="my-spec.yaml")
    iris = load_iris()
    rows = [",".join(iris.feature_names)] + [",".join(map(str, r)) for r in iris.data[:3]]
    (tmp_path / "new-rows.csv").write_text("\n".join(rows) + "\n", encoding="utf-8")
    scope: dict[str, Any] = {}
    exec(compile(example.group(1), "README.md", "exec"), scope)
    assert len(scope["rows"]) == 3 and scope["result"].metrics


def test_run_with_cross_validation_prints_mean_and_std_beside_the_test_metrics(
    cli: Any, write_spec: Any, tmp_path: Path
) -> None:
    spec = tiny_spec(evaluate={"metrics": ["accuracy", "f1_macro"], "cv": 3})
    result = cli("run", str(write_spec(spec)), "--out", "runs")
    assert result.code == 0, result.stderr
    assert "3-fold CV mean ± std" in result.stdout
    run_dir = next((tmp_path / "runs" / "tiny").iterdir())
    cv = json.loads((run_dir / "evaluation.json").read_text())["cv"]["metrics"]
    row = next(
        line for line in result.stdout.splitlines() if line.strip("│ ").startswith("accuracy")
    )
    assert f"{cv['accuracy']['mean']:.4f} ± {cv['accuracy']['std']:.4f}" in row
