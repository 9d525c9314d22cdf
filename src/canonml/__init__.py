"""canonml — one declarative spec for the whole life of a deep-learning model.

Every capability is a function here, loaded on first use so that ``import canonml`` stays
instant and torch-free (torch, scikit-learn and MLflow load only when a function needs them):

- specs: ``load_spec``, ``validate_spec``, ``json_schema``, ``Spec``
- runs: ``run`` → ``RunResult``; ``evaluate_run`` (score a finished run again)
- packages: ``write_package``, ``export`` (package, zip, Triton repository, Hugging Face
  folder), ``open_package``, ``verify_package``, ``predict`` (ONNX Runtime only), ``Package``
- serving: ``create_app`` (the OIP v2 FastAPI app over opened packages), ``build_app``
  (the same from package paths), ``run_server`` (serve them on uvicorn)
- tracking: ``find_runs``, ``get_runs`` (MLflow runs as plain data)
- errors: ``CanonError`` and its subclasses, ``CanonWarning``
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

from canonml._version import __version__
from canonml.errors import (
    CanonError,
    CanonWarning,
    CheckpointError,
    DataError,
    PackageError,
    SpecError,
)

if TYPE_CHECKING:
    from canonml.evaluate.rerun import evaluate_run
    from canonml.package import Package, open_package, verify_package, write_package
    from canonml.package import predict_inputs as predict
    from canonml.package.convert import export_as as export
    from canonml.pipeline import RunResult, run
    from canonml.serve.app import create_app
    from canonml.serve.server import build_app, run_server
    from canonml.spec import Spec, json_schema, load_spec, validate_spec
    from canonml.track import find_runs, get_runs

# public name -> (module, attribute)
_LAZY = {
    "load_spec": ("canonml.spec", "load_spec"),
    "validate_spec": ("canonml.spec", "validate_spec"),
    "json_schema": ("canonml.spec", "json_schema"),
    "Spec": ("canonml.spec", "Spec"),
    "run": ("canonml.pipeline", "run"),
    "RunResult": ("canonml.pipeline", "RunResult"),
    "evaluate_run": ("canonml.evaluate.rerun", "evaluate_run"),
    "write_package": ("canonml.package", "write_package"),
    "export": ("canonml.package.convert", "export_as"),
    "open_package": ("canonml.package", "open_package"),
    "verify_package": ("canonml.package", "verify_package"),
    "predict": ("canonml.package", "predict_inputs"),
    "Package": ("canonml.package", "Package"),
    "create_app": ("canonml.serve.app", "create_app"),
    "build_app": ("canonml.serve.server", "build_app"),
    "run_server": ("canonml.serve.server", "run_server"),
    "find_runs": ("canonml.track", "find_runs"),
    "get_runs": ("canonml.track", "get_runs"),
}

__all__ = [
    "CanonError",
    "CanonWarning",
    "CheckpointError",
    "DataError",
    "Package",
    "PackageError",
    "RunResult",
    "Spec",
    "SpecError",
    "__version__",
    "build_app",
    "create_app",
    "evaluate_run",
    "export",
    "find_runs",
    "get_runs",
    "json_schema",
    "load_spec",
    "open_package",
    "predict",
    "run",
    "run_server",
    "validate_spec",
    "verify_package",
    "write_package",
]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        module, attribute = _LAZY[name]
        value = getattr(import_module(module), attribute)
        globals()[name] = value  # later look-ups skip this function
        return value
    raise AttributeError(f"module 'canonml' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(__all__)
