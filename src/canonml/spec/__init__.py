"""The spec: torch-free pydantic models, one module per top-level key."""

from canonml.spec.data import DataSpec
from canonml.spec.load import (
    apply_overrides,
    json_schema,
    load_spec,
    spec_to_yaml,
    template_names,
    template_text,
    validate_spec,
)
from canonml.spec.model import CNNSpec, MLPSpec
from canonml.spec.root import Spec
from canonml.spec.train import TrainSpec

__all__ = [
    "CNNSpec",
    "DataSpec",
    "MLPSpec",
    "Spec",
    "TrainSpec",
    "apply_overrides",
    "json_schema",
    "load_spec",
    "spec_to_yaml",
    "template_names",
    "template_text",
    "validate_spec",
]
