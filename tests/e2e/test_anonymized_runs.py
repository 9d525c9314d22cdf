"""``data.anonymize`` end to end: identifiers planted in a table and in free text never reach
the run directory, the package or MLflow's store; ``canon anonymize`` writes the table it
trains on; the spec's mistakes are one line with exit code 2."""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import run_cli

KEY = "planted-secret-key-7Qx"  # the pseudonym key: it must not be written anywhere
CARD = "4111 1111 1111 1111"  # Luhn-valid


def cn_id(body: str) -> str:
    """``body`` (17 digits) with its ISO 7064 MOD 11-2 check character."""
    weights = [7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2]
    return body + "10X98765432"[sum(int(d) * w for d, w in zip(body, weights, strict=True)) % 11]


def patients(path: Path, rows: int = 120) -> dict[str, list[str]]:
    """A patients table whose identifying cells are all distinct and greppable; returns them."""
    planted: dict[str, list[str]] = {"name": [], "phone": [], "patient_id": [], "note": []}
    with path.open("w", encoding="utf-8", newline="") as f:
        out = csv.writer(f)
        out.writerow(["name", "phone", "patient_id", "age", "zip", "sex", "note", "outcome"])
        for i in range(rows):
            name, phone, pid = f"Plantname{i:03d}", f"139{i:08d}", f"PLANTPID{i:05d}"
            mail, ident = f"planted{i:03d}@example.org", cn_id(f"110105199{i % 10}0307{i:03d}")
            note = f"联系{mail}或电话+86 138{i:08d}，身份证{ident}，卡{CARD}"
            planted["name"].append(name)
            planted["phone"].append(phone)
            planted["patient_id"].append(pid)
            planted["note"] += [mail, f"138{i:08d}", ident]
            age, zip_code, sex = 20 + (i * 7) % 50, f"021{i % 4}{i % 7}", "FM"[i % 2]
            outcome = "sick" if (age > 45) != (i % 9 == 0) else "well"
            out.writerow([name, phone, pid, age, zip_code, sex, note, outcome])
    return planted


def anonymize_spec(source: Path, **anonymize: Any) -> dict[str, Any]:
    section = {
        "drop": ["name", "phone"],
        "pseudonymize": ["patient_id"],
        "generalize": {"age": 10, "zip": 3},
        "k": 3,
        "quasi_identifiers": ["age", "zip", "sex"],
        "mask": ["note"],
    } | anonymize
    return {
        "name": "patients",
        "task": "classification",
        "data": {
            "source": f"csv:{source}",
            "target": "outcome",
            "categorical": ["patient_id", "note"],
            "split": {"val": 0.1, "test": 0.2},
            "anonymize": section,
        },
        "model": {"arch": "mlp", "hidden": [8]},
        "train": {"epochs": 2, "batch_size": 32},
        "evaluate": {"ci": 0},
        "track": {"uri": "sqlite:///mlflow.db"},
    }


@pytest.fixture
def keyed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CANON_PSEUDONYM_KEY", KEY)


def _write(spec: dict[str, Any], path: Path) -> Path:
    path.write_text(json.dumps(spec, ensure_ascii=False), encoding="utf-8")
    return path


@pytest.mark.slow
def test_planted_identifiers_reach_no_file_the_run_wrote(tmp_path: Path, keyed: None) -> None:
    source = tmp_path / "data" / "patients.csv"
    source.parent.mkdir()
    planted = patients(source)
    spec = _write(anonymize_spec(source), tmp_path / "data" / "spec.yaml")
    result = run_cli("run", str(spec), "--out", str(tmp_path / "runs"), cwd=tmp_path)
    assert result.code == 0, result.stderr
    written = [p for p in tmp_path.rglob("*") if p.is_file() and p.parent != source.parent]
    assert any(p.name == "mlflow.db" for p in written)
    assert any(p.name == "model.onnx" for p in written) and len(written) > 20
    needles = [v for values in planted.values() for v in values] + [KEY, CARD, "Plantname"]
    for path in written:
        blob = path.read_bytes()
        found = [v for v in needles if v.encode("utf-8") in blob]
        assert not found, f"{path.relative_to(tmp_path)} holds {found[:3]}"
    run_dir = next((tmp_path / "runs" / "patients").iterdir())
    report = json.loads((run_dir / "data.json").read_text("utf-8"))["anonymize"]
    assert report["rows_in"] == 120 and report["smallest_class"] >= 3
    assert report["rows_out"] == 120 - report["rows_suppressed"]
    assert report["masks"]["note"] == {
        "email": 120,
        "iban": 0,
        "cn_id": 120,
        "credit_card": 120,
        "phone": 120,
    }
    page = (run_dir / "report.html").read_text("utf-8")
    assert "Anonymisation" in page and "ℓ-diversity" in page


