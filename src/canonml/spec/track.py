"""``track:`` — where each run is recorded (MLflow); ``track: false`` turns tracking off."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import Field, ValidatorFunctionWrapHandler, WrapValidator

from canonml.spec.base import StrictModel


class TrackSpec(StrictModel):
    """An MLflow store and experiment; the default is an SQLite file in the working directory."""

    uri: str = Field(
        "sqlite:///mlruns.db",
        min_length=1,
        description="MLflow tracking URI: sqlite:///FILE (relative to the working directory), "
        "http(s)://SERVER, or any other URI MLflow accepts",
    )
    experiment: str = Field("canon", min_length=1, description="MLflow experiment name")
    timeout: float = Field(
        60.0,
        gt=0.0,
        description="seconds a finished run waits for its record to be written before it "
        "gives up with a warning (the run directory is complete either way)",
    )


def _parse_track(value: Any, handler: ValidatorFunctionWrapHandler) -> TrackSpec | Literal[False]:
    # Validated by hand rather than as a plain union: a union reports every member's errors
    # under its class name (``track.TrackSpec.uri``); this keeps paths as ``track.uri``.
    if value is False:
        return False
    if value is True or value is None:  # `track: true` or an empty `track:` section
        return TrackSpec()
    if isinstance(value, dict | TrackSpec):
        return TrackSpec.model_validate(value)
    raise ValueError("must be false, true or a mapping with uri, experiment and timeout")


def _schema(schema: dict[str, Any]) -> None:
    # Editors should accept `track: true` too (it means the defaults).
    schema["anyOf"] = [
        s if s.get("const") is not False else {"type": "boolean"} for s in schema.get("anyOf", [])
    ]


Track = Annotated[
    TrackSpec | Literal[False],
    WrapValidator(_parse_track),
    Field(
        description="where runs are recorded (MLflow); false disables tracking",
        json_schema_extra=_schema,
    ),
]
"""The top-level field: ``track: Track = Field(default_factory=TrackSpec)`` in ``Spec``."""
