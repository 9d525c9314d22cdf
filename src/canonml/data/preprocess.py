"""Preprocessing fitted on the train split: impute, one-hot, scale (pure numpy).

The fitted state is plain JSON (it goes to the run directory and the package) and every
transform is ``(x - shift) / scale`` per output feature or channel, so a runtime can fold it
into the inference graph.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from canonml.data.dataset import Dataset
from canonml.spec.data import PreprocessSpec

State = dict[str, Any]


def fit_preprocess(train: Dataset, spec: PreprocessSpec) -> State:
    """Learn imputation values, categories and scaling constants from ``train``."""
    if train.kind == "image":
        return _fit_image(train, spec)
    x = train.x
    if spec.impute == "drop":
        x = x[~np.isnan(x).any(axis=1)] if x.size else x
    fill = _fill_values(x, spec.impute)
    x = np.where(np.isnan(x), fill, x) if x.size else x
    shift, scale = _affine(x, spec.scale, axis=0)
    numeric = [
        {"name": n, "fill": float(f), "shift": float(s), "scale": float(c)}
        for n, f, s, c in zip(train.feature_names, fill, shift, scale, strict=True)
    ]
    categorical = []
    for name, col in train.categorical.items():
        filled = [v for v in col if v is not None]
        cats = sorted(set(filled))
        mode = max(cats, key=filled.count) if cats else ""
        categorical.append({"name": name, "fill": mode, "categories": cats})
    outputs = [n["name"] for n in numeric] + [
        f"{c['name']}={v}" for c in categorical for v in c["categories"]
    ]
    return {
        "kind": "tabular",
        "impute": spec.impute,
        "method": spec.scale,
        "numeric": numeric,
        "categorical": categorical,
        "output_features": outputs,
    }


def apply_preprocess(state: State, data: Dataset) -> tuple[np.ndarray, np.ndarray]:
    """Transform ``data`` to a float32 model input; returns (x, kept-row mask)."""
    if state["kind"] == "image":
        shift = np.array(state["shift"], dtype=np.float32).reshape(1, -1, 1, 1)
        scale = np.array(state["scale"], dtype=np.float32).reshape(1, -1, 1, 1)
        return ((data.x - shift) / scale).astype(np.float32), np.ones(len(data), dtype=bool)
    n = len(data)
    keep = np.ones(n, dtype=bool)
    if state["impute"] == "drop":
        keep &= ~np.isnan(data.x).any(axis=1) if data.x.size else keep
        for col in data.categorical.values():
            keep &= np.array([v is not None for v in col], dtype=bool)
    parts = []
    if state["numeric"]:
        fill = np.array([c["fill"] for c in state["numeric"]])
        shift = np.array([c["shift"] for c in state["numeric"]])
        scale = np.array([c["scale"] for c in state["numeric"]])
        x = np.where(np.isnan(data.x), fill, data.x)
        parts.append((x - shift) / scale)
    for c in state["categorical"]:
        cells = [c["fill"] if v is None else v for v in data.categorical[c["name"]]]
        # Unknown categories (unseen in training) become all zeros.
        parts.append(
            np.array([[v == k for k in c["categories"]] for v in cells], dtype=np.float64).reshape(
                n, len(c["categories"])
            )
        )
    x = np.concatenate(parts, axis=1) if parts else np.zeros((n, 0))
    return x[keep].astype(np.float32), keep


def _fit_image(train: Dataset, spec: PreprocessSpec) -> State:
    # Per-channel constants over all train pixels: (N, C, H, W) → (C,).
    x = train.x.transpose(1, 0, 2, 3).reshape(train.x.shape[1], -1).T
    shift, scale = _affine(x, spec.scale, axis=0)
    return {
        "kind": "image",
        "method": spec.scale,
        "shape": list(train.x.shape[1:]),
        "shift": [float(v) for v in shift],
        "scale": [float(v) for v in scale],
    }


def _fill_values(x: np.ndarray, how: str) -> np.ndarray:
    if x.shape[1] == 0:
        return np.zeros(0)
    if x.shape[0] == 0 or how == "drop":
        return np.zeros(x.shape[1])
    with np.errstate(all="ignore"):
        fill = np.nanmedian(x, axis=0) if how == "median" else np.nanmean(x, axis=0)
    return np.nan_to_num(fill, nan=0.0)


def _affine(x: np.ndarray, how: str, axis: int) -> tuple[np.ndarray, np.ndarray]:
    """(shift, scale) per column so that ``(x - shift) / scale`` is standardised / in [0, 1]."""
    width = x.shape[1]
    if how == "none" or x.shape[0] == 0:
        return np.zeros(width), np.ones(width)
    if how == "standard":
        shift, scale = x.mean(axis=axis), x.std(axis=axis)
    else:
        shift, scale = x.min(axis=axis), x.max(axis=axis) - x.min(axis=axis)
    # A constant column would divide by zero; leave it centred but unscaled.
    return shift, np.where(scale > 1e-12, scale, 1.0)
