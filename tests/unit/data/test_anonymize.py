"""data.anonymize: drop, pseudonymize, generalize, mask, k-anonymity and ℓ-diversity."""

from __future__ import annotations

import hashlib
import hmac
import json
import re
from typing import Any

import numpy as np
import pytest
from pydantic import ValidationError

from canonml.data.anonymize import anonymize_columns, generalize
from canonml.errors import SpecError
from canonml.spec.anonymize import PSEUDONYM_KEY_ENV, AnonymizeSpec

KEY = "correct horse battery staple"
MISSING = {"", "NA"}


def table() -> dict[str, list[str]]:
    """Eight rows; (sex, age decade) classes: F 30s x4, M 40s x3, F 50s x1."""
    return {
        "patient": ["p1", "p2", "p1", "p3", "p4", "NA", "p5", "p6"],
        "name": ["Ann", "Bo", "Ann", "Cy", "Di", "Ed", "Fay", "Gus"],
        "sex": ["F", "F", "F", "F", "M", "M", "M", "F"],
        "age": ["31", "35", "31", "39.5", "40", "44", "NA", "52"],
        "zip": ["02139", "02141", "02139", "02142", "10001", "10002", "NA", "94105"],
        "note": ["mail a@b.org", "电话13812345678", "", "ok", "ok", "ok", "ok", "ok"],
        "y": ["a", "a", "b", "b", "a", "a", "a", "b"],
    }


def run(spec: dict[str, Any], target: str | None = "y", **kw: Any) -> Any:
    return anonymize_columns(table(), AnonymizeSpec(**spec), target, MISSING, **kw)


