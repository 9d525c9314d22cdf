"""`canon run` end to end: the run directory, determinism, every template, kill and resume."""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest
import yaml

import canonml
from canonml.spec import template_names
from canonml.spec.evaluate import CLASSIFICATION_METRICS
from tests.conftest import start_template_run, tiny_spec


def test_run_writes_the_run_directory(tmp_path: Path) -> None:
    result = canonml.run(tiny_spec(train={"epochs": 3}), tmp_path)
    d = result.run_dir
    assert d.parent == tmp_path / "tiny"
    saved = yaml.safe_load((d / "spec.yaml").read_text())
    assert saved["train"]["optimizer"]["name"] == "adam"  # defaults written back
    assert canonml.load_spec(d / "spec.yaml") == result.spec
    with open(d / "history.csv") as f:
        rows = list(csv.DictReader(f))
    assert [int(r["epoch"]) for r in rows] == [1, 2, 3]
    assert {"train_loss", "val_loss", "val_accuracy", "lr", "seconds"} <= set(rows[0])
    metrics = json.loads((d / "metrics.json").read_text())
    assert metrics == result.metrics
    assert set(metrics) == set(CLASSIFICATION_METRICS)
    assert (d / "model.safetensors").is_file()
    summary = json.loads((d / "evaluation.json").read_text())
    low, high = summary["interval"]
    assert low <= metrics["accuracy"] <= high
    assert sum(map(sum, summary["confusion"])) == 30
    assert (d / "checkpoints" / "last.pt").is_file()
    assert (d / "checkpoints" / "best.safetensors").is_file()
    data = json.loads((d / "data.json").read_text())
    assert data["sizes"] == {"train": 105, "val": 15, "test": 30}
    assert len(data["fingerprint"]) == 64
    assert not list(d.rglob("*.tmp")), "atomic writes leave no temp files"


def test_same_seed_gives_byte_identical_metrics(tmp_path: Path) -> None:
    spec = tiny_spec(
        model={"arch": "mlp", "hidden": [16], "dropout": 0.3}, train={"epochs": 4, "batch_size": 8}
    )
    a = canonml.run(spec, tmp_path / "a").run_dir / "metrics.json"
    b = canonml.run(spec, tmp_path / "b").run_dir / "metrics.json"
    assert a.read_bytes() == b.read_bytes()


def test_seed_changes_the_split_and_the_fingerprint(tmp_path: Path) -> None:
    a = canonml.run(tiny_spec(), tmp_path, overrides=["seed=1"]).run_dir
    b = canonml.run(tiny_spec(), tmp_path, overrides=["seed=2"]).run_dir
    fp = [json.loads((d / "data.json").read_text())["fingerprint"] for d in (a, b)]
    assert fp[0] != fp[1]


# The tiny checkpoint a fine-tuning template gets has not seen most of its characters.
@pytest.mark.filterwarnings("ignore:data.text.tokenizer:canonml.errors.CanonWarning")
@pytest.mark.parametrize("name", template_names())
def test_every_template_runs_one_short_epoch(tmp_path: Path, name: str, template_cwd: Any) -> None:
    template_cwd(name)  # a template that fine-tunes run:NAME finds a tiny such run
    sets = ["train.epochs=1", "train.steps_per_epoch=3", "track=false"]
    # MiniLM over 8,000 reviews is two minutes; test_fine_tune.py scores it on a small file.
    sets.append("evaluate.reference_encoders=[]")
    result = canonml.run(f"template:{name}", tmp_path / "short", overrides=sets)
    assert len(result.history) == 1
    assert all(v == v for v in result.metrics.values())  # no NaN


