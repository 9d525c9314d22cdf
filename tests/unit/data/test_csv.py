"""csv:PATH — numeric and categorical columns, missing cells, and malformed files."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from canonml.data.preprocess import apply_preprocess, fit_preprocess
from canonml.data.sources import load_source
from canonml.errors import CanonError, DataError, SpecError
from canonml.spec.data import DataSpec, PreprocessSpec

PATIENTS = """age,sex,smoker,bmi,city,outcome
34,F,no,22.5,Paris,healthy
51,M,yes,NA,Lyon,sick
,F,no,27.1,Paris,healthy
62,M,,31.0,Nice,sick
45,F,yes,24.0,,healthy
29,M,no,N/A,Lyon,healthy
"""


def spec_for(path: Path, **kw: object) -> DataSpec:
    return DataSpec(source=f"csv:{path}", target=kw.pop("target", "outcome"), **kw)  # type: ignore[arg-type]


@pytest.fixture
def patients(tmp_path: Path) -> Path:
    path = tmp_path / "patients.csv"
    path.write_text(PATIENTS, encoding="utf-8")
    return path


def test_columns_are_typed_and_missing_cells_read_as_missing(patients: Path) -> None:
    data = load_source(spec_for(patients))
    assert data.feature_names == ["age", "bmi"]
    assert list(data.categorical) == ["sex", "smoker", "city"]
    assert np.isnan(data.x[2, 0]) and np.isnan(data.x[1, 1]) and np.isnan(data.x[5, 1])
    assert data.categorical["smoker"][3] is None and data.categorical["city"][4] is None
    assert list(data.y) == ["healthy", "sick", "healthy", "sick", "healthy", "healthy"]


def test_impute_and_one_hot_fitted_on_train_are_kept(patients: Path) -> None:
    data = load_source(spec_for(patients))
    state = fit_preprocess(data, PreprocessSpec(impute="median", scale="none"))
    age = state["numeric"][0]
    assert age["name"] == "age" and age["fill"] == 45.0  # median of 34, 51, 62, 45, 29
    smoker = next(c for c in state["categorical"] if c["name"] == "smoker")
    assert smoker["categories"] == ["no", "yes"] and smoker["fill"] == "no"
    x, keep = apply_preprocess(state, data)
    assert keep.all() and x.dtype == np.float32
    assert state["output_features"] == [
        "age",
        "bmi",
        "sex=F",
        "sex=M",
        "smoker=no",
        "smoker=yes",
        "city=Lyon",
        "city=Nice",
        "city=Paris",
    ]
    assert x[2, 0] == 45.0  # imputed age
    np.testing.assert_array_equal(x[3, 4:6], [1.0, 0.0])  # missing smoker → mode 'no'
    # missing city → the mode; Lyon and Paris tie at 2, the first in sorted order wins
    np.testing.assert_array_equal(x[4, 6:9], [1.0, 0.0, 0.0])


def test_unknown_category_at_inference_is_all_zeros(patients: Path, tmp_path: Path) -> None:
    state = fit_preprocess(load_source(spec_for(patients)), PreprocessSpec(scale="none"))
    other = tmp_path / "other.csv"
    other.write_text("age,sex,smoker,bmi,city,outcome\n40,F,no,20,Berlin,healthy\n")
    x, _ = apply_preprocess(
        state, load_source(spec_for(other, categorical=["sex", "smoker", "city"]))
    )
    np.testing.assert_array_equal(x[0, 6:9], [0.0, 0.0, 0.0])


def test_standard_scaling_uses_train_statistics(patients: Path) -> None:
    data = load_source(spec_for(patients))
    state = fit_preprocess(data, PreprocessSpec(impute="mean", scale="standard"))
    x, _ = apply_preprocess(state, data)
    np.testing.assert_allclose(x[:, :2].mean(axis=0), 0.0, atol=1e-6)


def test_drop_removes_incomplete_rows(patients: Path) -> None:
    data = load_source(spec_for(patients))
    state = fit_preprocess(data, PreprocessSpec(impute="drop", scale="none"))
    x, keep = apply_preprocess(state, data)
    assert keep.tolist() == [True, False, False, False, False, False]
    assert x.shape[0] == 1


def test_declared_categorical_overrides_detection(patients: Path) -> None:
    data = load_source(spec_for(patients, categorical=["age", "sex"]))
    assert data.feature_names == ["bmi"]
    assert list(data.categorical) == ["age", "sex", "smoker", "city"]


BAD_FILES = [
    ("age,outcome\n34,a\nabc,b\n", "row 3: 'abc' is not a number in numeric column 'age'"),
    ("age,outcome\n34,a\n35\n", "row 3: has 1 cells but the header has 2 columns"),
    ("age,outcome\n", "empty data set"),
    ("", "empty file"),
    ("age,age,outcome\n1,2,a\n", "row 1: header has an empty or repeated column name"),
    ("age,outcome\n1,a\ninf,b\n", "'inf' is not a finite number"),
]


@pytest.mark.parametrize(("text", "message"), BAD_FILES)
def test_malformed_files_name_file_row_and_column(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "bad.csv"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(DataError) as info:
        load_source(spec_for(path))
    assert message in str(info.value) and "bad.csv" in str(info.value)


def test_most_values_numeric_means_numeric_column(tmp_path: Path) -> None:
    path = tmp_path / "x.csv"
    path.write_text("age,outcome\n1,a\n2,b\n3,a\nold,b\n", encoding="utf-8")
    with pytest.raises(DataError, match="row 5: 'old' is not a number"):
        load_source(spec_for(path))


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="file '.*nope.csv': csv file not found"):
        load_source(spec_for(tmp_path / "nope.csv"))


def test_missing_target_column_suggests(patients: Path) -> None:
    with pytest.raises(
        SpecError, match="data.target: column 'outcom' is not in csv file .*did you mean 'outcome'"
    ):
        load_source(spec_for(patients, target="outcom"))


def test_semicolon_files_are_sniffed(tmp_path: Path) -> None:
    path = tmp_path / "semi.csv"
    path.write_text("a;b;outcome\n1,5;2;x\n3;4;y\n".replace("1,5", "1.5"), encoding="utf-8")
    data = load_source(spec_for(path))
    np.testing.assert_array_equal(data.x, [[1.5, 2.0], [3.0, 4.0]])


def test_errors_are_canon_errors(tmp_path: Path) -> None:
    assert issubclass(DataError, CanonError)