@pytest.fixture
def key(monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv(PSEUDONYM_KEY_ENV, KEY)
    return KEY


def test_nothing_asked_changes_nothing() -> None:
    result = run({})
    assert result.columns == table()
    assert result.keep.tolist() == list(range(8))
    assert result.report["rows_out"] == 8 and result.report["smallest_class"] is None


def test_drop() -> None:
    result = run({"drop": ["name", "note"]})
    assert list(result.columns) == ["patient", "sex", "age", "zip", "y"]
    assert result.report["columns_dropped"] == ["name", "note"]


def test_pseudonyms_consistent_and_keyed(key: str, monkeypatch: pytest.MonkeyPatch) -> None:
    first = run({"pseudonymize": ["patient"]})
    ids = first.columns["patient"]
    assert all(re.fullmatch(r"id_[0-9a-f]{16}", v) for i, v in enumerate(ids) if i != 5)
    assert ids[0] == ids[2] and len(set(ids)) == 7  # p1 twice; the missing cell stays "NA"
    assert ids[5] == "NA"
    expected = hmac.new(key.encode("utf-8"), b"p1", hashlib.sha256).hexdigest()[:16]
    assert ids[0] == "id_" + expected
    assert run({"pseudonymize": ["patient"]}).columns == first.columns  # across calls
    monkeypatch.setenv(PSEUDONYM_KEY_ENV, "another key")
    other = run({"pseudonymize": ["patient"]}).columns["patient"]
    assert other[0] != ids[0] and other[5] == "NA"


def test_key_is_never_in_the_output(key: str) -> None:
    result = run({"pseudonymize": ["patient", "name"], "mask": ["note"]})
    text = json.dumps(result.report, ensure_ascii=False) + json.dumps(result.columns)
    assert key not in text and key.encode().hex() not in text
    assert result.report["columns_pseudonymized"] == ["patient", "name"]


@pytest.mark.parametrize("value", [None, ""])
def test_pseudonymize_needs_the_key(monkeypatch: pytest.MonkeyPatch, value: str | None) -> None:
    if value is None:
        monkeypatch.delenv(PSEUDONYM_KEY_ENV, raising=False)
    else:
        monkeypatch.setenv(PSEUDONYM_KEY_ENV, value)
    with pytest.raises(SpecError, match=PSEUDONYM_KEY_ENV) as e:
        run({"pseudonymize": ["patient"]})
    assert e.value.path == "data.anonymize.pseudonymize"
    run({"drop": ["patient"]})  # no key needed without pseudonymize


def test_generalize_numeric_bins_and_prefix() -> None:
    result = run({"generalize": {"age": 10, "zip": 3}})
    assert result.columns["age"] == [
        "[30, 40)", "[30, 40)", "[30, 40)", "[30, 40)", "[40, 50)", "[40, 50)", "NA", "[50, 60)"
    ]  # fmt: skip
    assert result.columns["zip"][:2] == ["021**", "021**"]  # a leading zero: a code, not a number
    assert result.columns["zip"][6] == "NA"
    assert result.report["columns_generalized"] == {
        "age": {"rule": "bins", "width": 10},
        "zip": {"rule": "prefix", "keep": 3},
    }


@pytest.mark.parametrize(
    ("cells", "width", "expected"),
    [
        (["-5", "0", "9.99", "10"], 10, ["[-10, 0)", "[0, 10)", "[0, 10)", "[10, 20)"]),
        (["1e3", " 7 "], 5, ["[1000, 1005)", "[5, 10)"]),
        (["张三丰", "李四", "王"], 1, ["张**", "李*", "王"]),
        (["94105", "10001"], 2, ["[94104, 94106)", "[10000, 10002)"]),
    ],
)
def test_generalize_rules(cells: list[str], width: int, expected: list[str]) -> None:
    assert generalize(cells, width, MISSING, "p")[0] == expected


def test_generalize_categorical_column_as_text() -> None:
    result = run({"generalize": {"age": 1}}, categorical=["age"])
    assert result.columns["age"][:4] == ["3*", "3*", "3*", "3***"]
    assert result.report["columns_generalized"]["age"]["rule"] == "prefix"


def test_generalize_numeric_column_with_text_cell() -> None:
    cells = ["31", "35", "abc", "40"]
    with pytest.raises(SpecError, match=r"row 3 holds 'abc', not a number") as e:
        generalize(cells, 10, MISSING, "data.anonymize.generalize.age")
    assert e.value.path == "data.anonymize.generalize.age"


def test_k_anonymity_suppresses_small_classes() -> None:
    spec = {"generalize": {"age": 10}, "k": 3, "quasi_identifiers": ["sex", "age"]}
    result = run(spec)
    # Classes: (F, 30s) rows 0-3; (M, 40s) rows 4, 5; (M, NA) row 6; (F, 50s) row 7.
    assert result.keep.tolist() == [0, 1, 2, 3]
    assert result.columns["name"] == ["Ann", "Bo", "Ann", "Cy"]
    assert all(len(c) == 4 for c in result.columns.values())
    r = result.report
    assert (r["rows_in"], r["rows_out"], r["rows_suppressed"]) == (8, 4, 4)
    assert (r["classes_before"], r["classes"]) == (4, 1)
    assert (r["smallest_class_before"], r["smallest_class"]) == (1, 4)
    assert r["l_diversity"] == 2  # y: a, a, b, b


def test_l_diversity_is_the_least_diverse_class() -> None:
    cols = {
        "sex": ["F"] * 4 + ["M"] * 3,
        "y": ["a", "b", "c", "a", "a", "a", "NA"],  # F: 3 values; M: 1 (the NA not counted)
    }
    spec = AnonymizeSpec(k=2, quasi_identifiers=["sex"])
    result = anonymize_columns(cols, spec, "y", MISSING)
    assert result.report["l_diversity"] == 1 and result.report["smallest_class"] == 3
    assert anonymize_columns(cols, spec, None, MISSING).report["l_diversity"] is None


def test_deterministic_and_json(key: str) -> None:
    spec = {
        "pseudonymize": ["patient"],
        "generalize": {"zip": 2},
        "mask": ["note"],
        "k": 2,
        "quasi_identifiers": ["zip"],
    }
    a, b = run(spec), run(spec)
    assert a.columns == b.columns and np.array_equal(a.keep, b.keep)
    assert json.dumps(a.report, sort_keys=True) == json.dumps(b.report, sort_keys=True)
    assert a.report["masks"] == {
        "note": {"email": 1, "iban": 0, "cn_id": 0, "credit_card": 0, "phone": 1}
    }
    assert a.columns["note"][:2] == ["mail [EMAIL]", "电话[PHONE]"]
    assert a.report["smallest_class"] >= 2


@pytest.mark.parametrize(
    ("spec", "path", "fragment"),
    [
        ({"generalize": {"zpi": 3}}, "data.anonymize.generalize.zpi", "did you mean 'zip'?"),
        ({"drop": ["nmae"]}, "data.anonymize.drop", "no column 'nmae'; did you mean 'name'?"),
        ({"mask": ["notes"]}, "data.anonymize.mask", "did you mean 'note'?"),
        ({"k": 9, "quasi_identifiers": ["sex"]}, "data.anonymize.k", "at most the number of rows"),
        ({"k": 5, "quasi_identifiers": ["zip"]}, "data.anonymize.k", "leaves no rows"),
        ({"drop": ["y"]}, "data.anonymize.drop", "target column 'y'"),
        ({"k": 2, "quasi_identifiers": ["y"]}, "data.anonymize.quasi_identifiers", "target"),
    ],
)
def test_errors(spec: dict[str, Any], path: str, fragment: str) -> None:
    with pytest.raises(SpecError) as e:
        run(spec)
    assert e.value.path == path and fragment in str(e.value)


@pytest.mark.parametrize(
    ("spec", "fragment"),
    [
        ({"k": 3}, "k and quasi_identifiers go together"),
        ({"quasi_identifiers": ["age"]}, "k and quasi_identifiers go together"),
        ({"k": 1, "quasi_identifiers": ["age"]}, "greater than or equal to 2"),
        ({"drop": ["age"], "mask": ["age"]}, "'age' is in both drop and mask"),
        ({"drop": ["age"], "k": 2, "quasi_identifiers": ["age"]}, "both drop and quasi"),
        ({"pseudonymize": ["id"], "generalize": {"id": 2}}, "both pseudonymize and generalize"),
        ({"drop": [" "]}, "must not be empty"),
        ({"mask": ["a", "a"]}, "mask lists 'a' twice"),
        ({"generalize": {"age": 0}}, "greater than or equal to 1"),
        ({"mask_kinds": ["ssn"]}, "mask_kinds"),
        ({"dropp": ["a"]}, "Extra inputs"),
    ],
)
def test_spec_validation(spec: dict[str, Any], fragment: str) -> None:
    with pytest.raises(ValidationError, match=re.escape(fragment)):
        AnonymizeSpec(**spec)


def test_spec_allows_generalized_quasi_identifiers() -> None:
    spec = AnonymizeSpec(generalize={"age": 10}, k=5, quasi_identifiers=["age", "zip"])
    assert spec.columns == ["age", "zip"]
    assert spec.mask_kinds == ["email", "iban", "cn_id", "credit_card", "phone"]
