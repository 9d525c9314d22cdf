"""canon export's dispatch: formats, sources, default paths, and a package copied as is."""

from __future__ import annotations

from pathlib import Path

import pytest

from canonml.errors import CanonError, PackageError
from canonml.package.convert import check_format, export_as
from canonml.package.reader import open_package
from tests.unit.package.fakes import TABULAR_STATE, signature, write_fake_package


@pytest.mark.parametrize(
    ("fmt", "message"),
    [
        (
            "hff",
            "--format: unknown format 'hff'; did you mean 'hf'? known: hf, package, triton, zip",
        ),
        ("Triton", "--format: unknown format 'Triton'; did you mean 'triton'?"),
        ("onnx", "--format: unknown format 'onnx'; known: hf, package, triton, zip"),
    ],
)
def test_an_unknown_format_names_the_option(fmt: str, message: str) -> None:
    with pytest.raises(CanonError) as info:
        check_format(fmt)
    assert str(info.value).startswith(message)


def test_a_package_is_copied_to_a_zip_and_back(tmp_path: Path) -> None:
    src = write_fake_package(tmp_path / "pkg", signature(TABULAR_STATE, ["no", "yes"]))
    zipped = export_as(src, "zip")  # the default: beside the package
    assert zipped == tmp_path / "package.zip"
    back = export_as(zipped, "package", tmp_path / "copy")
    original = open_package(src)
    assert {n: open_package(back).read(n) for n in original.names()} == {
        n: original.read(n) for n in original.names()
    }
    with pytest.raises(PackageError, match="is the package being exported; give -o PATH"):
        export_as(back, "package", back)


def test_max_batch_size_is_a_triton_option_only(tmp_path: Path) -> None:
    src = write_fake_package(tmp_path / "pkg", signature(TABULAR_STATE, ["no", "yes"]))
    with pytest.raises(CanonError, match="--max-batch-size: applies to --format triton only"):
        export_as(src, "hf", tmp_path / "hf", max_batch_size=8)
    assert export_as(src, "triton") == tmp_path / "triton" / "fake"
    with pytest.raises(PackageError, match="no such run directory or package"):
        export_as(tmp_path / "missing", "triton")
