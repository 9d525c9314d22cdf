"""The vectorised bootstrap gives the interval of one scikit-learn call per resample."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest

from canonml.evaluate.evaluate import bootstrap
from canonml.evaluate.metrics import BATCHED, METRICS


def one_call_per_resample(metric: str, y_true: np.ndarray, y_pred: np.ndarray, seed: int) -> Any:
    rng = np.random.default_rng(seed)
    values = []
    for _ in range(400):
        idx = rng.integers(0, len(y_true), len(y_true))
        values.append(METRICS.get(metric)(y_true[idx], y_pred[idx], None))
    finite = [v for v in values if math.isfinite(v)]
    return float(np.percentile(finite, 2.5)), float(np.percentile(finite, 97.5))


@pytest.mark.parametrize("metric", sorted(BATCHED))
@pytest.mark.parametrize("n", [3, 40, 257])
def test_batched_metrics_match_sklearn(metric: str, n: int) -> None:
    rng = np.random.default_rng(n)
    if metric == "accuracy":
        y_true = rng.integers(0, 3, n)
        y_pred = np.where(rng.random(n) < 0.7, y_true, rng.integers(0, 3, n))
    else:
        y_true = rng.normal(size=n)
        y_pred = y_true + rng.normal(size=n) * 0.3
    got = bootstrap(metric, y_true, y_pred, None, 400, seed=7)
    assert got == pytest.approx(one_call_per_resample(metric, y_true, y_pred, 7), abs=1e-12)


def test_constant_targets_follow_sklearns_r2_convention() -> None:
    same = np.ones(4)
    assert bootstrap("r2", same, same, None, 50, 0) == (1.0, 1.0)
    assert bootstrap("r2", same, same + 1, None, 50, 0) == (0.0, 0.0)


def test_unbatched_metrics_still_resample() -> None:
    y_true = np.array([0, 1] * 20)
    y_pred = np.array([0, 1, 1, 0] * 10)
    assert "f1_macro" not in BATCHED
    assert bootstrap("f1_macro", y_true, y_pred, None, 400, 7) == pytest.approx(
        one_call_per_resample("f1_macro", y_true, y_pred, 7)
    )
