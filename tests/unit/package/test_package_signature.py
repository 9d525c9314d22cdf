"""The signature and the graph's input convention: constants, one-hot columns, samples."""

from __future__ import annotations

import numpy as np
import pytest

from canonml.errors import CanonWarning
from canonml.package.signature import graph_constants, sample_inputs, to_graph_input
from tests.unit.package.fakes import IMAGE_STATE, TABULAR_STATE, signature


def test_classification_signature_uses_oip_datatypes() -> None:
    sig = signature(TABULAR_STATE, ["no", "yes"])
    assert sig["inputs"] == [{"name": "input", "datatype": "FP32", "shape": [-1, 5]}]
    assert sig["outputs"] == [
        {"name": "probabilities", "datatype": "FP32", "shape": [-1, 2]},
        {"name": "label", "datatype": "INT64", "shape": [-1]},
    ]
    assert sig["features"] == TABULAR_STATE["output_features"]
    assert sig["kind"] == "tabular" and sig["image_shape"] is None
    assert sig["preprocessing"]["in_graph"] is True
    assert sig["preprocessing"]["numeric"] == TABULAR_STATE["numeric"]


def test_regression_and_image_signatures() -> None:
    reg = signature(TABULAR_STATE)
    assert reg["outputs"] == [{"name": "prediction", "datatype": "FP32", "shape": [-1]}]
    assert reg["labels"] is None
    img = signature(IMAGE_STATE, ["a", "b", "c"])
    assert img["inputs"][0]["shape"] == [-1, 1, 4, 4]
    assert img["image_shape"] == [1, 4, 4]
    assert img["pixel_max"] == 16.0  # sklearn:digits grey levels


def test_one_hot_columns_pass_through_the_graph_constants() -> None:
    fill, shift, scale = graph_constants(TABULAR_STATE)
    assert fill is not None
    assert fill.tolist() == [40.0, 25.0, 0.0, 0.0, 0.0]
    assert shift.tolist() == [42.0, 26.0, 0.0, 0.0, 0.0]
    assert scale.tolist() == [10.0, 4.0, 1.0, 1.0, 1.0]
    assert graph_constants(IMAGE_STATE)[0] is None


def test_raw_rows_become_graph_inputs_like_training_encoded_them() -> None:
    numeric = np.array([[30.0, np.nan], [50.0, 20.0], [np.nan, 30.0]])
    cats = {"city": np.array(["Nice", None, "Berlin"], dtype=object)}
    with pytest.warns(
        CanonWarning,
        match=r"column 'city': 1 row\(s\) hold categories the model never saw \('Berlin'\)",
    ):
        x = to_graph_input(TABULAR_STATE, numeric, cats)
    assert x.dtype == np.float32 and x.shape == (3, 5)
    assert np.isnan(x[0, 1]) and np.isnan(x[2, 0])  # the graph imputes, not the client
    assert x[0, 2:].tolist() == [0, 1, 0]
    assert x[1, 2:].tolist() == [0, 0, 1]  # missing → the training mode (Paris)
    assert x[2, 2:].tolist() == [0, 0, 0]  # unseen category → all zeros


def _graph(state: dict, x: np.ndarray) -> np.ndarray:
    fill, shift, scale = graph_constants(state)
    if fill is None:
        return (x - shift.reshape(1, -1, 1, 1)) / scale.reshape(1, -1, 1, 1)
    return (np.where(np.isnan(x), fill, x) - shift) / scale


def test_sample_inputs_through_the_graph_constants_equal_the_training_transform() -> None:
    for state, shape in ((TABULAR_STATE, [5]), (IMAGE_STATE, [1, 4, 4])):
        raw, prepared = sample_inputs(state, shape, 64, seed=3)
        assert raw.shape == (64, *shape) and prepared.shape == (64, *shape)
        np.testing.assert_allclose(_graph(state, raw), prepared, atol=1e-5)
    raw, _ = sample_inputs(TABULAR_STATE, [5], 64, seed=3)
    assert np.isnan(raw).any()  # samples exercise the in-graph imputation
    dropped = {**TABULAR_STATE, "impute": "drop"}
    raw, prepared = sample_inputs(dropped, [5], 16)
    assert not np.isnan(raw).any() and len(prepared) == 16
