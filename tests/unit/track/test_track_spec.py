"""``track:``: false disables, true means the defaults, a mapping overrides, typos are named."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import Field, ValidationError

from canonml.spec.base import StrictModel
from canonml.spec.track import Track, TrackSpec


class _Root(StrictModel):
    """The top-level spec as far as ``track:`` goes."""

    track: Track = Field(default_factory=TrackSpec)


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        (False, False),
        (True, TrackSpec()),
        (None, TrackSpec()),
        ({}, TrackSpec()),
        ({"uri": "http://127.0.0.1:5000"}, TrackSpec(uri="http://127.0.0.1:5000")),
        ({"experiment": "team", "timeout": 5}, TrackSpec(experiment="team", timeout=5.0)),
    ],
)
def test_track_values(given: Any, expected: TrackSpec | bool) -> None:
    assert _Root.model_validate({"track": given}).track == expected


def test_defaults_are_mlflows_sqlite_file_and_experiment_canon(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    track = _Root().track
    assert isinstance(track, TrackSpec) and track.uri is None and track.experiment is None
    assert track.resolved_uri() == "sqlite:///mlflow.db"
    assert track.resolved_experiment() == "canon"
    # The spec keeps "unset", so a resumed or re-run spec follows its environment.
    assert _Root().model_dump(mode="json")["track"]["uri"] is None
    assert _Root(track=False).model_dump(mode="json") == {"track": False}


def test_unset_uri_and_experiment_follow_mlflows_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://tracking.example:5000")
    monkeypatch.setenv("MLFLOW_EXPERIMENT_NAME", "team")
    track = TrackSpec()
    assert (track.resolved_uri(), track.resolved_experiment()) == (
        "http://tracking.example:5000",
        "team",
    )
    given = TrackSpec(uri="sqlite:///other.db", experiment="mine")
    assert (given.resolved_uri(), given.resolved_experiment()) == ("sqlite:///other.db", "mine")


@pytest.mark.parametrize(
    ("given", "loc", "fragment"),
    [
        ({"uri": "sqlite:///x.db", "experimnt": "a"}, ("track", "experimnt"), "Extra inputs"),
        ({"experiment": ""}, ("track", "experiment"), "at least 1 character"),
        ({"timeout": 0}, ("track", "timeout"), "greater than 0"),
        ("yes please", ("track",), "must be false, true or a mapping"),
        (3, ("track",), "must be false, true or a mapping"),
    ],
)
def test_bad_track_values_name_the_key(given: Any, loc: tuple[str, ...], fragment: str) -> None:
    with pytest.raises(ValidationError) as info:
        _Root.model_validate({"track": given})
    err = info.value.errors()[0]
    assert err["loc"] == loc  # `track.experiment`, not `track.TrackSpec.experiment`
    assert fragment in err["msg"]
    assert len(info.value.errors()) == 1


def test_schema_accepts_a_mapping_or_a_boolean() -> None:
    schema = _Root.model_json_schema()["properties"]["track"]
    assert {"type": "boolean"} in schema["anyOf"]
    assert {"$ref": "#/$defs/TrackSpec"} in schema["anyOf"]
