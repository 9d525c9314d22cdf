"""csv:PATH — numeric and categorical columns, missing cells, and malformed files."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from canonml.data.dataset import Categorical, Dataset
from canonml.data.prepare import _dedupe, fingerprint
from canonml.data.preprocess import apply_preprocess, fit_preprocess
from canonml.data.sources import load_source
from canonml.errors import CanonError, CanonWarning, DataError, SpecError
from canonml.spec.data import DataSpec, PreprocessSpec
from canonml.tasks import get_task

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


def orders_csv(path: Path, rows: int = 40) -> Path:
    """An order id per row (an identifier), a numeric and a categorical column, a target."""
    lines = ["order_id,amount,shop,note,outcome"]
    for i in range(rows):
        note = "" if i % 4 else "late"
        lines.append(f"A{1000 + i},{i % 7 + 0.5},{'north' if i % 3 else 'south'},{note},{i % 2}")
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def test_identifier_column_is_left_out_with_a_warning(tmp_path: Path) -> None:
    path = orders_csv(tmp_path / "orders.csv")
    with pytest.warns(CanonWarning) as caught:
        data = load_source(spec_for(path))
    assert [str(w.message) for w in caught] == [
        "data.source: column 'order_id' looks like an identifier (40 distinct values in 40 "
        "rows) and is left out; list it in data.features to keep it"
    ]
    assert data.feature_names == ["amount"] and list(data.categorical) == ["shop", "note"]
    assert data.columns == [
        {"name": "order_id", "kind": "identifier", "missing": 0},
        {"name": "amount", "kind": "numeric", "missing": 0},
        {"name": "shop", "kind": "categorical", "missing": 0},
        {"name": "note", "kind": "categorical", "missing": 30},
        {"name": "outcome", "kind": "target", "missing": 0},
    ]


def test_features_keep_only_those_columns_identifiers_included(tmp_path: Path) -> None:
    path = orders_csv(tmp_path / "orders.csv")
    data = load_source(spec_for(path, features=["note", "order_id", "amount"]))
    assert data.feature_names == ["amount"] and list(data.categorical) == ["order_id", "note"]
    assert data.categorical["order_id"][3] == "A1003"
    kinds = [(c["name"], c["kind"], c["missing"]) for c in data.columns]
    assert kinds == [
        ("order_id", "categorical", 0),
        ("amount", "numeric", 0),
        ("shop", "dropped", 0),
        ("note", "categorical", 30),
        ("outcome", "target", 0),
    ]


def test_drop_leaves_columns_out_without_a_warning(tmp_path: Path) -> None:
    path = orders_csv(tmp_path / "orders.csv")
    data = load_source(spec_for(path, drop=["order_id", "note"]))
    assert data.feature_names == ["amount"] and list(data.categorical) == ["shop"]
    assert [c["kind"] for c in data.columns] == [
        "dropped",
        "numeric",
        "categorical",
        "dropped",
        "target",
    ]
    assert data.columns[3]["missing"] == 30


def test_rows_without_a_target_are_counted_as_its_missing_cells(patients: Path) -> None:
    path = patients.with_name("gaps.csv")
    path.write_text(PATIENTS.replace("62,M,,31.0,Nice,sick", "62,M,,31.0,Nice,NA"))
    data = load_source(spec_for(path))
    assert len(data) == 5 and data.columns[-1] == {
        "name": "outcome",
        "kind": "target",
        "missing": 1,
    }
    assert data.columns[0] == {"name": "age", "kind": "numeric", "missing": 1}


@pytest.mark.parametrize(
    ("kw", "message"),
    [
        (
            {"features": ["age", "smokr"]},
            "data.features[1]: column 'smokr' is not in csv file '{path}'; did you mean "
            "'smoker'? columns: age, sex, smoker, bmi, city, outcome",
        ),
        ({"drop": ["zzz"]}, "data.drop[0]: column 'zzz' is not in csv file"),
        (
            {"drop": ["sex"], "categorical": ["sex"]},
            "data.categorical[0]: 'sex' is left out by data.drop",
        ),
        (
            {"features": ["age"], "categorical": ["sex"]},
            "data.categorical[0]: 'sex' is left out by data.features",
        ),
        ({"categorical": ["sexx"]}, "data.categorical[0]: 'sexx' is not a feature column"),
    ],
)
def test_unknown_columns_name_the_key(patients: Path, kw: dict[str, object], message: str) -> None:
    with pytest.raises(SpecError) as info:
        load_source(spec_for(patients, **kw))
    assert message.format(path=patients) in str(info.value)


def test_no_feature_left_is_an_error(tmp_path: Path) -> None:
    path = tmp_path / "ids.csv"
    path.write_text("id,y\na,0\nb,1\nc,0\n", encoding="utf-8")
    with pytest.warns(CanonWarning, match="column 'id' looks like an identifier"):
        with pytest.raises(DataError, match="no feature columns left besides the target 'y'"):
            load_source(spec_for(path, target="y"))


def old_one_hot(state: dict, data: Dataset) -> np.ndarray:
    """The encoding before it was vectorised: a comparison per cell and category."""
    parts = []
    if state["numeric"]:
        fill = np.array([c["fill"] for c in state["numeric"]])
        shift = np.array([c["shift"] for c in state["numeric"]])
        scale = np.array([c["scale"] for c in state["numeric"]])
        parts.append((np.where(np.isnan(data.x), fill, data.x) - shift) / scale)
    for c in state["categorical"]:
        cells = [c["fill"] if v is None else v for v in data.categorical[c["name"]]]
        parts.append(np.array([[v == k for k in c["categories"]] for v in cells], dtype=float))
    return np.concatenate(parts, axis=1).astype(np.float32)


def test_vectorised_one_hot_equals_the_cell_by_cell_encoding() -> None:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(300, 3)) * [1, 10, 100]
    x[rng.random(x.shape) < 0.1] = np.nan
    words = np.array(["red", "green", "blue", "grün", "紅", "a\nb"])
    cats = {
        name: Categorical.from_values(
            None if r < 0.15 else str(v)
            for r, v in zip(rng.random(300), words[rng.integers(0, k, 300)], strict=True)
        )
        for name, k in (("colour", 6), ("size", 2))
    }
    data = Dataset(
        x=x, y=np.zeros(300), kind="tabular", feature_names=["a", "b", "c"], categorical=cats
    )
    train = data.take(np.arange(200))
    state = fit_preprocess(train, PreprocessSpec(impute="mean", scale="standard"))
    modes = [
        max(c["categories"], key=list(train.categorical[c["name"]]).count)
        for c in state["categorical"]
    ]
    assert [c["fill"] for c in state["categorical"]] == modes
    unseen = Dataset(
        x=x[:5],
        y=np.zeros(5),
        kind="tabular",
        feature_names=["a", "b", "c"],
        categorical={
            "colour": Categorical.from_values(["mauve", None, "red", "a\nb", "blue"]),
            "size": Categorical.from_values(["red"] * 5),
        },
    )
    for part in (train, data.take(np.arange(200, 300)), unseen):
        x_new, keep = apply_preprocess(state, part)
        assert keep.all() and x_new.dtype == np.float32
        np.testing.assert_array_equal(x_new, old_one_hot(state, part))
    dropped, keep = apply_preprocess({**state, "impute": "drop"}, data)
    complete = ~np.isnan(x).any(axis=1) & np.array(
        [all(c[i] is not None for c in cats.values()) for i in range(300)]
    )
    np.testing.assert_array_equal(keep, complete)
    np.testing.assert_array_equal(dropped, old_one_hot(state, data.take(np.flatnonzero(complete))))


def test_fingerprint_counts_only_the_categories_present(patients: Path) -> None:
    data = get_task("classification").encode_targets(load_source(spec_for(patients)))
    first = data.take(np.arange(3))
    assert fingerprint(first) == fingerprint(
        get_task("classification")
        .encode_targets(load_source(spec_for(patients)))
        .take(np.arange(3))
    )
    narrowed = Dataset(
        **{
            **first.__dict__,
            "categorical": {
                k: Categorical.from_values(list(v)) for k, v in first.categorical.items()
            },
        }
    )
    assert fingerprint(narrowed) == fingerprint(first)  # Nice (row 4 only) is not in rows 1-3
    assert fingerprint(data.take(np.arange(1, 4))) != fingerprint(first)


def test_dedupe_compares_categorical_cells_too(tmp_path: Path) -> None:
    path = tmp_path / "dup.csv"
    path.write_text("a,c,y\n1,x,0\n1,x,0\n1,z,0\n1,x,1\n1,x,0\n2,,0\n2,,0\n", encoding="utf-8")
    raw = get_task("classification").encode_targets(load_source(spec_for(path, target="y")))
    kept, removed = _dedupe(raw)
    assert removed == 3 and list(kept.categorical["c"]) == ["x", "z", "x", None]
    np.testing.assert_array_equal(kept.y, [0, 0, 1, 0])
