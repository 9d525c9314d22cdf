"""report.html: self-contained, escaped, sections in registry order, written atomically."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from canonml.evaluate import report
from canonml.evaluate.evaluation import Evaluation
from canonml.evaluate.report import ReportContext, make_plots, section, write_report
from canonml.spec import Spec
from canonml.tasks import get_task

DATA_URI = "data:image/png;base64,"
LABELS = ["<b>x</b>", "cat & dog", "c"]


def _history(metric: str) -> list[dict[str, float]]:
    return [
        {"epoch": e, "train_loss": 1.0 / e, "val_loss": 1.1 / e, metric: 0.5 + 0.1 * e,
         "lr": 0.01, "seconds": 0.2}
        for e in range(1, 6)
    ]  # fmt: skip


def _classification() -> Evaluation:
    y = np.array([0, 1, 2] * 6)
    proba = np.full((18, 3), 0.1)
    proba[np.arange(18), y] = 0.8
    proba[0] = [0.1, 0.8, 0.1]  # one mistake
    return Evaluation(
        task="classification",
        metrics={"accuracy": 17 / 18, "f1_macro": 0.944},
        selected={"accuracy": 17 / 18},
        headline="accuracy",
        interval=(0.8611, 1.0),
        y_true=y,
        y_pred=proba.argmax(axis=1),
        proba=proba,
        label_names=LABELS,
        per_class=[
            {"label": n, "precision": 1.0, "recall": 0.9, "f1": 0.95, "support": 6} for n in LABELS
        ],
        confusion=[[5, 1, 0], [0, 6, 0], [0, 0, 6]],
        cv={"folds": 3, "metrics": {"accuracy": {"mean": 0.9, "std": 0.02, "values": [0.9] * 3}}},
    )


def _regression() -> Evaluation:
    y = np.linspace(0.0, 10.0, 20)
    return Evaluation(
        task="regression",
        metrics={"r2": 0.95, "mae": 0.5},
        selected={"r2": 0.95, "mae": 0.5},
        headline="r2",
        interval=(0.9, 0.98),
        y_true=y,
        y_pred=y + np.sin(y) * 0.3,
    )


def _context(tmp_path: Path, evaluation: Evaluation) -> ReportContext:
    task = evaluation.task
    spec = Spec.model_validate(
        {"name": "tiny", "task": task, "data": {"source": "csv:a<b>.csv", "target": "y"}}
    )
    data = {
        "kind": "tabular", "input_shape": [2], "sizes": {"train": 70, "val": 10, "test": 18},
        "feature_names": ["f<1>", "f2"], "label_names": evaluation.label_names,
        "fingerprint": "ab" * 32, "source": "csv:a<b>.csv", "rows": 98,
    }  # fmt: skip
    preprocess = {
        "kind": "tabular", "impute": "median", "method": "standard",
        "numeric": [{"name": "f<1>", "fill": 0.0, "shift": 1.0, "scale": 2.0}],
        "categorical": [{"name": "colour", "fill": "red", "categories": ["red", "<i>blue</i>"]}],
    }  # fmt: skip
    metric = "val_accuracy" if task == "classification" else "val_mae"
    return ReportContext(
        spec=spec,
        run_dir=tmp_path,
        data=data,
        preprocess=preprocess,
        history=_history(metric),
        evaluation=evaluation,
        model_rows=[{"layer": "Linear", "output_shape": [None, 3], "parameters": 9}],
        param_count=9,
        seconds=12.5,
        best_epoch=4,
        monitor=metric,
    )


def _write(ctx: ReportContext) -> str:
    make_plots(ctx, get_task(ctx.spec))
    path = write_report(ctx)
    assert path == ctx.run_dir / "report.html"
    assert not list(ctx.run_dir.rglob("*.tmp"))
    return path.read_text(encoding="utf-8")


def _inlined(page: str, key: str, ctx: ReportContext) -> bool:
    import base64

    return DATA_URI + base64.b64encode(ctx.plots[key].read_bytes()).decode() in page


def test_classification_report(tmp_path: Path) -> None:
    ctx = _context(tmp_path, _classification())
    page = _write(ctx)
    assert "http://" not in page and "https://" not in page and "<script" not in page
    names = {p.name for p in (tmp_path / "plots").iterdir()}
    assert names == {"learning_curves.png", "learning_rate.png", "confusion_matrix.png", "roc.png"}
    assert page.count(DATA_URI) == 4
    assert _inlined(page, "learning_curves", ctx) and _inlined(page, "confusion_matrix", ctx)
    assert "accuracy 0.944 (95% CI 0.861–1.000)" in page
    assert "&lt;b&gt;x&lt;/b&gt;" in page and "<b>x</b>" not in page
    assert "cat &amp; dog" in page and "&lt;i&gt;blue&lt;/i&gt;" in page
    assert "0.9 ± 0.02" in page  # cross-validation
    assert "ab" * 32 in page  # fingerprint
    titles = re.findall(r"<h2>(.*?)</h2>", page)
    assert titles == ["Summary", "Data", "Model", "Training", "Test results", "Spec"]


def test_regression_report(tmp_path: Path) -> None:
    ctx = _context(tmp_path, _regression())
    page = _write(ctx)
    assert set(ctx.plots) == {
        "learning_curves",
        "learning_rate",
        "predicted_vs_actual",
        "residuals",
    }
    assert _inlined(page, "predicted_vs_actual", ctx) and _inlined(page, "residuals", ctx)
    assert page.count(DATA_URI) == 4
    assert "r2 0.950 (95% CI 0.900–0.980)" in page
    assert "Class balance" not in page


def test_no_url_even_from_user_strings(tmp_path: Path) -> None:
    ctx = _context(tmp_path, _regression())
    ctx.data["source"] = "csv:https://example.org/a.csv"
    ctx.history, ctx.evaluation = [], None
    page = _write(ctx)
    assert "https://" not in page and "https:&#47;&#47;example.org" in page
    assert re.findall(r"<h2>(.*?)</h2>", page) == ["Summary", "Data", "Model", "Spec"]
    assert DATA_URI not in page


@pytest.fixture
def extra_section() -> Iterator[None]:
    @section("Probe", order=45)
    def probe(ctx: ReportContext) -> str | None:
        return f"<p>{len(ctx.extra['attributions'])} attributions</p>"

    yield
    report.SECTIONS[:] = [s for s in report.SECTIONS if s.render is not probe]


def test_adding_a_section_is_one_function(tmp_path: Path, extra_section: None) -> None:
    ctx = _context(tmp_path, _classification())
    ctx.extra["attributions"] = [1, 2]
    page = _write(ctx)
    titles = re.findall(r"<h2>(.*?)</h2>", page)
    assert titles == ["Summary", "Data", "Model", "Training", "Probe", "Test results", "Spec"]
    assert "<p>2 attributions</p>" in page
    with pytest.raises(ValueError, match="already registered"):
        section("Probe", order=1)(lambda ctx: None)


def test_section_fixture_did_not_leak() -> None:
    assert "Probe" not in [s.title for s in report.SECTIONS]
