"""``data.features`` / ``data.drop``: bad values exit 2 naming the key; kinds reach the run."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from canonml.spec import json_schema
from tests.conftest import tiny_spec

TABLE = "age,city,order_id,y\n" + "".join(
    f"{20 + i},{'Paris' if i % 3 else 'Lyon'},X{i:03d},{i % 2}\n" for i in range(30)
)


def csv_data(tmp_path: Path, **data: Any) -> dict[str, Any]:
    path = tmp_path / "t.csv"
    path.write_text(TABLE, encoding="utf-8")
    return {"source": f"csv:{path}", "target": "y", **data}


BAD_SPECS = [
    ({"features": ["age", "age"]}, "data.features: lists 'age' twice"),
    ({"features": []}, "data.features: List should have at least 1 item"),
    ({"drop": ["y"]}, "data.drop: lists the target column 'y'"),
    ({"features": ["y"]}, "data.features: lists the target column 'y'"),
    (
        {"features": ["age", "city"], "drop": ["city"]},
        "data.drop: 'city' is in both data.features and data.drop; keep one",
    ),
    (
        {"source": "sklearn:iris", "target": None, "drop": ["x"]},
        "data.drop: names csv columns; remove it for a 'sklearn:iris' source",
    ),
]


@pytest.mark.parametrize(("data", "message"), BAD_SPECS)
def test_bad_column_keys_exit_2_naming_the_key(
    tmp_path: Path, cli: Any, write_spec: Any, data: dict[str, Any], message: str
) -> None:
    result = cli("validate", str(write_spec(tiny_spec(data=csv_data(tmp_path, **data)))))
    assert result.code == 2 and message in result.stderr
    assert "Traceback" not in result.stderr


BAD_COLUMNS = [
    (
        {"features": ["age", "ctiy"]},
        "data.features[1]: column 'ctiy' is not in csv file '{path}'; did you mean 'city'? "
        "columns: age, city, order_id, y",
    ),
    ({"drop": ["zip"]}, "data.drop[0]: column 'zip' is not in csv file '{path}'; columns: "),
]


@pytest.mark.parametrize(("data", "message"), BAD_COLUMNS)
def test_columns_not_in_the_header_exit_2_naming_the_key(
    tmp_path: Path, cli: Any, write_spec: Any, data: dict[str, Any], message: str
) -> None:
    result = cli("run", str(write_spec(tiny_spec(data=csv_data(tmp_path, **data)))))
    assert result.code == 2 and "Traceback" not in result.stderr
    assert message.format(path=tmp_path / "t.csv") in result.stderr
    assert not (tmp_path / "runs").exists()


def test_a_run_warns_about_an_identifier_and_lists_column_kinds(
    tmp_path: Path, cli: Any, write_spec: Any
) -> None:
    spec = write_spec(tiny_spec(data=csv_data(tmp_path), train={"epochs": 1}))
    result = cli("run", str(spec), "--out", str(tmp_path / "runs"))
    assert result.code == 0, result.stderr
    warned = [line for line in result.stderr.splitlines() if line.startswith("warning:")]
    assert warned == [
        "warning: data.source: column 'order_id' looks like an identifier (30 distinct values "
        "in 30 rows) and is left out; list it in data.features to keep it"
    ]
    run = next((tmp_path / "runs").glob("tiny/*"))
    described = json.loads((run / "data.json").read_text(encoding="utf-8"))
    assert described["columns"] == [
        {"kind": "numeric", "missing": 0, "name": "age"},
        {"kind": "categorical", "missing": 0, "name": "city"},
        {"kind": "identifier", "missing": 0, "name": "order_id"},
        {"kind": "target", "missing": 0, "name": "y"},
    ]
    assert described["feature_names"] == ["age", "city=Lyon", "city=Paris"]
    page = (run / "report.html").read_text(encoding="utf-8")
    rows = re.findall(r"<tr><td>([^<]+)</td><td>([^<]+)</td><td>(\d+)</td></tr>", page)
    assert ("order_id", "identifier", "0") in rows and ("city", "categorical", "0") in rows


def test_the_schema_describes_the_column_keys() -> None:
    data = json_schema()["$defs"]["DataSpec"]["properties"]
    assert "and no others" in data["features"]["description"]
    assert "never to use" in data["drop"]["description"]
