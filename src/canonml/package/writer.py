"""``write_package``: a finished run directory → the model package, written atomically.

``check_target`` and ``write_files`` serve every ``canon export`` format the same way.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from canonml.io import atomic_open, sha256_bytes, stable_json
from canonml.package.reader import MANIFEST, PackageError
from canonml.rundir import RunDir

if TYPE_CHECKING:
    from canonml.tasks.base import Graph

# The run files a package is made from (all written by `canon run`).
RUN_FILES = ("spec.yaml", "model.safetensors", "data.json", "preprocess.json", "metrics.json")
# Learned artefacts a run has only for some data (text: its tokenizer), copied when present.
OPTIONAL_RUN_FILES = ("tokenizer.json",)
ZIP_TIME = (1980, 1, 1, 0, 0, 0)  # fixed member times: the same package zips to the same bytes


def write_package(
    run_dir: str | os.PathLike[str], out: str | os.PathLike[str] | None = None, as_zip: bool = False
) -> Path:
    """Write the package of ``run_dir`` to ``out`` (default ``run_dir/package[.zip]``).

    A directory is built beside its target and renamed into place; a zip goes through a
    temp file. Raises ``PackageError`` for an unfinished run or an unusable target.
    """
    run = RunDir(Path(run_dir))
    target = Path(out) if out is not None else run.path / ("package.zip" if as_zip else "package")
    check_target(target, as_zip)
    write_files(target, package_files(run), as_zip)
    return target


def write_files(target: Path, files: dict[str, bytes], as_zip: bool = False) -> None:
    """``files`` (names may hold ``/``) as the directory or zip ``target``, atomically."""
    if as_zip:
        _write_zip(target, files)
    else:
        _write_dir(target, files)


def package_files(run: RunDir) -> dict[str, bytes]:
    """Every file of the package of ``run``, ``canon.json`` first, as bytes."""
    from canonml.models.summary import count_parameters
    from canonml.package.card import model_card
    from canonml.package.export import describe_onnx, export_module, export_onnx
    from canonml.package.manifest import build_manifest, utc_now, versions
    from canonml.package.rebuild import rebuild_model
    from canonml.tasks import get_task

    spec_text, weights, described, state, metrics = _read_run(run)
    evaluation = _read_json(run.path / "evaluation.json", required=False)
    spec = yaml.safe_load(spec_text)
    manifest = build_manifest(
        spec=spec,
        spec_text=spec_text,
        run_id=run.run_id,
        described=described,
        state=state,
        metrics=metrics,
        evaluation=evaluation,
        created=utc_now(),
        versions=versions(),
    )
    privacy = _read_json(run.path / "privacy.json", required=False)
    if privacy:  # privacy.dp: the ε spent and what re-derives it (canonml.train.privacy)
        manifest["privacy"] = {k: v for k, v in privacy.items() if k != "history"}
    try:
        model = rebuild_model(spec_text, weights, manifest["signature"])
    except PackageError as e:
        raise PackageError(f"{run.path}: the run's {e}") from None
    task = get_task(spec["task"])
    extras = task.extra_graphs(model, manifest["signature"])
    manifest["signature"] |= extra_signature(extras)
    card = model_card(manifest, spec, evaluation, described, count_parameters(model))
    files = {
        "model.onnx": describe_onnx(export_onnx(model, manifest["signature"], task), manifest),
        **{
            name: export_module(g.module, g.inputs, [o["name"] for o in g.outputs])
            for name, g in extras.items()
        },
        "weights.safetensors": weights,
        "spec.yaml": spec_text.encode("utf-8"),
        "MODEL_CARD.md": card.encode("utf-8"),
        **{n: (run.path / n).read_bytes() for n in OPTIONAL_RUN_FILES if (run.path / n).is_file()},
    }
    manifest["files"] = {name: sha256_bytes(data) for name, data in files.items()}
    return {MANIFEST: stable_json(manifest).encode("utf-8"), **files}


def extra_signature(extras: dict[str, Graph]) -> dict[str, Any]:
    """What the signature says of a task's extra graphs: ``graphs`` (each file's inputs and
    outputs) and, where one can be sampled, ``sampler`` (read by ``canon sample``)."""
    if not extras:
        return {}
    out: dict[str, Any] = {
        "graphs": {n: {"inputs": g.inputs, "outputs": g.outputs} for n, g in extras.items()}
    }
    sampler = next(({"file": n, **g.sampler} for n, g in extras.items() if g.sampler), None)
    if sampler is not None:
        out["sampler"] = sampler
    return out


def _read_run(run: RunDir) -> tuple[str, bytes, Any, Any, Any]:
    missing = [name for name in RUN_FILES if not (run.path / name).is_file()]
    if missing:
        raise PackageError(
            f"{run.path}: not a finished run directory (missing {', '.join(missing)}); "
            f"pass the directory 'canon run' printed, or finish it with --resume"
        )
    return (
        run.spec.read_text(encoding="utf-8"),
        run.weights.read_bytes(),
        _read_json(run.data),
        _read_json(run.preprocess),
        _read_json(run.metrics),
    )


def _read_json(path: Path, required: bool = True) -> dict[str, Any]:
    if not required and not path.is_file():
        return {}
    try:
        value = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise PackageError(f"{path}: unreadable ({e}); re-run the spec") from None
    if not isinstance(value, dict):
        raise PackageError(f"{path}: expected a JSON object; re-run the spec")
    return value


def check_target(
    target: Path, as_zip: bool = False, ours: Callable[[Path], bool] | None = None, what: str = ""
) -> None:
    """Refuse to replace anything but an earlier export (never a user's directory).

    ``ours(target)`` says whether an existing directory is one canonml wrote (default: it
    holds a ``canon.json``); ``what`` names that kind of directory in the message.
    """
    if as_zip and target.is_dir():
        raise PackageError(f"{target}: is a directory; give a file path such as model.zip")
    if as_zip or not target.exists():
        return
    if not target.is_dir():
        zip_hint = " or --zip" if ours is None else ""
        raise PackageError(f"{target}: exists and is a file; give a directory path{zip_hint}")
    is_ours = ours or (lambda path: (path / MANIFEST).is_file())
    if any(target.iterdir()) and not is_ours(target):
        raise PackageError(
            f"{target}: exists and is not {what or 'a model package'}; choose another path "
            "or remove it"
        )


def _write_dir(target: Path, files: dict[str, bytes]) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent))
    old = tmp.with_name(tmp.name + ".old")
    try:
        for name, data in files.items():
            (tmp / name).parent.mkdir(parents=True, exist_ok=True)
            with open(tmp / name, "wb") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o777 & ~umask)  # mkdtemp makes 0700; a package is meant to be shared
        if target.exists():
            # A directory cannot be renamed over a non-empty one: move the old one aside.
            os.replace(target, old)
        os.replace(tmp, target)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        if old.exists() and not target.exists():
            os.replace(old, target)
        raise
    with contextlib.suppress(OSError):
        shutil.rmtree(old)


def _write_zip(target: Path, files: dict[str, bytes]) -> None:
    with atomic_open(target, "wb") as f, zipfile.ZipFile(f, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in files.items():
            info = zipfile.ZipInfo(name, date_time=ZIP_TIME)
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = 0o644 << 16
            zf.writestr(info, data)
