"""Plots: one PNG each, written atomically, with no metadata (so no URL and no timestamp)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from canonml.evaluate import plots

PNG = b"\x89PNG\r\n\x1a\n"

HISTORY = [
    {
        "epoch": e,
        "train_loss": 1.0 / e,
        "val_loss": 1.2 / e,
        "val_accuracy": 0.5 + 0.08 * e,
        "lr": 0.01 * 0.5**e,
        "seconds": 0.1,
    }
    for e in range(1, 6)
]


def _check(path: Path | None) -> bytes:
    assert path is not None and path.is_file()
    data = path.read_bytes()
    assert data.startswith(PNG)
    assert b"http" not in data and b"Software" not in data
    assert not list(path.parent.glob("*.tmp"))
    return data


def test_learning_curves_and_lr(tmp_path: Path) -> None:
    one = plots.learning_curves(HISTORY, "val_accuracy", 4, tmp_path / "plots" / "lc.png")
    two = plots.learning_curves(HISTORY, "val_accuracy", 4, tmp_path / "again.png")
    assert _check(one) == _check(two)  # same numbers, same bytes
    loss_only = plots.learning_curves(HISTORY, "val_loss", None, tmp_path / "loss.png")
    _check(loss_only)
    _check(plots.learning_rate(HISTORY, tmp_path / "lr.png"))


def test_confusion_matrix_accepts_any_label_text(tmp_path: Path) -> None:
    confusion = [[5, 1, 0], [0, 4, 2], [0, 0, 6]]
    _check(plots.confusion_matrix(confusion, ["$5", "<b>x</b>", "c"], tmp_path / "cm.png"))
    _check(plots.confusion_matrix(confusion, None, tmp_path / "cm2.png"))
    assert plots._names(["a", "b"], 3) == ["0", "1", "2"]  # names that do not fit: indices


def test_roc_binary_multiclass_and_undefined(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    y = np.array([0, 1, 2, 0, 1, 2, 0, 1, 2, 0])
    proba = rng.dirichlet(np.ones(3), size=len(y))
    _check(plots.roc_curves(y, proba, ["a", "b", "c"], tmp_path / "roc3.png"))
    # Class 2 absent from y_true: skipped, not an error (filterwarnings = error).
    y_missing = np.array([0, 1, 0, 1, 0, 1, 0, 1, 0, 1])
    _check(plots.roc_curves(y_missing, proba, None, tmp_path / "roc3m.png"))
    y2 = np.array([0, 1, 1, 0, 1, 0])
    p2 = np.array([[0.9, 0.1], [0.2, 0.8], [0.4, 0.6], [0.7, 0.3], [0.1, 0.9], [0.6, 0.4]])
    _check(plots.roc_curves(y2, p2, ["no", "yes"], tmp_path / "roc2.png"))
    assert plots.roc_curves(np.zeros(4, int), p2[:4], None, tmp_path / "none.png") is None
    assert not (tmp_path / "none.png").exists()


@pytest.mark.parametrize("shape", [(20,), (20, 1)])
def test_regression_plots(tmp_path: Path, shape: tuple[int, ...]) -> None:
    rng = np.random.default_rng(1)
    y = rng.normal(size=shape)
    pred = y + rng.normal(scale=0.1, size=shape)
    _check(plots.predicted_vs_actual(y, pred, tmp_path / "pva.png"))
    _check(plots.residuals(y, pred, tmp_path / "res.png"))
