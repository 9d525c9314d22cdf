"""Open a model package (directory or ``.zip``) and check it against its manifest — no torch.

This module, like ``canonml.serve``, must work where only numpy and onnxruntime are
installed: it never imports torch.
"""

from __future__ import annotations

import json
import os
import zipfile
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from canonml.errors import PackageError
from canonml.io import sha256_bytes, sha256_file

if TYPE_CHECKING:
    import onnxruntime

MANIFEST = "canon.json"
FORMAT = "canonml-package"
FORMAT_VERSION = 1
REQUIRED = ("format", "format_version", "name", "version", "task", "signature", "files")
# A Hugging Face model folder (``canon export --format hf``) holds these files under the
# names the Hub reads; the manifest keeps the package's names and the same hashes.
HUB_NAMES = {"MODEL_CARD.md": "README.md", "weights.safetensors": "model.safetensors"}


@dataclass
class Package:
    """An opened package: its manifest and the bytes of its files.

    A directory is read from disk on demand; a zip is read into memory once (packages are
    small, and nothing is ever extracted, so member names cannot escape anywhere).
    """

    path: Path
    manifest: dict[str, Any]
    members: dict[str, bytes] | None = field(default=None, repr=False)  # zip only
    # package name -> the file that holds it, where that is a Hub name (HUB_NAMES)
    aliases: dict[str, str] = field(default_factory=dict)

    @property
    def name(self) -> str:
        return str(self.manifest["name"])

    @property
    def version(self) -> str:
        return str(self.manifest["version"])

    @property
    def task(self) -> str:
        return str(self.manifest["task"])

    @property
    def signature(self) -> dict[str, Any]:
        return dict(self.manifest["signature"])

    @property
    def onnx_path(self) -> Path | None:
        """``model.onnx`` on disk (None for a zip: use ``onnx_bytes``)."""
        return self.path / "model.onnx" if self.members is None else None

    @property
    def onnx_bytes(self) -> bytes:
        return self.read("model.onnx")

    def names(self) -> list[str]:
        """Every file in the package (by its package name), the manifest included, sorted."""
        if self.members is not None:
            found = list(self.members)
        else:
            found = [p.name for p in self.path.iterdir() if p.is_file()]
        back = {actual: name for name, actual in self.aliases.items()}
        return sorted(back.get(f, f) for f in found)

    def read(self, name: str) -> bytes:
        """The bytes of file ``name``; ``PackageError`` naming it when it is missing."""
        actual = self.aliases.get(name, name)
        try:
            if self.members is not None:
                return self.members[actual]
            return (self.path / actual).read_bytes()
        except (KeyError, OSError):
            raise PackageError(f"{name}: missing from package {self.path}") from None

    def sha256(self, name: str) -> str:
        if self.members is not None:
            return sha256_bytes(self.read(name))
        try:
            return sha256_file(self.path / self.aliases.get(name, name))
        except OSError:
            raise PackageError(f"{name}: missing from package {self.path}") from None

    def session(self, threads: int = 1) -> onnxruntime.InferenceSession:
        """An ONNX Runtime CPU session over ``model.onnx`` with ``threads`` intra-op threads."""
        try:
            import onnxruntime as ort
        except ImportError:
            from canonml.errors import MissingExtraError

            raise MissingExtraError("onnxruntime", "serve") from None
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        source = str(self.onnx_path) if self.onnx_path is not None else self.onnx_bytes
        try:
            return ort.InferenceSession(source, options, providers=["CPUExecutionProvider"])
        except Exception as e:  # onnxruntime raises its own untyped errors on a bad graph
            first = str(e).splitlines()[0] if str(e) else type(e).__name__
            raise PackageError(f"model.onnx: ONNX Runtime cannot load it ({first})") from None


