"""config.pbtxt: Triton's own protobuf schema parses it, and it agrees with the signature."""

from __future__ import annotations

from pathlib import Path

import pytest

from canonml.errors import PackageError
from canonml.package.reader import open_package
from canonml.package.triton import labels_text, triton_config, triton_datatype, write_triton
from tests.unit.package.checks import check_against_signature, parse_triton_config
from tests.unit.package.fakes import IMAGE_STATE, TABULAR_STATE, signature, write_fake_package

CASES = {
    "tabular-classifier": signature(TABULAR_STATE, ["no", "yes"]),  # one-hot city: width 5
    "image-classifier": signature(IMAGE_STATE, ["a", "b", "c"]),
    "tabular-regressor": signature(TABULAR_STATE),
}


@pytest.mark.parametrize("case", list(CASES))
def test_config_parses_with_tritons_schema_and_matches_the_signature(case: str) -> None:
    sig = CASES[case]
    config = parse_triton_config(
        triton_config({"name": "fake", "version": "v1", "signature": sig}, 16)
    )
    assert config.name == "fake"
    check_against_signature(config, sig, 16)


def test_the_one_hot_width_is_the_tabular_input_width() -> None:
    config = parse_triton_config(
        triton_config({"name": "x", "version": "v", "signature": CASES["tabular-classifier"]})
    )
    assert list(config.input[0].dims) == [5]  # age, bmi and city's three one-hot columns
    assert config.max_batch_size == 64  # the default


def test_labels_file_is_one_label_per_line_in_index_order() -> None:
    assert labels_text(["b", "a", "two\nlines"]) == "b\na\ntwo lines\n"
    assert triton_datatype("FP32") == "TYPE_FP32" and triton_datatype("BYTES") == "TYPE_STRING"


def test_write_triton_replaces_its_own_export_but_no_other_model(tmp_path: Path) -> None:
    pkg = open_package(
        write_fake_package(tmp_path / "pkg", CASES["image-classifier"], {"model.onnx": b"onnx"})
    )
    repo = tmp_path / "repo"
    model = write_triton(pkg, repo, max_batch_size=8)
    assert model == repo / "fake"
    assert (model / "1" / "model.onnx").read_bytes() == b"onnx"
    assert (model / "labels.txt").read_text() == "a\nb\nc\n"
    assert parse_triton_config((model / "config.pbtxt").read_text()).max_batch_size == 8
    assert write_triton(pkg, repo) == model  # again, over its own export
    assert sorted(p.name for p in repo.iterdir()) == ["fake"]  # no temp dirs left
    other = tmp_path / "other"
    (other / "fake").mkdir(parents=True)
    (other / "fake" / "config.pbtxt").write_text('name: "fake"\n')
    with pytest.raises(PackageError, match="not a model canon export wrote"):
        write_triton(pkg, other)
    assert (other / "fake" / "config.pbtxt").read_text() == 'name: "fake"\n'
    with pytest.raises(PackageError, match="--max-batch-size: must be >= 1, got 0"):
        write_triton(pkg, repo, max_batch_size=0)


def test_a_regressor_has_no_labels_file(tmp_path: Path) -> None:
    pkg = open_package(write_fake_package(tmp_path / "pkg", CASES["tabular-regressor"]))
    model = write_triton(pkg, tmp_path / "repo")
    assert sorted(p.name for p in model.iterdir()) == ["1", "config.pbtxt"]
