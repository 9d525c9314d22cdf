"""``train.precision: bf16``: training batches under autocast to bfloat16, evaluation and
weights in fp32; the same seed gives the same weights; an exact resume; the spec refuses
an unknown precision and bf16 under DP-SGD, naming the key (fp16 without CUDA: test_device)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import torch

import canonml
from canonml.errors import SpecError
from canonml.spec import load_spec
from canonml.spec.train import TrainSpec
from canonml.tasks.steps import ClassificationStep
from canonml.train.loop import TrainState, fit
from tests.conftest import interrupted_run


def run_blobs(precision: str, seed: int = 0) -> tuple[torch.nn.Module, list[torch.dtype]]:
    torch.manual_seed(seed)
    x = torch.randn(96, 6)
    y = (x[:, 0] > 0).long()
    model = torch.nn.Sequential(torch.nn.Linear(6, 16), torch.nn.ReLU(), torch.nn.Linear(16, 2))
    seen: list[torch.dtype] = []
    model[0].register_forward_hook(lambda m, i, out: seen.append(out.dtype))
    spec = TrainSpec(epochs=3, batch_size=16, precision=precision)
    state = TrainState()
    state.generator.manual_seed(seed)
    step = ClassificationStep(model, spec)
    fit(
        step,
        (x, y),
        (x, y),
        epochs=3,
        batch_size=16,
        state=state,
        callbacks=[],
        precision=precision,
    )
    return model, seen


def test_bf16_trains_under_autocast_and_evaluates_in_fp32() -> None:
    model, seen = run_blobs("bf16")
    assert torch.bfloat16 in seen and torch.float32 in seen  # training, then evaluation
    assert all(p.dtype == torch.float32 for p in model.parameters())
    again, _ = run_blobs("bf16")
    for a, b in zip(model.parameters(), again.parameters(), strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=0)  # deterministic with a seed
    plain, seen32 = run_blobs("fp32")
    assert set(seen32) == {torch.float32}
    assert not torch.equal(plain[0].weight, model[0].weight)


def test_a_bf16_run_resumes_to_the_same_metrics(tmp_path: Path, monkeypatch: Any) -> None:
    sets = ["train.precision=bf16", "train.epochs=4", "track=false", "evaluate.ci=0"]
    whole = canonml.run("template:iris", tmp_path / "whole", overrides=sets)
    run_dir = interrupted_run("template:iris", tmp_path / "cut", sets, monkeypatch)
    resumed = canonml.run(None, tmp_path / "cut", resume=run_dir)
    assert resumed.metrics == whole.metrics
    saved = json.loads((run_dir / "metrics.json").read_text("utf-8"))
    assert saved == whole.metrics


@pytest.mark.parametrize(
    ("sets", "where", "words"),
    [
        (["train.precision=fp8"], "train.precision", "fp32"),
        (["train.precision=bf16", "privacy.dp.epsilon=3"], "train.precision", "Opacus"),
    ],
)
def test_a_precision_the_machine_cannot_train_names_the_key(
    sets: list[str], where: str, words: str
) -> None:
    with pytest.raises(SpecError) as found:
        load_spec("template:breast-cancer", sets)
    assert where in str(found.value) and words in str(found.value)
