"""``canon export``: a run directory or a package → a package, a zip, Triton or Hugging Face.

| format    | writes                                   | default path (beside the run's package) |
| --------- | ---------------------------------------- | --------------------------------------- |
| `package` | the package directory                    | `RUN_DIR/package`                       |
| `zip`     | the package as one `.zip`                | `RUN_DIR/package.zip`                   |
| `triton`  | a Triton model repository `REPO/<name>/` | `RUN_DIR/triton`                        |
| `hf`      | a Hugging Face model folder              | `RUN_DIR/hf`                            |

A run directory without a package gets one first; a package (directory or zip) is opened
with its hashes checked, so a changed file never reaches an export.
"""

from __future__ import annotations

import os
from pathlib import Path

from canonml.errors import CanonError, PackageError
from canonml.package.reader import MANIFEST, Package, open_package
from canonml.package.writer import RUN_FILES, check_target, write_files, write_package
from canonml.registry import hint_and_choices

FORMATS = ("hf", "package", "triton", "zip")
DEFAULT_NAMES = {"package": "package", "zip": "package.zip", "triton": "triton", "hf": "hf"}


def export_as(
    source: str | os.PathLike[str],
    fmt: str = "package",
    out: str | os.PathLike[str] | None = None,
    *,
    max_batch_size: int | None = None,
) -> Path:
    """Export ``source`` (a run directory or a package) as ``fmt`` to ``out``; return the path.

    For ``triton`` the path is the model's directory inside the repository ``out``.
    """
    fmt = check_format(fmt)
    if max_batch_size is not None and fmt != "triton":
        raise CanonError(f"--max-batch-size: applies to --format triton only, not '{fmt}'")
    path = Path(source)
    run = is_run_dir(path)
    target = Path(out) if out is not None else (path if run else path.parent) / DEFAULT_NAMES[fmt]
    if run and fmt in ("package", "zip"):
        return write_package(path, target, as_zip=fmt == "zip")
    pkg = source_package(path)
    if fmt in ("package", "zip"):
        return _copy(pkg, target, fmt == "zip")
    if fmt == "triton":
        from canonml.package.triton import MAX_BATCH_SIZE, write_triton

        return write_triton(
            pkg, target, MAX_BATCH_SIZE if max_batch_size is None else max_batch_size
        )
    from canonml.package.hf import write_hf

    return write_hf(pkg, target)


def check_format(fmt: str) -> str:
    """``fmt`` if it is a known format; else a ``CanonError`` naming ``--format``."""
    if fmt not in FORMATS:
        raise CanonError(f"--format: unknown format '{fmt}'{hint_and_choices(fmt, list(FORMATS))}")
    return fmt


def is_run_dir(path: Path) -> bool:
    """Whether ``path`` is a run directory (it holds the files a package is made from)."""
    return path.is_dir() and not (path / MANIFEST).is_file() and (path / RUN_FILES[0]).is_file()


def source_package(path: Path) -> Package:
    """The package at ``path``, or the package of the run ``path`` (written when missing)."""
    if is_run_dir(path):
        if not (path / "package" / MANIFEST).is_file():
            write_package(path)
        path = path / "package"
    elif not path.exists():
        raise PackageError(f"{path}: no such run directory or package")
    return open_package(path)


def _copy(pkg: Package, target: Path, as_zip: bool) -> Path:
    """The files of ``pkg``, ``canon.json`` first, as a directory or a zip at ``target``."""
    if target.resolve() == pkg.path.resolve():
        raise PackageError(f"{target}: is the package being exported; give -o PATH")
    check_target(target, as_zip)
    names = [MANIFEST, *(n for n in pkg.names() if n != MANIFEST)]
    write_files(target, {name: pkg.read(name) for name in names}, as_zip)
    return target