def open_package(path: str | os.PathLike[str], verify_hashes: bool = True) -> Package:
    """Open the package at ``path`` (a directory or a ``.zip``) and read its manifest.

    With ``verify_hashes`` every file is re-hashed against ``canon.json`` first.
    Raises ``PackageError`` for a missing path, a bad manifest or a hash mismatch.
    """
    pkg = _open(Path(path))
    problem = manifest_problem(pkg.manifest)
    if problem:
        raise PackageError(f"{pkg.path}: {MANIFEST}: {problem}")
    if verify_hashes:
        problems = hash_problems(pkg)
        if problems:
            more = f" (and {len(problems) - 1} more; run canon verify)" if len(problems) > 1 else ""
            raise PackageError(f"{pkg.path}: {problems[0]}{more}")
    return pkg


def hash_problems(pkg: Package) -> list[str]:
    """One line per file that is missing, changed or unlisted, naming the file."""
    problems = []
    listed = pkg.manifest.get("files") or {}
    for name, want in sorted(listed.items()):
        if not _plain_name(name):
            problems.append(f"{MANIFEST}: bad file name {name!r} in 'files'")
            continue
        try:
            got = pkg.sha256(name)
        except PackageError:
            problems.append(f"{name}: missing (listed in {MANIFEST})")
            continue
        if got != want:
            problems.append(
                f"{name}: sha256 mismatch, the file changed after packaging "
                f"(canon.json says {str(want)[:12]}…, the file hashes to {got[:12]}…)"
            )
    for name in pkg.names():
        if name != MANIFEST and name not in listed:
            problems.append(f"{name}: not listed in {MANIFEST} (not part of the package)")
    return problems


def manifest_problem(manifest: dict[str, Any]) -> str | None:
    """What makes ``manifest`` unusable, or None."""
    if manifest.get("format") != FORMAT:
        return f"not a canonml package manifest (format {manifest.get('format')!r})"
    version = manifest.get("format_version")
    if not isinstance(version, int) or version > FORMAT_VERSION:
        return (
            f"format_version {version!r} is not one this canonml reads ({FORMAT_VERSION}); "
            "upgrade canonml"
        )
    missing = [k for k in REQUIRED if k not in manifest]
    if missing:
        return f"missing keys {missing}"
    if not isinstance(manifest["files"], dict) or not isinstance(manifest["signature"], dict):
        return "'files' and 'signature' must be JSON objects"
    return None


def _open(path: Path) -> Package:
    if path.is_dir():
        pkg = Package(path, {})
    elif path.is_file():
        pkg = Package(path, {}, members=_zip_members(path))
    else:
        raise PackageError(f"{path}: no such package (give a package directory or .zip)")
    try:
        manifest = json.loads(pkg.read(MANIFEST).decode("utf-8"))
    except PackageError:
        hint = (
            f" (a run directory? its package is {path / 'package'})"
            if (path / "package" / MANIFEST).is_file()
            else ""
        )
        raise PackageError(f"{path}: {MANIFEST}: missing; not a canonml package{hint}") from None
    except (UnicodeDecodeError, ValueError) as e:
        raise PackageError(f"{path}: {MANIFEST}: not valid JSON ({e})") from None
    if not isinstance(manifest, dict):
        raise PackageError(f"{path}: {MANIFEST}: not a JSON object")
    pkg.manifest = manifest
    present = set(pkg.names())
    pkg.aliases = {n: hub for n, hub in HUB_NAMES.items() if n not in present and hub in present}
    return pkg


def _zip_members(path: Path) -> dict[str, bytes]:
    """Files of a zip package; the files may sit at the root or in one top-level folder."""
    try:
        with zipfile.ZipFile(path) as zf:
            files = {i.filename: zf.read(i) for i in zf.infolist() if not i.is_dir()}
    except (zipfile.BadZipFile, zlib.error, OSError, EOFError, ValueError) as e:
        raise PackageError(f"{path}: not a package directory nor a readable zip ({e})") from None
    if MANIFEST not in files:
        # A zipped package folder (zip -r pkg.zip package/): strip the one folder level.
        tops = {name.split("/", 1)[0] for name in files}
        if len(tops) == 1 and f"{next(iter(tops))}/{MANIFEST}" in files:
            prefix = next(iter(tops)) + "/"
            files = {n[len(prefix) :]: b for n, b in files.items()}
    return files  # nested or odd names show up as 'not listed' problems


def _plain_name(name: str) -> bool:
    return bool(name) and "/" not in name and "\\" not in name and name not in (".", "..")
