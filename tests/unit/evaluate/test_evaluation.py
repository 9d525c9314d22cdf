"""``evaluation.json`` stays valid JSON when a metric is undefined on the test split."""

from __future__ import annotations

import numpy as np

from canonml.evaluate.evaluation import Evaluation
from canonml.io import stable_json


def test_undefined_metrics_are_null_not_nan() -> None:
    ev = Evaluation(
        task="classification",
        metrics={"accuracy": 1.0, "roc_auc": float("nan")},
        selected={"accuracy": 1.0},
        headline="accuracy",
        interval=None,
        y_true=np.zeros(3),
        y_pred=np.zeros(3),
        cv={
            "folds": 2,
            "metrics": {
                "roc_auc": {"mean": float("nan"), "std": 0.0, "values": [1.0, float("nan")]}
            },
        },
    )
    summary = ev.summary()
    assert summary["metrics"] == {"accuracy": 1.0, "roc_auc": None}
    assert summary["cv"]["metrics"]["roc_auc"] == {"mean": None, "std": 0.0, "values": [1.0, None]}
    stable_json(summary)  # allow_nan=False: raises on any NaN left
