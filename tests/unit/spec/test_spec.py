"""The spec: validation messages name the path, defaults are filled, overrides apply."""

from __future__ import annotations

import json
from typing import Any

import pytest
import yaml

from canonml.errors import SpecError
from canonml.spec import json_schema, load_spec, spec_to_yaml, template_names
from canonml.spec.evaluate import CLASSIFICATION_METRICS, REGRESSION_METRICS
from tests.conftest import REQUIRED_TEMPLATES, tiny_spec

BAD = [
    (["train.optimizer.lr=-1"], "train.optimizer.lr: must be > 0.0, got -1"),
    (["train.optimizr.lr=1"], "train.optimizr: unknown key 'optimizr'; did you mean 'optimizer'?"),
    (["model.hidden=[64,-3]"], "model.hidden[1]: must be > 0, got -3"),
    (["model.arch=mpl"], "model.arch: unknown model 'mpl'; did you mean 'mlp'?"),
    (["data.source=sklaern:digits"], "data.source: unknown scheme 'sklaern'; did you mean"),
    (["data.source=sklearn:mnist"], "data.source: unknown scikit-learn data set 'mnist'"),
    (["data.source=digits"], "data.source: must be 'scheme:arg'"),
    (["data.source=csv:x.csv"], "data.target: a csv source needs the target column"),
    (["name=My Run"], "name: must use lower-case letters"),
    (["evaluate.metrics=[r2]"], "evaluate.metrics[0]: 'r2' is not a classification metric"),
    (["task=regression", "train.loss=cross_entropy"], "train.loss: cross_entropy needs task"),
    (["train.threads=0"], "train.threads: must be 'auto' or a whole number"),
    (["data.split.val=0.5", "data.split.test=0.5"], "data.split: val + test must be < 0.9"),
    (["train.epochs=0"], "train.epochs: must be > 0, got 0"),
    (["model.dropout=1.5"], "model.dropout: must be < 1.0, got 1.5"),
    (["task=forecasting"], "task: must be one of"),
    (["bogus=1"], "bogus: unknown key 'bogus'"),
]


@pytest.mark.parametrize(("overrides", "message"), BAD)
def test_bad_values_name_the_path(overrides: list[str], message: str) -> None:
    with pytest.raises(SpecError) as info:
        load_spec(tiny_spec(), overrides)
    assert message in str(info.value)
    assert "\n" not in str(info.value)


def test_missing_required_key() -> None:
    spec = tiny_spec()
    del spec["data"]
    with pytest.raises(SpecError, match="^data: required key is missing"):
        load_spec(spec)


def test_defaults_are_filled_and_round_trip() -> None:
    spec = load_spec(tiny_spec())
    assert spec.train.optimizer.name == "adam"
    assert spec.evaluate.metrics == list(CLASSIFICATION_METRICS)
    assert (spec.evaluate.ci, spec.evaluate.cv) == (1000, None)
    again = load_spec(yaml.safe_load(spec_to_yaml(spec)))
    assert again == spec


def test_overrides_parse_yaml_values() -> None:
    spec = load_spec(
        tiny_spec(),
        ["train.epochs=7", "model.hidden=[4, 5]", "seed=3", "train.early_stopping.patience=2"],
    )
    assert (spec.train.epochs, spec.model.hidden, spec.seed) == (7, [4, 5], 3)
    assert spec.train.early_stopping is not None and spec.train.early_stopping.patience == 2


def test_override_without_equals_is_an_error() -> None:
    with pytest.raises(SpecError, match="--set: expected key.path=value"):
        load_spec(tiny_spec(), ["train.epochs"])


def test_regression_turns_stratify_off() -> None:
    spec = load_spec(tiny_spec(task="regression", data={"source": "sklearn:diabetes"}))
    assert spec.data.split.stratify is False
    assert spec.evaluate.metrics == list(REGRESSION_METRICS)


# The tiny checkpoint a fine-tuning template gets has not seen most of its characters.
@pytest.mark.filterwarnings("ignore:data.text.tokenizer:canonml.errors.CanonWarning")
@pytest.mark.parametrize("name", template_names())
def test_every_template_validates(name: str, template_cwd: Any) -> None:
    template_cwd(name)  # a template that fine-tunes run:NAME finds a tiny such run
    spec = load_spec(f"template:{name}")
    assert spec.name == name


def test_required_templates_exist() -> None:
    assert set(REQUIRED_TEMPLATES) <= set(template_names())


def test_unknown_template_suggests() -> None:
    with pytest.raises(SpecError, match="unknown template 'digits-mpl'; did you mean 'digits-mlp'"):
        load_spec("template:digits-mpl")


def test_bad_yaml_names_the_line(tmp_path) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path / "bad.yaml"
    path.write_text("name: x\ndata: {source: [\n", encoding="utf-8")
    with pytest.raises(SpecError, match=r"bad.yaml line \d+: not valid YAML"):
        load_spec(path)


def test_json_schema_describes_every_section() -> None:
    schema = json_schema()
    json.dumps(schema)
    assert set(schema["properties"]) == {
        "name",
        "task",
        "seed",
        "license",
        "data",
        "model",
        "train",
        "evaluate",
        "track",
        "privacy",
        "audit",
        "explain",
        "compress",
        "search",
    }
    assert schema["additionalProperties"] is False
