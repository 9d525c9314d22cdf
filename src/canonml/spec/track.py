"""``track:`` — where each run is recorded (MLflow); ``track: false`` turns tracking off."""

from __future__ import annotations

import os
import warnings
from typing import Annotated, Any, Literal

from pydantic import Field, ValidatorFunctionWrapHandler, WrapValidator, field_validator

from canonml.spec.base import StrictModel

# MLflow's own default store (``mlflow ui`` / ``mlflow server`` in the same folder read it).
DEFAULT_URI = "sqlite:///mlflow.db"
DEFAULT_EXPERIMENT = "canon"


# ``register`` is also ``ABCMeta.register``, a metaclass method that pydantic warns a field
# shadows; instances never see it, so the spec key keeps its natural name.
with warnings.catch_warnings():
    warnings.filterwarnings("ignore", 'Field name "register"', UserWarning)

    class TrackSpec(StrictModel):
        """An MLflow store and experiment; unset, they come from the environment as in MLflow."""

        uri: str | None = Field(
            None,
            min_length=1,
            description="MLflow tracking URI: sqlite:///FILE (relative to the working directory), "
            "http(s)://SERVER, or any other URI MLflow accepts; unset: $MLFLOW_TRACKING_URI, "
            f"else {DEFAULT_URI}",
        )
        experiment: str | None = Field(
            None,
            min_length=1,
            description="MLflow experiment name; unset: $MLFLOW_EXPERIMENT_NAME, "
            f"else '{DEFAULT_EXPERIMENT}'",
        )
        register: str | None = Field(
            None,
            min_length=1,
            max_length=256,
            description="also register the logged model under this name in MLflow's model "
            "registry (a new version per run)",
        )
        timeout: float = Field(
            60.0,
            gt=0.0,
            description="seconds a finished run waits for its record to be written before it "
            "gives up with a warning (the run directory is complete either way)",
        )

        @field_validator("register")
        @classmethod
        def _registry_name(cls, name: str | None) -> str | None:
            # MLflow's own rule for registered model names (checked here, before training).
            if name is not None and (not name.strip() or any(c in name for c in "/:")):
                raise ValueError(
                    f"a registered model name needs a character other than space and no "
                    f"'/' or ':', got {name!r}"
                )
            return name

        def resolved_uri(self) -> str:
            """``uri``, else ``$MLFLOW_TRACKING_URI``, else MLflow's default SQLite file."""
            return tracking_uri(self.uri)

        def resolved_experiment(self) -> str:
            """``experiment``, else ``$MLFLOW_EXPERIMENT_NAME``, else ``canon``."""
            return experiment_name(self.experiment)


def tracking_uri(uri: str | None = None) -> str:
    """The store a client uses when given ``uri`` (None: as every MLflow client decides)."""
    return uri or os.environ.get("MLFLOW_TRACKING_URI") or DEFAULT_URI


def experiment_name(name: str | None = None) -> str:
    """The experiment a client uses when given ``name`` (None: the environment's, or canon)."""
    return name or os.environ.get("MLFLOW_EXPERIMENT_NAME") or DEFAULT_EXPERIMENT


def check_register_kept(raw: dict[str, Any], merged: dict[str, Any]) -> None:
    """An override that turns tracking off must not silently drop ``track.register``."""
    from canonml.errors import SpecError

    before = raw.get("track")
    if isinstance(before, dict) and before.get("register") and merged.get("track") is False:
        raise SpecError(
            "track.register",
            f"the spec registers the model as {before['register']!r} but tracking is turned "
            "off (track: false); keep tracking on or drop track.register",
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
    raise ValueError("must be false, true or a mapping with uri, experiment, register and timeout")


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
