"""Targets: what a task makes of a source's target column, and the pure helpers it uses.

The data layer knows no task: it is handed a ``Targets`` (a task from ``canonml.tasks``)
that encodes targets, says what a split stratifies by, and learns what it needs from the
training targets.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

from canonml.data.dataset import Dataset
from canonml.errors import DataError
from canonml.spec.data import PreprocessSpec

if TYPE_CHECKING:
    from canonml.spec.root import Spec


class Targets(Protocol):
    """The data-facing side of a task."""

    def encode_targets(self, data: Dataset) -> Dataset:
        """``data`` with ``y`` as the task trains on it (class indices, numbers, ...)."""

    def strata(self, y: np.ndarray) -> np.ndarray | None:
        """What a stratified split keeps in proportion (class indices), or None."""

    def fit_target(self, y: np.ndarray, spec: PreprocessSpec) -> dict[str, Any] | None:
        """What is learned from the training targets (kept in preprocess.json), or None."""

    def target_array(self, y: np.ndarray, fitted: dict[str, Any] | None) -> np.ndarray:
        """Encoded targets as the model's training targets (the dtype the loss takes)."""

    def train_rows(self, spec: Spec, y: np.ndarray) -> np.ndarray | None:
        """Which examples (by encoded target) train and validate, as a bool mask; None: all.
        The test split always keeps every example (anomaly detection trains on the normal
        classes and tests on all of them)."""


def as_labels(data: Dataset) -> Dataset:
    """``data`` with ``y`` as int64 class indices and ``label_names`` (sorted naturally)."""
    y = data.y
    if y.dtype.kind == "f" and not np.all(np.mod(y, 1) == 0):
        raise DataError(
            "the target is continuous; use task: regression, or a column of class labels",
            path="task",
        )
    if data.label_names is not None and y.dtype.kind in "iu":
        return data
    if y.dtype.kind == "O":
        y = np.array([str(_plain(v)) for v in y], dtype=str)
    values, inverse = np.unique(y, return_inverse=True)
    names = [str(_plain(v.item())) for v in values]
    order = sorted(range(len(names)), key=lambda i: _label_key(names[i]))
    rank = np.empty(len(order), dtype=np.int64)
    rank[order] = np.arange(len(order))
    data.y = rank[inverse.reshape(-1)]
    data.label_names = [names[i] for i in order]
    return data


def as_numbers(data: Dataset, task: str) -> Dataset:
    """``data`` with ``y`` as float64 values (no label names); ``task`` names the need."""
    try:
        data.y = data.y.astype(np.float64)
    except (TypeError, ValueError):
        bad = next(v for v in data.y if not _is_number(v))
        raise DataError(
            f"target value '{bad}' is not a number (task: {task} needs numbers)",
            path="data.target",
        ) from None
    data.label_names = None
    return data


def _plain(v: object) -> object:
    """1.0 → 1 so numeric labels read as written."""
    if isinstance(v, float | np.floating) and float(v).is_integer():
        return int(v)
    return v


def _label_key(v: str) -> tuple[int, float, str]:
    # Numeric labels sort by value ("2" before "10"), others alphabetically after them.
    return (0, float(v), "") if _is_number(v) else (1, 0.0, v)


def _is_number(v: object) -> bool:
    try:
        float(str(v))
    except ValueError:
        return False
    return True