def test_csv_with_categories_and_missing_cells_trains(tmp_path: Path) -> None:
    rows = ["age,sex,smoker,bmi,outcome"]
    for i in range(80):
        sick = i % 2
        age = "NA" if i % 7 == 0 else str(40 + 10 * sick + i % 5)
        smoker = "" if i % 11 == 0 else ("yes" if sick else "no")
        rows.append(
            f"{age},{'F' if i % 3 else 'M'},{smoker},{20 + i % 9},{'sick' if sick else 'healthy'}"
        )
    (tmp_path / "p.csv").write_text("\n".join(rows) + "\n")
    spec = tiny_spec(
        data={"source": f"csv:{tmp_path / 'p.csv'}", "target": "outcome"},
        train={"epochs": 30, "batch_size": 8, "optimizer": {"lr": 0.01}},
    )
    result = canonml.run(spec, tmp_path / "runs")
    assert result.metrics["accuracy"] >= 0.9
    pre = json.loads((result.run_dir / "preprocess.json").read_text())
    assert [c["name"] for c in pre["categorical"]] == ["sex", "smoker"]
    assert pre["output_features"] == ["age", "bmi", "sex=F", "sex=M", "smoker=no", "smoker=yes"]
    assert json.loads((result.run_dir / "data.json").read_text())["label_names"] == [
        "healthy",
        "sick",
    ]


def test_cli_prints_run_dir_and_metrics(tmp_path: Path, cli: Any) -> None:
    result = cli(
        "run",
        "--template",
        "iris",
        "--set",
        "train.epochs=2",
        "--seed",
        "3",
        "--out",
        str(tmp_path),
    )
    assert result.code == 0, result.stderr
    assert "run directory:" in result.stdout and "accuracy" in result.stdout
    run_dir = Path(result.stdout.split("run directory:")[1].split()[0])
    assert yaml.safe_load((run_dir / "spec.yaml").read_text())["seed"] == 3
    assert "epoch 2/2" in result.stderr  # plain progress lines when not a terminal


MUST_HOLD = [
    ("digits-mlp", "accuracy", 0.97),
    ("digits-cnn", "accuracy", 0.98),
    ("breast-cancer", "accuracy", 0.95),
    ("diabetes-regression", "r2", 0.40),
]


@pytest.mark.slow
@pytest.mark.parametrize(("name", "metric", "floor"), MUST_HOLD)
def test_templates_reach_their_quality(
    tmp_path: Path, name: str, metric: str, floor: float
) -> None:
    result = canonml.run(f"template:{name}", tmp_path, overrides=["track=false"])
    assert result.metrics[metric] >= floor, result.metrics


@pytest.mark.slow
def test_kill_mid_epoch_and_resume_gives_the_same_metrics(tmp_path: Path) -> None:
    sets = ["train.epochs=8", "train.early_stopping.patience=3", "track=false"]
    sets.append("train.checkpoint_interval=0")  # a checkpoint after every epoch to kill after
    baseline = canonml.run("template:digits-cnn", tmp_path / "whole", overrides=sets)
    proc = start_template_run("digits-cnn", sets, tmp_path / "killed")
    last = _wait_for_checkpoint(tmp_path / "killed", proc)
    time.sleep(0.15)  # inside the next epoch
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)
    run_dir = last.parent.parent
    assert not (run_dir / "metrics.json").exists(), "killed before the end"
    resumed = canonml.run(None, resume=run_dir)
    assert (run_dir / "metrics.json").read_bytes() == (
        baseline.run_dir / "metrics.json"
    ).read_bytes()
    assert [r["val_loss"] for r in resumed.history] == [r["val_loss"] for r in baseline.history]


def _wait_for_checkpoint(root: Path, proc: subprocess.Popen[bytes]) -> Path:
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        found = list(root.glob("*/*/checkpoints/last.pt"))
        history = list(root.glob("*/*/history.csv"))
        if found and history and len(history[0].read_text().splitlines()) >= 3:
            return found[0]
        assert proc.poll() is None, "the run ended before it could be killed"
        time.sleep(0.02)
    proc.kill()
    raise AssertionError("no checkpoint appeared")
