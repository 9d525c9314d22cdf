"""task: language-modeling end to end on a small corpus: a GPT trains, is scored against its
initialisation and the unigram baseline, packaged with its KV-cache decoder and tokenizer,
verified, and generates torch-free with ``canon generate``."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

import canonml
from canonml.package.generate import open_generator
from tests.conftest import run_cli

SENTENCES = [
    "今天天气很好，我们去公园散步。",
    "新华社北京一月一日电，中国人民迎来新年。",
    "记者从有关部门获悉，今年经济发展良好。",
    "我们要继续努力工作，建设美好的家园。",
]


def corpus(path: Path, lines: int = 240) -> Path:
    text = "\n".join(f"{SENTENCES[i % 4]}第{i % 10}号" for i in range(lines)) + "\n"
    path.write_text(text, encoding="utf-8")
    return path


def lm_spec(source: str, **train: Any) -> dict[str, Any]:
    return {
        "name": "tiny-lm",
        "task": {"name": "language-modeling", "prompts": ["今天", "新华社"], "sample_tokens": 20},
        "data": {"source": source, "split": {"val": 0.1, "test": 0.1}},
        "model": {"arch": "gpt", "layers": 2, "heads": 2, "dim": 32, "context": 32},
        "train": {
            "epochs": 4,
            "batch_size": 16,
            "optimizer": {"name": "adamw", "lr": 0.01},
            "schedule": {"name": "warmup_cosine", "warmup": 0.1},
            "grad_clip": 1.0,
            **train,
        },
        "evaluate": {"ci": 50},
        "track": False,
    }


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> canonml.RunResult:
    root = tmp_path_factory.mktemp("lm")
    return canonml.run(lm_spec(f"corpus:{corpus(root / 'news.txt')}"), out=root / "runs")


def test_the_model_learns_beyond_character_frequencies(trained: canonml.RunResult) -> None:
    m = trained.metrics
    assert set(m) >= {"perplexity", "bits_per_char", "unigram_bits_per_char", "perplexity_init"}
    assert m["perplexity"] < 0.5 * m["perplexity_init"]
    assert m["bits_per_char"] < m["unigram_bits_per_char"]
    assert {"val_perplexity", "val_bits_per_char"} <= set(trained.history[-1])


def test_the_run_keeps_its_tokenizer_samples_and_a_report_section(
    trained: canonml.RunResult,
) -> None:
    run = trained.run_dir
    assert (run / "tokenizer.json").is_file() and (run / "package" / "tokenizer.json").is_file()
    samples = json.loads((run / "samples.json").read_text(encoding="utf-8"))
    assert [s["prompt"] for s in samples["samples"]["final"]] == ["今天", "新华社"]
    assert samples["before_training"]["perplexity"] > 0
    report = (run / "report.html").read_text(encoding="utf-8")
    assert "Language model" in report and "unigram baseline" in report
    assert "At initialisation" in report and "After training" in report


def test_the_package_verifies_cached_against_uncached_decoding(trained: canonml.RunResult) -> None:
    package = trained.run_dir / "package"
    assert canonml.verify_package(package) == []
    manifest = canonml.open_package(package).manifest
    names = [i["name"] for i in manifest["signature"]["inputs"]]
    assert names[0] == "input_ids" and "past_key_values.0.key" in names
    assert "present.1.value" in [o["name"] for o in manifest["signature"]["outputs"]]
    assert manifest["signature"]["generator"]["context"] == 32


def test_canon_generate_runs_without_torch_and_repeats_with_a_seed(
    trained: canonml.RunResult,
) -> None:
    args = ["generate", str(trained.run_dir), "--prompt", "今天", "--seed", "3"]
    code = (
        f"import sys; sys.modules['torch'] = None\nfrom canonml.cli import main\nmain({args!r})\n"
    )
    first = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert first.returncode == 0, first.stderr
    again = run_cli(*args, "--max-new-tokens", "200")
    assert again.code == 0 and again.stdout == first.stdout
    assert first.stdout.startswith("今天") and len(first.stdout) > 3
    gen = open_generator(trained.run_dir)
    settings = {"max_new_tokens": 200, "temperature": 0.8, "top_k": 50, "top_p": 0.95}
    assert "今天" + gen.complete("今天", seed=3, **settings) + "\n" == first.stdout


def test_generate_and_predict_refuse_what_they_cannot_do(trained: canonml.RunResult) -> None:
    long = run_cli("generate", str(trained.run_dir), "--prompt", "今天" * 40)
    assert long.code == 2 and "leave no room in the model's context of 32" in long.stderr
    pkg = trained.run_dir / "package"
    predicted = run_cli("predict", str(pkg), str(trained.run_dir / "spec.yaml"))
    assert predicted.code == 2 and "canon generate" in predicted.stderr


@pytest.mark.parametrize(
    ("edit", "where"),
    [
        ({"model": {"arch": "gpt", "context": 0}}, "model.context"),
        ({"data": {"source": "sklearn:iris"}}, "data.source"),
        ({"model": {"arch": "mlp"}}, "model.arch"),
    ],
)
def test_a_bad_language_model_spec_names_the_key(
    edit: dict[str, Any], where: str, tmp_path: Path
) -> None:
    spec = lm_spec(f"corpus:{corpus(tmp_path / 'c.txt', 20)}") | edit
    path = tmp_path / "spec.yaml"
    path.write_text(json.dumps(spec), encoding="utf-8")
    result = run_cli("validate", str(path))
    assert result.code == 2 and where in result.stderr


def test_an_empty_corpus_is_one_line_naming_the_file(tmp_path: Path) -> None:
    empty = tmp_path / "empty.txt"
    empty.write_text("\n\n", encoding="utf-8")
    path = tmp_path / "spec.yaml"
    path.write_text(json.dumps(lm_spec(f"corpus:{empty}")), encoding="utf-8")
    result = run_cli("run", str(path))
    assert result.code == 2 and str(empty) in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_canon_evaluate_scores_another_corpus_with_the_runs_tokenizer(
    trained: canonml.RunResult, tmp_path: Path
) -> None:
    other = corpus(tmp_path / "other.txt", 60)
    result = run_cli("evaluate", str(trained.run_dir), "--data", f"corpus:{other}")
    assert result.code == 0, result.stderr
    written = json.loads(
        next((trained.run_dir / "evaluations").glob("*other.txt.json")).read_text("utf-8")
    )
    assert 1.0 < written["metrics"]["perplexity"] < trained.metrics["perplexity_init"]


def test_the_hub_and_mlflow_see_a_text_generation_model(
    trained: canonml.RunResult, tmp_path: Path
) -> None:
    from huggingface_hub import ModelCard

    out = tmp_path / "hf"
    result = run_cli("export", str(trained.run_dir), "--format", "hf", "-o", str(out))
    assert result.code == 0, result.stderr
    assert (out / "tokenizer.json").is_file()
    card = ModelCard.load(out / "README.md")
    assert card.data.pipeline_tag == "text-generation"


def test_the_same_spec_and_seed_give_the_same_metrics(
    trained: canonml.RunResult, tmp_path: Path
) -> None:
    spec = yaml.safe_load((trained.run_dir / "spec.yaml").read_text(encoding="utf-8"))
    again = canonml.run(spec, out=tmp_path / "runs")
    assert (again.run_dir / "metrics.json").read_bytes() == (
        trained.run_dir / "metrics.json"
    ).read_bytes()
    assert (again.run_dir / "samples.json").read_bytes() == (
        trained.run_dir / "samples.json"
    ).read_bytes()
