"""The base of every spec section: strict, validated on assignment, JSON-Schema friendly."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class StrictModel(BaseModel):
    """A spec section: unknown keys are errors; defaults are filled and written back."""

    model_config = ConfigDict(extra="forbid", validate_default=True, frozen=False)
