"""k-fold cross-validation on train+val: k models, each scored on its held-out fold."""

from __future__ import annotations

from typing import Any

import numpy as np

from canonml.data.prepare import Loaded, build_splits
from canonml.data.split import split_indices
from canonml.spec.data import SplitSpec
from canonml.spec.root import Spec
from canonml.tasks.base import Task


def cross_validate(spec: Spec, task: Task, loaded: Loaded, pool: np.ndarray) -> dict[str, Any]:
    """Train ``evaluate.cv`` models on folds of the rows ``pool`` (train+val indices).

    Each fold fits its own preprocessing on its training rows and cuts its own validation
    rows (``data.split.val``) for early stopping, so the held-out fold stays unseen.
    """
    import torch
    from sklearn.model_selection import KFold, StratifiedKFold

    from canonml.evaluate.evaluate import evaluate_model
    from canonml.models import build_model
    from canonml.train.session import train_model

    k = int(spec.evaluate.cv or 0)
    y = loaded.raw.y[pool]
    strata = task.strata(y) if spec.data.split.stratify else None
    folds = (KFold if strata is None else StratifiedKFold)(
        n_splits=k, shuffle=True, random_state=spec.seed
    )
    per_fold: list[dict[str, float]] = []
    for fold, (fit_rows, held_rows) in enumerate(folds.split(pool, strata)):
        rows = pool[fit_rows]
        inner = SplitSpec(val=spec.data.split.val, test=0.0, stratify=spec.data.split.stratify)
        fold_strata = task.strata(loaded.raw.y[rows]) if strata is not None else None
        tr, va, _ = split_indices(len(rows), fold_strata, inner, spec.seed + fold, True)
        data = build_splits(
            spec,
            loaded,
            task,
            loaded.raw.take(rows[tr]),
            loaded.raw.take(rows[va]),
            loaded.raw.take(pool[held_rows]),
        )
        torch.manual_seed(spec.seed + fold)
        model = build_model(
            spec.model, task.model_io(data.input_shape, data.label_names, data.preprocess)
        )
        train_model(spec, task, model, data, None)
        per_fold.append(evaluate_model(spec, task, model, data, ci=0).metrics)
    return {"folds": k, "metrics": _mean_std(per_fold)}


def _mean_std(per_fold: list[dict[str, float]]) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    for name in per_fold[0]:
        values = [f[name] for f in per_fold]
        out[name] = {"mean": float(np.mean(values)), "std": float(np.std(values)), "values": values}
    return out
