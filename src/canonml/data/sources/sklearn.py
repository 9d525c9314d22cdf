"""``sklearn:NAME`` — the real data sets bundled with scikit-learn (no network)."""

from __future__ import annotations

import numpy as np

from canonml.data.dataset import Dataset
from canonml.data.sources import SOURCES
from canonml.spec.data import DataSpec


@SOURCES.register("sklearn")
def load_sklearn(arg: str, spec: DataSpec) -> Dataset:
    """Load ``digits`` (as 1×8×8 images), ``iris``, ``wine``, ``breast_cancer`` or ``diabetes``."""
    from sklearn import datasets

    bunch = getattr(datasets, f"load_{arg}")()
    x = np.asarray(bunch.data, dtype=np.float64)
    names = [str(n) for n in bunch.get("feature_names", [f"x{i}" for i in range(x.shape[1])])]
    if arg == "digits":
        # (N, 64) grey levels 0..16 → (N, 1, 8, 8) images.
        return Dataset(
            x=x.reshape(-1, 1, 8, 8).astype(np.float32),
            y=np.asarray(bunch.target, dtype=np.int64),
            kind="image",
            feature_names=names,
            label_names=[str(t) for t in bunch.target_names],
            pixel_max=16.0,
        )
    if arg == "diabetes":
        return Dataset(
            x=x, y=np.asarray(bunch.target, dtype=np.float64), kind="tabular", feature_names=names
        )
    return Dataset(
        x=x,
        y=np.asarray(bunch.target, dtype=np.int64),
        kind="tabular",
        feature_names=names,
        label_names=[str(t) for t in bunch.target_names],
    )
