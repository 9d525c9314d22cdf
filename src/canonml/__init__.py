"""canonml — one declarative spec for the whole life of a deep-learning model.

The public surface: ``load_spec`` (validate a spec), ``run`` (train and evaluate it) and
``RunResult``. Heavy modules (torch, scikit-learn) load only when a run starts.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from canonml.errors import CanonError, DataError, SpecError
from canonml.spec import Spec, json_schema, load_spec

__version__ = "0.1.0"

if TYPE_CHECKING:
    from canonml.pipeline import RunResult, run

__all__ = [
    "CanonError",
    "DataError",
    "RunResult",
    "Spec",
    "SpecError",
    "__version__",
    "json_schema",
    "load_spec",
    "run",
]


def __getattr__(name: str) -> Any:
    # ``run`` pulls in torch; import it on first use so ``import canonml`` stays light.
    if name in ("run", "RunResult"):
        from canonml import pipeline

        return getattr(pipeline, name)
    raise AttributeError(f"module 'canonml' has no attribute {name!r}")
