"""``train.device``: auto picks CUDA only where it exists; a device the machine lacks, or
fp16 without CUDA, exits 2 naming the key and what is available; checkpoints hold CPU
tensors, so a run started on one device resumes on another (``--device`` on resume)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import torch
import yaml

import canonml
from canonml.errors import CheckpointError, SpecError
from canonml.spec import load_spec
from canonml.train import device as devices
from tests.conftest import interrupted_run, run_cli

SETS = ["train.epochs=4", "track=false", "evaluate.ci=0"]


def test_auto_is_cuda_only_where_cuda_is_available(monkeypatch: Any) -> None:
    assert devices.resolve_device("cpu") == torch.device("cpu")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert devices.resolve_device("auto") == torch.device("cpu")
    assert devices.available()[0] == "cpu" and "cuda" not in devices.available()
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    assert devices.resolve_device("auto") == torch.device("cuda")
    assert {"cuda", "cuda:0", "cuda:1"} <= set(devices.available())


def test_a_missing_device_exits_2_naming_the_key_and_what_is_available(
    tmp_path: Path, monkeypatch: Any
) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(SpecError) as found:
        devices.resolve_device("cuda:1")
    assert found.value.path == "train.device" and "available: cpu" in str(found.value)
    with pytest.raises(SpecError) as found:
        devices.check_precision("fp16", torch.device("cpu"))
    assert found.value.path == "train.precision" and "CUDA" in str(found.value)
    if not torch.cuda.is_available():  # the CLI, in its own process, on this machine
        cli = run_cli("run", "--template", "iris", "--device", "cuda", "--out", str(tmp_path))
        assert cli.code == 2 and "train.device" in cli.stderr and "available: cpu" in cli.stderr
        assert not list(tmp_path.glob("*/*"))  # refused before a run directory exists
        fp16 = run_cli(
            "run",
            "--template",
            "iris",
            "--set",
            "train.precision=fp16",
            "--device",
            "cpu",
            "--out",
            str(tmp_path),
        )
        assert fp16.code == 2 and "train.precision" in fp16.stderr and "bf16" in fp16.stderr


@pytest.mark.parametrize("value", ["gpu", "cuda:x", "CUDA", ""])
def test_a_device_that_is_not_one_names_the_forms(value: str) -> None:
    with pytest.raises(SpecError) as found:
        load_spec("template:iris", [f"train.device={value}"])
    assert "train.device" in str(found.value) and "cuda:N" in str(found.value)


def test_a_checkpoint_holds_cpu_tensors_and_a_moved_run_resumes(
    tmp_path: Path, monkeypatch: Any
) -> None:
    whole = canonml.run("template:iris", tmp_path / "whole", overrides=[*SETS, "train.device=cpu"])
    run_dir = interrupted_run(
        "template:iris", tmp_path / "cut", [*SETS, "train.device=cpu"], monkeypatch
    )
    payload = torch.load(run_dir / "checkpoints" / "last.pt", weights_only=True)
    tensors = [*payload["model"].values()]
    for opt in payload["optimizers"].values():
        tensors += [
            v for s in opt["state"].values() for v in s.values() if isinstance(v, torch.Tensor)
        ]
    assert tensors and all(t.device.type == "cpu" for t in tensors)
    # As if it had been started on a GPU: the saved spec says cuda.
    spec_file = run_dir / "spec.yaml"
    saved = yaml.safe_load(spec_file.read_text("utf-8"))
    saved["train"]["device"] = "cuda"
    spec_file.write_text(yaml.safe_dump(saved), "utf-8")
    if not torch.cuda.is_available():
        with pytest.raises(SpecError, match="train.device"):
            canonml.run(None, tmp_path / "cut", resume=run_dir)
    with pytest.raises(CheckpointError, match="only train.device, train.checkpoint_interval may"):
        canonml.run(None, tmp_path / "cut", resume=run_dir, overrides=["train.epochs=9"])
    resumed = canonml.run(None, tmp_path / "cut", resume=run_dir, overrides=["train.device=cpu"])
    assert resumed.metrics == whole.metrics  # exact: the same CPU arithmetic either way
    assert json.loads((run_dir / "metrics.json").read_text("utf-8")) == whole.metrics
    assert yaml.safe_load(spec_file.read_text("utf-8"))["train"]["device"] == "cpu"
