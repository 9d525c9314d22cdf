"""Every task × every architecture it trains: one short run through the whole pipeline —
a training step, predictions and metrics, the ONNX export and ``canon verify``'s parity."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

import canonml
from canonml.spec.task import TASK_VARIANTS
from canonml.tasks import TASKS, get_task
from tests.conftest import tiny_lm_run

# The smallest model of each architecture, and a data set it trains on.
ARCHS: dict[str, dict[str, Any]] = {
    "mlp": {"arch": "mlp", "hidden": [8]},
    "cnn": {"arch": "cnn", "channels": [4], "dense": [8]},
    "autoencoder": {"arch": "autoencoder", "hidden": [16], "latent": 2},
    "vae": {"arch": "vae", "hidden": [16], "latent": 2},
    "gan": {"arch": "gan", "latent": 4, "g_hidden": [16], "d_hidden": [16]},
    "dcgan": {"arch": "dcgan", "latent": 4, "g_channels": [8, 4], "d_channels": [4, 8]},
    "gpt": {"arch": "gpt", "layers": 1, "heads": 2, "dim": 16, "context": 16},
    "pretrained": {"arch": "pretrained", "pooling": "last"},  # + a tiny GPT run's checkpoint
}
IMAGES = {"cnn", "autoencoder", "vae", "gan", "dcgan"}
CASES = [
    (variant.model_fields["name"].default, arch)
    for variant in TASK_VARIANTS
    for arch in variant.archs
]


def test_every_task_variant_has_a_task_and_every_arch_a_case() -> None:
    assert set(TASKS.names()) == {task for task, _ in CASES}
    assert {arch for _, arch in CASES} == set(ARCHS)


@pytest.mark.parametrize(("task", "arch"), CASES, ids=[f"{t}-{a}" for t, a in CASES])
def test_a_run_trains_predicts_exports_and_verifies(task: str, arch: str, tmp_path: Path) -> None:
    # Regression on images: the digit's value as a number.
    source = "sklearn:digits" if arch in IMAGES else "sklearn:iris"
    if task == "regression" and arch not in IMAGES:
        source = "sklearn:diabetes"
    if arch == "gpt":  # a small corpus of repeated sentences, in a plain-text file
        corpus = tmp_path / "corpus.txt"
        lines = [f"第{i % 7}行：今天天气很好，我们去公园散步。" for i in range(60)]
        corpus.write_text("\n".join(lines) + "\n", encoding="utf-8")
        source = f"corpus:{corpus}"
    model = dict(ARCHS[arch])
    if arch == "pretrained":  # a tiny GPT pretrained by a run, fine-tuned on labelled texts
        model["checkpoint"] = str(tiny_lm_run(tmp_path, "base"))
        texts = tmp_path / "reviews.csv"
        rows = [
            ("这家店的菜很好吃，服务也很好。", "pos"),
            ("太差了，再也不来了，非常失望。", "neg"),
        ]
        lines = ["text,label"] + [f"{t}第{i % 10}次,{y}" for i in range(30) for t, y in rows]
        texts.write_text("\n".join(lines) + "\n", encoding="utf-8")
        source = f"text:{texts}"
    spec = {
        "name": "contract",
        "task": task,
        "data": {"source": source},
        "model": model,
        "train": {"epochs": 1, "batch_size": 64},
        "evaluate": {"ci": 0},
        "track": False,
    }
    result = canonml.run(spec, out=tmp_path / "runs")
    facts = get_task(task).spec_class
    assert facts.headline in result.metrics  # predictions scored by the task's headline
    package = result.run_dir / "package"
    assert canonml.verify_package(package) == []  # ONNX Runtime agrees with PyTorch
    manifest = canonml.open_package(package).manifest
    assert manifest["task"] == task
    assert [o["name"] for o in manifest["signature"]["outputs"]]
