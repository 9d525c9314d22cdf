"""``canon.json``: the package manifest, built from a run's artefacts (pure)."""

from __future__ import annotations

from datetime import UTC, datetime
from importlib import metadata
from typing import Any

from canonml import __version__
from canonml.io import sha256_bytes
from canonml.package.export import OPSET
from canonml.package.reader import FORMAT, FORMAT_VERSION
from canonml.package.signature import build_signature
from canonml.spec.task import task_name
from canonml.tasks import get_task


def build_manifest(
    *,
    spec: dict[str, Any],
    spec_text: str,
    run_id: str,
    described: dict[str, Any],
    state: dict[str, Any],
    metrics: dict[str, float],
    evaluation: dict[str, Any],
    created: str,
    versions: dict[str, Any],
) -> dict[str, Any]:
    """Every manifest key but ``files`` (the writer adds the hashes last)."""
    task = get_task(spec["task"])
    return {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "name": spec["name"],
        "version": run_id,
        "task": task_name(spec["task"]),
        "license": spec.get("license"),  # an SPDX id or expression; None: not specified
        "created": created,
        "versions": versions,
        "signature": task.signature_for(build_signature(task, described, state), spec),
        "metrics": metrics,
        "headline": evaluation.get("headline"),
        "interval": evaluation.get("interval"),
        "data": {
            "fingerprint": described.get("fingerprint"),
            "source": described.get("source", spec["data"]["source"]),
            "sizes": described.get("sizes"),
        },
        "lineage": {"spec_sha256": sha256_bytes(spec_text.encode("utf-8")), "run_id": run_id},
        "privacy": None,  # no differential privacy in this version of canonml
        "files": {},
    }


def versions() -> dict[str, Any]:
    """canonml, torch and onnx versions of the packaging environment, and the opset."""
    return {
        "canonml": __version__,
        "torch": _version("torch"),
        "onnx": _version("onnx"),
        "opset": OPSET,
    }


def utc_now() -> str:
    """The current time as ISO 8601 UTC, to the second (``2026-11-22T10:15:00Z``)."""
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _version(dist: str) -> str | None:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return None
