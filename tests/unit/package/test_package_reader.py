"""open_package: directories and zips, the manifest's checks, and hash mismatches."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import pytest

from canonml.errors import CanonError
from canonml.package.reader import PackageError, hash_problems, open_package
from tests.unit.package.fakes import TABULAR_STATE, signature, write_fake_package


def test_a_directory_opens_with_its_manifest(tabular_package: Path) -> None:
    pkg = open_package(tabular_package)
    assert pkg.name == "fake" and pkg.task == "classification"
    assert pkg.signature["labels"] == ["no", "yes"]
    assert pkg.onnx_path == tabular_package / "model.onnx"
    assert pkg.onnx_bytes == b"x"
    assert pkg.names() == ["canon.json", "model.onnx", "spec.yaml"]
    assert issubclass(PackageError, CanonError)


def test_a_zip_is_read_in_memory_at_the_root_or_in_one_folder(
    tabular_package: Path, tmp_path: Path
) -> None:
    for prefix in ("", "package/"):
        path = tmp_path / f"pkg{len(prefix)}.zip"
        with zipfile.ZipFile(path, "w") as zf:
            for f in tabular_package.iterdir():
                zf.write(f, prefix + f.name)
        pkg = open_package(path)
        assert pkg.onnx_path is None and pkg.onnx_bytes == b"x"
        assert pkg.read("spec.yaml") == b"name: fake\n"


@pytest.mark.parametrize(
    ("change", "fragment"),
    [
        (lambda d: (d / "model.onnx").write_bytes(b"y"), "model.onnx: sha256 mismatch"),
        (lambda d: (d / "spec.yaml").unlink(), "spec.yaml: missing"),
        (lambda d: (d / "extra.bin").write_bytes(b"z"), "extra.bin: not listed in canon.json"),
    ],
)
def test_a_changed_file_is_named(tabular_package: Path, change: object, fragment: str) -> None:
    change(tabular_package)  # type: ignore[operator]
    with pytest.raises(PackageError, match=fragment):
        open_package(tabular_package)
    pkg = open_package(tabular_package, verify_hashes=False)
    assert [p for p in hash_problems(pkg) if fragment in p]


@pytest.mark.parametrize(
    ("manifest", "fragment"),
    [
        ("{not json", "canon.json: not valid JSON"),
        ("[1, 2]", "canon.json: not a JSON object"),
        (json.dumps({"format": "other"}), "not a canonml package manifest"),
        (json.dumps({"format": "canonml-package", "format_version": 9}), "upgrade canonml"),
        (json.dumps({"format": "canonml-package", "format_version": 1}), "missing keys"),
    ],
)
def test_a_bad_manifest_is_one_package_error(
    tabular_package: Path, manifest: str, fragment: str
) -> None:
    (tabular_package / "canon.json").write_text(manifest, encoding="utf-8")
    with pytest.raises(PackageError, match=fragment):
        open_package(tabular_package)


def test_missing_and_unreadable_packages(tmp_path: Path) -> None:
    with pytest.raises(PackageError, match="no such package"):
        open_package(tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    with pytest.raises(PackageError, match="canon.json: missing"):
        open_package(tmp_path / "empty")
    (tmp_path / "junk.zip").write_bytes(b"not a zip")
    with pytest.raises(PackageError, match="readable zip"):
        open_package(tmp_path / "junk.zip")


def test_a_manifest_may_not_point_outside_the_package(tmp_path: Path) -> None:
    root = write_fake_package(tmp_path / "p", signature(TABULAR_STATE, ["a", "b"]))
    manifest = json.loads((root / "canon.json").read_text())
    manifest["files"]["../secret"] = "0" * 64
    (root / "canon.json").write_text(json.dumps(manifest))
    with pytest.raises(PackageError, match="bad file name"):
        open_package(root)