def test_canon_anonymize_writes_the_table_with_consistent_pseudonyms(
    tmp_path: Path, keyed: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    source = tmp_path / "patients.csv"
    patients(source)
    spec = _write(anonymize_spec(source), tmp_path / "spec.yaml")
    tables = []
    for name in ("a.csv", "b.csv"):
        result = run_cli("anonymize", str(spec), "-o", str(tmp_path / name))
        assert result.code == 0, result.stderr
        assert "rows" in result.stdout and "identifiers masked" in result.stdout
        with (tmp_path / name).open(encoding="utf-8", newline="") as f:
            tables.append(list(csv.DictReader(f)))
    rows = tables[0]
    assert tables[0] == tables[1]  # the same key: the same pseudonyms, run after run
    assert set(rows[0]) == {"patient_id", "age", "zip", "sex", "note", "outcome"}
    assert all(r["patient_id"].startswith("id_") and len(r["patient_id"]) == 19 for r in rows)
    assert {r["zip"] for r in rows} == {"021**"} and rows[0]["age"].startswith("[")
    assert "[EMAIL]" in rows[0]["note"] and "[CN_ID]" in rows[0]["note"]
    assert "[PHONE]" in rows[0]["note"] and "[CARD]" in rows[0]["note"]
    monkeypatch.setenv("CANON_PSEUDONYM_KEY", "another key")
    other = run_cli("anonymize", str(spec), "-o", str(tmp_path / "c.csv"))
    assert other.code == 0, other.stderr
    with (tmp_path / "c.csv").open(encoding="utf-8", newline="") as f:
        changed = list(csv.DictReader(f))
    assert changed[0]["patient_id"] != rows[0]["patient_id"]


def test_a_text_source_masks_its_text_column(tmp_path: Path) -> None:
    source = tmp_path / "reviews.csv"
    source.write_text(
        "text,label\n请联系me@example.com，很好,pos\n电话13812345678，太差了,neg\n",
        encoding="utf-8",
    )
    spec = {"data": {"source": f"text:{source}", "anonymize": {"mask": ["text"]}}}
    from canonml.data.anonymize import write_anonymized
    from canonml.spec.data import DataSpec

    report = write_anonymized(DataSpec.model_validate(spec["data"]), tmp_path / "out.csv")
    text = (tmp_path / "out.csv").read_text("utf-8")
    assert "me@example.com" not in text and "13812345678" not in text
    assert "[EMAIL]" in text and "[PHONE]" in text and "pos" in text
    assert report["masks"]["text"]["email"] == 1 and report["masks"]["text"]["phone"] == 1


@pytest.mark.parametrize(
    ("edit", "key_set", "where"),
    [
        ({}, False, "data.anonymize.pseudonymize"),
        ({"k": 500}, True, "data.anonymize.k"),
        ({"generalize": {"agee": 10}}, True, "data.anonymize.generalize.agee"),
        ({"k": 3, "quasi_identifiers": []}, True, "data.anonymize"),
    ],
)
def test_a_bad_anonymize_spec_is_one_line(
    edit: dict[str, Any],
    key_set: bool,
    where: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    if key_set:
        monkeypatch.setenv("CANON_PSEUDONYM_KEY", KEY)
    else:
        monkeypatch.delenv("CANON_PSEUDONYM_KEY", raising=False)
    source = tmp_path / "patients.csv"
    patients(source, rows=30)
    spec = _write(anonymize_spec(source, **edit), tmp_path / "spec.yaml")
    result = run_cli("run", str(spec), "--out", str(tmp_path / "runs"), cwd=tmp_path)
    assert result.code == 2 and where in result.stderr, result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 and "Traceback" not in result.stderr
    assert not (tmp_path / "runs").exists()


def test_predict_on_raw_rows_applies_the_rules_training_applied(
    tmp_path: Path, keyed: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    import canonml
    from canonml.data.anonymize import write_anonymized
    from canonml.errors import DataError
    from canonml.package import predict_inputs
    from canonml.spec import load_spec

    source = tmp_path / "patients.csv"
    patients(source, rows=60)
    spec = anonymize_spec(source, k=None, quasi_identifiers=[])
    spec["track"] = False
    result = canonml.run(_write(spec, tmp_path / "spec.yaml"), tmp_path / "runs")
    shared = tmp_path / "anonymized.csv"  # what the model was trained on, row for row
    write_anonymized(load_spec(tmp_path / "spec.yaml").data, shared)
    pkg = result.run_dir / "package"
    with pytest.warns(canonml.CanonWarning, match="never saw"):  # test rows' own patient ids
        raw = predict_inputs(pkg, [str(source)])
    with pytest.warns(canonml.CanonWarning, match="never saw"):
        seen = predict_inputs(pkg, [str(shared)])
    assert [r["probabilities"] for r in raw] == [r["probabilities"] for r in seen]
    monkeypatch.delenv("CANON_PSEUDONYM_KEY")  # a raw patient id needs the key to match
    with pytest.raises(DataError, match="CANON_PSEUDONYM_KEY"):
        predict_inputs(pkg, [str(source)])
