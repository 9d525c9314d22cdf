"""The package signature and the graph's input convention (pure numpy, no torch).

The graph takes *raw* inputs: tabular rows with one column per name in ``features`` (numeric
columns as read, NaN for a missing cell; a categorical column as its one-hot columns
``col=value``), or images of raw pixel values ``(C, H, W)``. The graph imputes and scales
them with the fitted constants in ``preprocessing``.
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np

from canonml.data.anonymize import input_rules
from canonml.data.dataset import Categorical, Dataset
from canonml.data.preprocess import apply_preprocess
from canonml.errors import CanonWarning
from canonml.tasks.base import Task

# The grey-level range of sklearn:digits; image sources default to 8-bit pixels.
PIXEL_MAX = {"sklearn:digits": 16.0}


def build_signature(task: Task, described: dict[str, Any], state: dict[str, Any]) -> dict[str, Any]:
    """Inputs, outputs (Open Inference Protocol datatypes), labels and preprocessing."""
    kind = described["kind"]
    shape = [int(d) for d in described["input_shape"]]
    labels = described.get("label_names")
    outputs = task.outputs_for(labels, shape)
    image = kind == "image"
    anonymized = described.get("anonymize")
    rules = {"anonymize": input_rules(anonymized)} if anonymized else {}
    return {
        "inputs": [{"name": "input", "datatype": "FP32", "shape": [-1, *shape]}],
        "outputs": outputs,
        "labels": labels,
        "features": list(described["feature_names"]),
        "kind": kind,
        "image_shape": shape if image else None,
        # Image files are read as 0..255 and mapped to the training range 0..pixel_max.
        "pixel_max": _pixel_max(described) if image else None,
        "preprocessing": {**state, "in_graph": True},
        # data.anonymize's rules, which canon predict applies to raw rows as training did.
        **rules,
    }


def graph_constants(state: dict[str, Any]) -> tuple[np.ndarray | None, np.ndarray, np.ndarray]:
    """(fill, shift, scale) float32 per input column (per channel for images; no fill).

    One-hot columns pass through the graph unchanged: fill 0, shift 0, scale 1.
    """
    if state["kind"] == "image":
        return None, _f32(state["shift"]), _f32(state["scale"])
    numeric = state["numeric"]
    n_onehot = sum(len(c["categories"]) for c in state["categorical"])
    fill = _f32([c["fill"] for c in numeric] + [0.0] * n_onehot)
    shift = _f32([c["shift"] for c in numeric] + [0.0] * n_onehot)
    scale = _f32([c["scale"] for c in numeric] + [1.0] * n_onehot)
    return fill, shift, scale


def raw_columns(state: dict[str, Any]) -> tuple[list[str], list[str]]:
    """The numeric and the categorical column names a raw table needs (tabular only)."""
    return [c["name"] for c in state["numeric"]], [c["name"] for c in state["categorical"]]


def to_graph_input(
    state: dict[str, Any], numeric: np.ndarray, categorical: dict[str, Any]
) -> np.ndarray:
    """Raw table → the graph input ``(N, F)``: numeric cells as given, categorical one-hot.

    ``categorical`` maps a column to a ``Categorical`` or to its cells (str, None = missing).
    A missing categorical cell becomes the training mode, an unseen category all
    zeros — exactly as training encoded them (canonml.data.preprocess does the encoding).
    """
    n = len(numeric)
    # Only the categorical part of the fitted state, and no row dropping: the graph imputes.
    onehot_only = {**state, "numeric": [], "impute": "median"}
    empty = Dataset(
        x=np.zeros((n, 0)),
        y=np.zeros(n),
        kind="tabular",
        feature_names=[],
        categorical={
            k: v if isinstance(v, Categorical) else Categorical.from_values(v)
            for k, v in categorical.items()
        },
    )
    _warn_unseen(state, empty.categorical)
    onehot, _ = apply_preprocess(onehot_only, empty)
    return np.concatenate([numeric.astype(np.float32), onehot], axis=1)


def _warn_unseen(state: dict[str, Any], columns: dict[str, Categorical]) -> None:
    """One warning per column whose cells hold categories the training data never had."""
    for fitted in state["categorical"]:
        column = columns.get(fitted["name"])
        if column is None:
            continue
        known = set(fitted["categories"])
        unseen = [c for c in column.categories if c not in known]
        if not unseen:
            continue
        rows = int(np.isin(column.codes, [column.categories.index(c) for c in unseen]).sum())
        shown = ", ".join(repr(c) for c in unseen[:5]) + (" ..." if len(unseen) > 5 else "")
        warnings.warn(
            f"column '{fitted['name']}': {rows} row(s) hold categories the model never saw "
            f"({shown}); they are encoded as all zeros, as in training",
            CanonWarning,
            stacklevel=3,
        )


def sample_inputs(
    state: dict[str, Any], shape: list[int], n: int, seed: int = 0, in_range: bool = False
) -> Any:
    """``n`` seeded raw inputs around the training data, and the model inputs they become.

    Returns (graph input, model input); the model input comes from the training code's own
    numpy preprocessing, so comparing the two checks the constants folded into the graph.
    ``in_range``: scaled inputs inside the training data's range (min-max: [0, 1]; else
    within 2 standard deviations), for an int8 graph whose activation ranges were
    calibrated on that data (outside them it saturates by design).
    """
    rng = np.random.default_rng(seed)

    def noise_of(size: tuple[int, ...]) -> np.ndarray:
        if not in_range:
            return rng.standard_normal(size)
        if state.get("method") == "minmax":
            return rng.uniform(0.0, 1.0, size)
        return np.clip(rng.standard_normal(size), -2.0, 2.0)

    if state["kind"] == "image":
        _, shift, scale = graph_constants(state)
        noise = noise_of((n, *shape))
        raw = (shift.reshape(1, -1, 1, 1) + scale.reshape(1, -1, 1, 1) * noise).astype(np.float32)
        data = Dataset(x=raw, y=np.zeros(n), kind="image", feature_names=[])
        return raw, apply_preprocess(state, data)[0]
    shift = np.array([c["shift"] for c in state["numeric"]], dtype=np.float64)
    scale = np.array([c["scale"] for c in state["numeric"]], dtype=np.float64)
    x = shift + scale * noise_of((n, len(shift)))
    gaps = state["impute"] != "drop"  # with drop, training never saw a missing cell
    if gaps:
        x[rng.random(x.shape) < 0.1] = np.nan
    cats = {c["name"]: _sample_cells(rng, c["categories"], n, gaps) for c in state["categorical"]}
    data = Dataset(x=x, y=np.zeros(n), kind="tabular", feature_names=[], categorical=cats)
    return to_graph_input(state, x, cats), apply_preprocess(state, data)[0]


def _sample_cells(
    rng: np.random.Generator, categories: list[str], n: int, gaps: bool
) -> Categorical:
    codes = rng.integers(0, len(categories), n) if categories else np.full(n, -1)
    if gaps:
        codes[rng.random(n) < 0.1] = -1
    return Categorical(codes.astype(np.int32), list(categories))


def _pixel_max(described: dict[str, Any]) -> float:
    if described.get("pixel_max"):
        return float(described["pixel_max"])
    return PIXEL_MAX.get(str(described.get("source")), 255.0)


def _f32(values: list[float]) -> np.ndarray:
    return np.asarray(values, dtype=np.float32)
