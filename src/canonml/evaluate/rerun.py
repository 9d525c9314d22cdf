"""``canon evaluate RUN_DIR [--data SOURCE]``: score a finished run again, on any data."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import numpy as np

from canonml.errors import CheckpointError, DataError
from canonml.evaluate.evaluation import Evaluation
from canonml.io import write_json
from canonml.rundir import RunDir, existing_run_dir
from canonml.spec import Spec, load_spec
from canonml.tasks.base import Task


def evaluate_run(
    run_dir: str, source: str | None = None, target: str | None = None
) -> tuple[Evaluation, str]:
    """Evaluate the run's final model on its own test split or on ``source``.

    ``target`` names the target column of a csv ``source`` (default: the spec's).
    Returns the evaluation and the file it was written to (``evaluations/<source>.json``).
    """
    from canonml.evaluate.evaluate import evaluate_model
    from canonml.models.weights import load_trained
    from canonml.tasks import get_task

    run = existing_run_dir(run_dir)
    spec = load_spec(run.spec)
    task = get_task(spec)
    described, state = _read_json(run, run.data), _read_json(run, run.preprocess)
    if not run.weights.is_file():
        raise CheckpointError(f"{run.weights}: missing; the run did not finish (use --resume)")
    io = task.model_io(tuple(described["input_shape"]), described.get("label_names"), state)
    blob = run.weights.read_bytes()
    model = load_trained(spec.model, io, blob, str(run.weights), CheckpointError)
    if source is None:
        from canonml.data.prepare import prepare

        data, _ = prepare(spec, task)
        _same_fingerprint(data.fingerprint, described)
    else:
        data = _foreign_data(spec, task, source, target, described, state, run.path)
    evaluation = evaluate_model(spec, task, model, data)
    slug = re.sub(r"[^A-Za-z0-9._-]+", "_", source or "test").strip("_")[-80:]
    written = run.path / "evaluations" / f"{slug}.json"
    write_json(written, {"source": source or spec.data.source, **evaluation.summary()})
    return evaluation, str(written)


def _read_json(run: RunDir, path: Any) -> dict[str, Any]:
    try:
        return dict(json.loads(path.read_text(encoding="utf-8")))
    except (OSError, ValueError) as e:
        raise CheckpointError(f"{path}: unreadable ({e}); re-run the spec") from None


def _same_fingerprint(fingerprint: str, described: dict[str, Any]) -> None:
    if fingerprint != described.get("fingerprint"):
        raise DataError(
            "the training data changed since the run (fingerprint differs); evaluate on it "
            "with --data SOURCE instead"
        )


def _foreign_data(
    spec: Spec,
    task: Task,
    source: str,
    target: str | None,
    described: dict[str, Any],
    state: dict[str, Any],
    run_dir: Path,
) -> Any:
    """Another source, read with the run's schema and preprocessing (no fitting)."""
    from pydantic import ValidationError

    from canonml.data.prepare import Prepared, Split
    from canonml.data.preprocess import apply_preprocess
    from canonml.data.sources import load_source

    raw = {**spec.data.model_dump(), "source": source, "target": target or spec.data.target}
    raw |= {"features": None, "drop": None, "categorical": None}
    if state.get("kind") == "tabular" and source.startswith("csv:"):
        # Read the columns the model was trained on, typed as then (no identifier guess).
        raw["features"] = [c["name"] for c in state["numeric"] + state["categorical"]]
        raw["categorical"] = [c["name"] for c in state["categorical"]]
    try:
        data_spec = type(spec.data).model_validate(raw)
    except ValidationError as e:
        problem = str(e.errors()[0]["msg"]).removeprefix("Value error, ")
        raise DataError(problem, path="--data") from None
    if data_spec.scheme == "csv" and not data_spec.target:
        raise DataError("a csv source needs its target column: add --target COLUMN", path="--data")
    dataset = load_source(data_spec)
    _check_schema(dataset, described, state, source)
    y = _encode_like(dataset, task, described.get("label_names"), source)
    files: dict[str, bytes] = {}
    if state.get("kind") == "text":  # the run's own tokenizer, never a new one
        from canonml.data.preprocess import apply_text
        from canonml.data.text import load_tokenizer

        path = run_dir / state["tokenizer"]
        tokenizer = load_tokenizer(path, where=str(path))
        x, y_text, _ = apply_text(state, tokenizer, dataset.take(np.arange(len(dataset))))
        y = y_text if state.get("pack") else y
        keep = np.ones(len(x), dtype=bool)
        files[state["tokenizer"]] = path.read_bytes()
    else:
        x, keep = apply_preprocess(state, dataset)
    split = Split(x=x, y=task.target_array(y[keep], state.get("target")))
    empty = Split(x=x[:0], y=split.y[:0])
    return Prepared(
        train=empty,
        val=empty,
        test=split,
        kind=dataset.kind,
        input_shape=tuple(described["input_shape"]),
        feature_names=described["feature_names"],
        label_names=described.get("label_names"),
        preprocess=state,
        fingerprint="",
        files=files,
    )


def _check_schema(dataset: Any, described: dict[str, Any], state: dict[str, Any], src: str) -> None:
    if dataset.kind != described["kind"]:
        raise DataError(
            f"{src} gives {dataset.kind} data; the model was trained on {described['kind']} data",
            path="--data",
        )
    if dataset.kind == "text":
        return  # texts of any length: the run's tokenizer and max_length apply
    if dataset.kind == "image":
        if list(dataset.x.shape[1:]) != list(described["input_shape"]):
            raise DataError(
                f"{src} has images of shape {list(dataset.x.shape[1:])}; the model "
                f"expects {described['input_shape']}",
                path="--data",
            )
        return
    want = [c["name"] for c in state["numeric"]]
    want_cat = [c["name"] for c in state["categorical"]]
    if dataset.feature_names != want or list(dataset.categorical) != want_cat:
        raise DataError(
            f"{src} has columns {dataset.feature_names + list(dataset.categorical)};"
            f" the model expects {want + want_cat}",
            path="--data",
        )


def _encode_like(dataset: Any, task: Task, labels: list[str] | None, src: str) -> np.ndarray:
    """Targets of another source as the run's model knows them: by the run's label names
    when it has classes (an unknown label is an error), else as the task encodes them."""
    if labels is None:
        return np.asarray(task.encode_targets(dataset).y)
    y = dataset.y
    if y.dtype.kind in "iu":
        if y.size and (y.min() < 0 or y.max() >= len(labels)):
            raise DataError(
                f"{src} has class index {int(y.max())}; the model knows {len(labels)} classes",
                path="--data",
            )
        return y.astype(np.int64)
    lookup = {name: i for i, name in enumerate(labels)}
    unknown = sorted({str(v) for v in y} - set(lookup))
    if unknown:
        raise DataError(
            f"{src} has labels {unknown[:5]} the model never saw; known: {', '.join(labels)}",
            path="--data",
        )
    return np.array([lookup[str(v)] for v in y], dtype=np.int64)
