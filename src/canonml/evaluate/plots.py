"""Plots of a run, each written atomically as one PNG (matplotlib, imported on first use).

Figures are ``matplotlib.figure.Figure`` objects rendered by Agg, never pyplot: no
process-global backend state, nothing to close. PNGs carry no metadata (no "Software"
line with matplotlib's URL, no timestamp), so the same numbers give the same bytes.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from canonml.io import atomic_write

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

DPI = 100
SIZE = (5.0, 3.5)  # inches


# Margins in inches for figures whose labels are canonml's own words and numbers: fixed
# margins draw in half the time of a layout engine, which renders every text twice. The
# left margin (and the gap between two axes) grows with the widest y tick label.
RIGHT, BOTTOM, TOP = 0.15, 0.55, 0.15
YLABEL = 0.3  # the y axis label and its pad
DIGIT = 0.6 * 10 / 72  # inches per character of a 10 pt tick label (DejaVu Sans digits)


def _figure(
    width: float = SIZE[0], height: float = SIZE[1], ncols: int = 1, fit: bool = False
) -> Figure:
    """A figure of ``ncols`` axes; ``fit`` lays it out around its labels (names from the data,
    a colour bar), else ``_save`` sets margins from the tick labels."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=DPI, layout="constrained" if fit else None)
    fig.subplots(1, ncols)
    return fig


def _margins(fig: Figure) -> None:
    """Left margin and gap wide enough for each axis's y tick labels (no rendering)."""
    width, height = fig.get_size_inches()
    needs = []
    for ax in fig.axes:
        axis = ax.yaxis
        locs = [v for v in axis.get_major_locator()() if ax.get_ylim()[0] <= v <= ax.get_ylim()[1]]
        formatter = axis.get_major_formatter()
        formatter.set_locs(locs)
        widest = max((len(formatter(v)) for v in locs), default=3)
        needs.append(YLABEL + 0.15 + DIGIT * widest)
    left, gap = needs[0], max(needs[1:], default=0.0)
    axis_width = (width - left - RIGHT - gap * (len(needs) - 1)) / len(needs)
    fig.subplots_adjust(
        left=left / width,
        right=1 - RIGHT / width,
        bottom=BOTTOM / height,
        top=1 - TOP / height,
        wspace=gap / axis_width if len(needs) > 1 else None,
    )


def _save(fig: Figure, path: Path) -> Path:
    """Render ``fig`` to PNG bytes and write them atomically to ``path``."""
    if fig.get_layout_engine() is None:
        _margins(fig)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=DPI, metadata={"Software": None})
    atomic_write(path, buf.getvalue())
    return Path(path)


def _text(name: object) -> str:
    """A label safe from mathtext: a ``$`` in a class or feature name stays a dollar sign."""
    return str(name).replace("$", r"\$")


def _names(label_names: Sequence[str] | None, k: int) -> list[str]:
    """Class names, or indices when the names are missing or do not match ``k`` classes."""
    return (
        [str(n) for n in label_names]
        if label_names and len(label_names) == k
        else [str(i) for i in range(k)]
    )


def _series(history: Sequence[dict[str, Any]], key: str) -> tuple[list[int], list[float]]:
    """(epochs, values) of ``key`` over the rows that have a finite value for it."""
    pairs = [(int(r["epoch"]), float(r[key])) for r in history if r.get(key) is not None]
    pairs = [(e, v) for e, v in pairs if np.isfinite(v)]
    return [e for e, _ in pairs], [v for _, v in pairs]


def _epochs_axis(ax: Axes) -> None:
    from matplotlib.ticker import MaxNLocator

    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel("epoch")
    ax.grid(alpha=0.3)


def _curves(ax: Axes, history: Sequence[dict[str, Any]], name: str, best: int | None) -> None:
    """Train and val curves of metric ``name`` on ``ax``, the best epoch marked."""
    for split, style in (("train", "-"), ("val", "--")):
        epochs, values = _series(history, f"{split}_{name}")
        if epochs:
            ax.plot(epochs, values, style, marker="." if len(epochs) < 30 else None, label=split)
    if best is not None:
        ax.axvline(best, color="grey", linestyle=":", label=f"best epoch {best}")
    _epochs_axis(ax)
    ax.set_ylabel(_text(name))
    ax.legend(fontsize="small")


def _second_metric(history: Sequence[dict[str, Any]], monitor: str) -> str | None:
    """The metric shown beside the loss: the monitored one, else the first other val_ metric."""
    name = monitor.removeprefix("val_").removeprefix("train_")
    if name != "loss":
        return name
    keys = [k for k in (history[0] if history else {}) if k.startswith("val_")]
    return next((k.removeprefix("val_") for k in keys if k != "val_loss"), None)


def learning_curves(
    history: Sequence[dict[str, Any]], monitor: str, best_epoch: int | None, path: Path
) -> Path:
    """Loss (and the monitored metric) per epoch, train vs val, the early-stopping epoch marked."""
    metric = _second_metric(history, monitor)
    fig = _figure(width=9.0 if metric else SIZE[0], ncols=2 if metric else 1)
    axes = fig.axes
    _curves(axes[0], history, "loss", best_epoch)
    if metric:
        _curves(axes[1], history, metric, best_epoch)
    return _save(fig, path)


def learning_rate(history: Sequence[dict[str, Any]], path: Path) -> Path:
    """Learning rate per epoch (log scale when it spans more than a factor of ten)."""
    fig = _figure()
    ax = fig.axes[0]
    epochs, lrs = _series(history, "lr")
    ax.plot(epochs, lrs, marker="." if len(epochs) < 30 else None)
    if lrs and min(lrs) > 0 and max(lrs) / min(lrs) > 10:
        ax.set_yscale("log")
    _epochs_axis(ax)
    ax.set_ylabel("learning rate")
    return _save(fig, path)


