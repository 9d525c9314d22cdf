"""canon predict's inputs: CSV rows, .npy arrays, JSON and image files → the graph's input."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from canonml.errors import DataError
from canonml.package.inputs import read_inputs
from canonml.package.reader import open_package


def test_csv_rows_with_raw_categorical_cells_are_encoded(
    tabular_package: Path, tmp_path: Path
) -> None:
    path = tmp_path / "rows.csv"
    path.write_text("city,age,bmi,outcome\nNice,30,NA,yes\n,50,20,no\n", encoding="utf-8")
    x, refs = read_inputs(open_package(tabular_package), [str(path)])
    assert refs == ["rows.csv row 2", "rows.csv row 3"]
    assert x.dtype == np.float32 and x.shape == (2, 5)
    assert x[0, 0] == 30 and np.isnan(x[0, 1])  # "NA" is a missing marker
    assert x[0, 2:].tolist() == [0, 1, 0] and x[1, 2:].tolist() == [0, 0, 1]


def test_csv_rows_may_give_the_graph_columns_directly(
    tabular_package: Path, tmp_path: Path
) -> None:
    path = tmp_path / "graph.csv"
    path.write_text("age,bmi,city=Lyon,city=Nice,city=Paris\n1,2,1,0,0\n", encoding="utf-8")
    x, _ = read_inputs(open_package(tabular_package), [str(path)])
    assert x.tolist() == [[1, 2, 1, 0, 0]]


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("age,bmi,city\nold,20,Nice\n", "row 2 column 'age': 'old' is not a number"),
        ("age,city\n30,Nice\n", "missing columns ['bmi']"),
        ("age,bmi,city\n", "no data rows"),
        ("age,bmi,city\n1,2\n", "row 2: has 2 cells but the header has 3 columns"),
    ],
)
def test_bad_csv_inputs_name_the_place(
    tabular_package: Path, tmp_path: Path, text: str, fragment: str
) -> None:
    path = tmp_path / "bad.csv"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(DataError, match=re.escape(fragment)) as info:
        read_inputs(open_package(tabular_package), [str(path)])
    assert "bad.csv" in str(info.value)


def test_json_rows_as_lists_objects_or_an_oip_request(
    tabular_package: Path, tmp_path: Path
) -> None:
    pkg = open_package(tabular_package)
    forms = {
        "lists.json": [[1, None, 0, 0, 1], [2, 3, 1, 0, 0]],
        "objects.json": {"inputs": [{"age": 1, "bmi": None, "city": "Paris"}]},
        "oip.json": {"inputs": [{"name": "input", "shape": [1, 5], "data": [1, 2, 0, 1, 0]}]},
    }
    for name, body in forms.items():
        (tmp_path / name).write_text(json.dumps(body), encoding="utf-8")
    x, refs = read_inputs(pkg, [str(tmp_path / n) for n in forms])
    assert refs == ["lists.json[0]", "lists.json[1]", "objects.json[0]", "oip.json[0]"]
    assert x.shape == (4, 5) and np.isnan(x[0, 1]) and np.isnan(x[2, 1])
    assert x[2, 2:].tolist() == [0, 0, 1] and x[3].tolist() == [1, 2, 0, 1, 0]


def test_npy_arrays_one_or_a_batch(image_package: Path, tmp_path: Path) -> None:
    pkg = open_package(image_package)
    np.save(tmp_path / "one.npy", np.ones((1, 4, 4)))
    np.save(tmp_path / "grey.npy", np.ones((4, 4), dtype=np.uint8))
    np.save(tmp_path / "batch.npy", np.zeros((3, 1, 4, 4)))
    np.save(tmp_path / "flat.npy", np.zeros((2, 16)))
    names = ["one.npy", "grey.npy", "batch.npy", "flat.npy"]
    x, refs = read_inputs(pkg, [str(tmp_path / n) for n in names])
    assert x.shape == (7, 1, 4, 4) and refs[-1] == "flat.npy[1]"
    np.save(tmp_path / "wrong.npy", np.zeros((2, 5)))
    with pytest.raises(DataError, match=r"shape \[2, 5\] does not fit the model input \[1, 4, 4\]"):
        read_inputs(pkg, [str(tmp_path / "wrong.npy")])


def test_images_are_converted_resized_and_mapped_to_the_training_range(
    image_package: Path, tmp_path: Path
) -> None:
    Image.new("RGB", (8, 8), (255, 255, 255)).save(tmp_path / "white.png")
    x, refs = read_inputs(open_package(image_package), [str(tmp_path / "white.png")])
    assert refs == ["white.png"] and x.shape == (1, 1, 4, 4)
    np.testing.assert_allclose(x, 16.0)  # 255 → pixel_max of sklearn:digits


def test_wrong_kinds_of_input(tabular_package: Path, tmp_path: Path) -> None:
    pkg = open_package(tabular_package)
    Image.new("L", (4, 4)).save(tmp_path / "a.png")
    with pytest.raises(DataError, match="an image, but this model takes table rows"):
        read_inputs(pkg, [str(tmp_path / "a.png")])
    (tmp_path / "a.parquet").write_bytes(b"")
    with pytest.raises(DataError, match="unsupported input type '.parquet'"):
        read_inputs(pkg, [str(tmp_path / "a.parquet")])
    with pytest.raises(DataError, match="input file not found"):
        read_inputs(pkg, [str(tmp_path / "missing.csv")])
