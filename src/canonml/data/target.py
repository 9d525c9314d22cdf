"""Turn a source's raw target column into class indices or regression values (pure)."""

from __future__ import annotations

import numpy as np

from canonml.data.dataset import Dataset
from canonml.errors import DataError


def encode_target(data: Dataset, task: str) -> Dataset:
    """Return ``data`` with ``y`` as int64 class indices (and label names) or float targets."""
    y = data.y
    if task == "regression":
        try:
            data.y = y.astype(np.float64)
        except (TypeError, ValueError):
            bad = next(v for v in y if not _is_number(v))
            raise DataError(
                f"target value '{bad}' is not a number (task: regression needs numbers)",
                path="data.target",
            ) from None
        data.label_names = None
        return data
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