def confusion_matrix(
    confusion: Sequence[Sequence[int]], label_names: Sequence[str] | None, path: Path
) -> Path:
    """Heat map of the confusion matrix: counts printed, colours normalised per true class."""
    counts = np.asarray(confusion, dtype=np.int64)  # (K true, K predicted)
    k = counts.shape[0]
    names = [_text(n) for n in _names(label_names, k)]
    rows = counts.sum(axis=1, keepdims=True)
    share = counts / np.maximum(rows, 1)
    side = min(max(3.5, 0.45 * k + 1.5), 9.0)
    fig = _figure(width=side + 1.0, height=side, fit=True)
    ax = fig.axes[0]
    image = ax.imshow(share, cmap="Blues", vmin=0.0, vmax=1.0)
    fig.colorbar(image, ax=ax, label="share of true class")
    ax.set_xticks(range(k), names, rotation=45 if k > 4 else 0, ha="right" if k > 4 else "center")
    ax.set_yticks(range(k), names)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    if k <= 20:  # beyond that the numbers no longer fit in their cells
        for (i, j), n in np.ndenumerate(counts):
            colour = "white" if share[i, j] > 0.5 else "black"
            ax.text(j, i, str(n), ha="center", va="center", color=colour, fontsize="small")
    return _save(fig, path)


def _roc_pairs(
    y_true: np.ndarray, proba: np.ndarray, label_names: Sequence[str] | None
) -> list[tuple[str, np.ndarray, np.ndarray]]:
    """(name, is-positive, score) per curve: one for binary, one per present class otherwise."""
    proba = proba.reshape(len(proba), -1)
    k = proba.shape[1]
    names = _names(label_names, max(k, 2))
    if k <= 2:
        score = proba[:, -1]  # (N,): probability of class 1
        return [(names[1], y_true == 1, score)]
    return [(names[c], y_true == c, proba[:, c]) for c in range(k)]


Curve = tuple[str, np.ndarray, np.ndarray, float]  # (name, false pos. rate, true pos. rate, AUC)


def roc_points(
    y_true: np.ndarray, proba: np.ndarray, label_names: Sequence[str] | None
) -> list[Curve]:
    """scikit-learn's ROC curve and AUC per class (one for binary); classes absent from
    ``y_true`` (no positives, or nothing else) have none."""
    from sklearn.metrics import roc_auc_score, roc_curve

    y_true = np.asarray(y_true).ravel()
    curves = []
    for name, pos, score in _roc_pairs(y_true, proba, label_names):
        if 0 < pos.sum() < len(pos):
            fpr, tpr, _ = roc_curve(pos, score)
            curves.append((name, fpr, tpr, float(roc_auc_score(pos, score))))
    return curves


def roc_curves(
    y_true: np.ndarray, proba: np.ndarray, label_names: Sequence[str] | None, path: Path
) -> Path | None:
    """ROC curves: one for binary, one-vs-rest per class with the macro AUC; None if undefined."""
    return roc_plot(roc_points(y_true, proba, label_names), path)


def roc_plot(curves: Sequence[Curve], path: Path) -> Path | None:
    """Draw ``roc_points`` (None when there is no curve)."""
    if not curves:
        return None
    fig = _figure(height=4.0)
    ax = fig.axes[0]
    for name, fpr, tpr, auc in curves:
        ax.plot(fpr, tpr, label=f"{_text(name)} (AUC {auc:.3f})")
    ax.plot([0, 1], [0, 1], color="grey", linestyle=":")
    ax.set_xlabel("false positive rate")
    ax.set_ylabel("true positive rate")
    macro = np.mean([c[3] for c in curves])
    title = f"macro AUC {macro:.3f}" if len(curves) > 1 else "ROC"
    ax.legend(title=title, fontsize="x-small", ncol=2 if len(curves) > 5 else 1, loc="lower right")
    ax.grid(alpha=0.3)
    return _save(fig, path)


def predicted_vs_actual(y_true: np.ndarray, y_pred: np.ndarray, path: Path) -> Path:
    """Scatter of predicted against actual values, with the y = x line."""
    actual, predicted = np.asarray(y_true, float).ravel(), np.asarray(y_pred, float).ravel()
    fig = _figure()
    ax = fig.axes[0]
    ax.scatter(actual, predicted, s=10, alpha=0.6)
    both = np.concatenate([actual, predicted])
    lo, hi = (float(both.min()), float(both.max())) if both.size else (0.0, 1.0)
    ax.plot([lo, hi], [lo, hi], color="grey", linestyle="--", label="y = x")
    ax.set_xlabel("actual")
    ax.set_ylabel("predicted")
    ax.legend(fontsize="small")
    ax.grid(alpha=0.3)
    return _save(fig, path)


def residuals(y_true: np.ndarray, y_pred: np.ndarray, path: Path) -> Path:
    """Residual (actual − predicted) against the prediction, with the zero line."""
    actual, predicted = np.asarray(y_true, float).ravel(), np.asarray(y_pred, float).ravel()
    fig = _figure()
    ax = fig.axes[0]
    ax.scatter(predicted, actual - predicted, s=10, alpha=0.6)
    ax.axhline(0.0, color="grey", linestyle="--")
    ax.set_xlabel("predicted")
    ax.set_ylabel("actual − predicted")
    ax.grid(alpha=0.3)
    return _save(fig, path)
