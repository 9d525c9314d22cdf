"""``canon export --format triton``: a package → one model of a Triton model repository.

``REPO/<name>/config.pbtxt`` (ONNX Runtime backend, dynamic batching, shapes from the
package signature), ``REPO/<name>/1/model.onnx`` and, for a classifier, ``labels.txt`` (one
label per line in index order, named by the ``probabilities`` output's ``label_filename``
so Triton's classification extension returns label names). Triton versions are integers,
so the package is always version ``1``; its run id is in the config's first-line comment
and in ``model.onnx``'s metadata. KServe's Triton runtime serves the same repository.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from canonml.errors import PackageError
from canonml.package.reader import Package
from canonml.package.writer import check_target, write_files

MAX_BATCH_SIZE = 64
QUEUE_DELAY_US = 100  # how long the dynamic batcher may hold a request to fill a batch
LABELS = "labels.txt"
MARK = "# canonml:"  # the first line of every config.pbtxt canon export writes


def write_triton(pkg: Package, repo: Path, max_batch_size: int = MAX_BATCH_SIZE) -> Path:
    """Write ``pkg`` as ``repo/<name>/`` atomically; return that model directory.

    Replaces only an earlier ``canon export`` of a model of that name; other models in
    ``repo`` are left alone.
    """
    if max_batch_size < 1:
        raise PackageError(f"--max-batch-size: must be >= 1, got {max_batch_size}")
    if repo.exists() and not repo.is_dir():
        raise PackageError(f"{repo}: exists and is a file; give a model repository directory")
    target = repo / pkg.name
    check_target(target, ours=_is_export, what="a model canon export wrote")
    files = {
        "config.pbtxt": triton_config(pkg.manifest, max_batch_size).encode("utf-8"),
        "1/model.onnx": pkg.onnx_bytes,
    }
    labels = pkg.signature.get("labels")
    if labels:
        files[LABELS] = labels_text(labels).encode("utf-8")
    write_files(target, files)
    return target


def triton_config(manifest: dict[str, Any], max_batch_size: int = MAX_BATCH_SIZE) -> str:
    """``config.pbtxt`` (protobuf text of Triton's ``ModelConfig``) for a package (pure).

    With ``max_batch_size > 0`` Triton adds the batch axis itself, so ``dims`` leave out
    the signature's leading ``-1``; a batch-only tensor (``[-1]``, such as ``label``) is
    ``dims: [ 1 ]`` with ``reshape: { shape: [ ] }``, as Triton's model configuration
    guide prescribes.
    """
    sig = manifest["signature"]
    labelled = bool(sig.get("labels"))
    inputs = ",\n".join(_tensor(t) for t in sig["inputs"])
    outputs = ",\n".join(
        _tensor(t, LABELS if labelled and t["name"] == "probabilities" else None)
        for t in sig["outputs"]
    )
    return (
        f"{MARK} written by 'canon export --format triton' from package {manifest['name']} "
        f"version {manifest['version']}\n"
        f'name: "{manifest["name"]}"\n'
        'platform: "onnxruntime_onnx"\n'
        f"max_batch_size: {max_batch_size}\n"
        f"input [\n{inputs}\n]\n"
        f"output [\n{outputs}\n]\n"
        f"dynamic_batching {{\n  max_queue_delay_microseconds: {QUEUE_DELAY_US}\n}}\n"
    )


def labels_text(labels: list[str]) -> str:
    """One label per line, in class-index order (a newline inside a label becomes a space)."""
    return "".join(" ".join(str(label).splitlines()) + "\n" for label in labels)


def triton_datatype(datatype: str) -> str:
    """Triton's ``DataType`` name for an Open Inference Protocol datatype (``FP32``)."""
    return "TYPE_STRING" if datatype == "BYTES" else f"TYPE_{datatype}"


def _tensor(t: dict[str, Any], label_filename: str | None = None) -> str:
    shape = [int(d) for d in t["shape"]]
    if not shape or shape[0] != -1:
        raise PackageError(
            f"canon.json: signature tensor '{t['name']}' has no leading batch axis ({shape})"
        )
    dims = shape[1:]
    lines = [
        f'    name: "{t["name"]}"',
        f"    data_type: {triton_datatype(t['datatype'])}",
        f"    dims: [ {', '.join(str(d) for d in dims or [1])} ]",
    ]
    if not dims:
        lines.append("    reshape: { shape: [ ] }")
    if label_filename:
        lines.append(f'    label_filename: "{label_filename}"')
    return "  {\n" + "\n".join(lines) + "\n  }"


def _is_export(path: Path) -> bool:
    config = path / "config.pbtxt"
    try:
        return config.is_file() and config.read_text(encoding="utf-8").startswith(MARK)
    except (OSError, UnicodeDecodeError):
        return False
