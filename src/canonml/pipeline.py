"""``run``: the whole life of one spec, top to bottom — data → model → train → evaluate."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from rich.console import Console

from canonml.errors import CheckpointError
from canonml.io import atomic_write, write_json
from canonml.rundir import RunDir, existing_run_dir, new_run_dir
from canonml.spec import Spec, load_spec, spec_to_yaml


@dataclass
class RunResult:
    """What a finished run produced."""

    run_dir: Path
    metrics: dict[str, float]
    history: list[dict[str, float]]
    spec: Spec


def run(
    spec: str | os.PathLike[str] | dict[str, Any] | Spec | None = None,
    out: str | os.PathLike[str] = "runs",
    *,
    overrides: list[str] | None = None,
    resume: str | os.PathLike[str] | None = None,
    console: Console | None = None,
) -> RunResult:
    """Run every section of ``spec``; with ``resume``, continue that run from its checkpoint.

    ``console`` receives progress (None: quiet). Raises ``CanonError`` on bad input.
    """
    import torch

    from canonml.data.prepare import prepare
    from canonml.models import build_model

    run_dir = existing_run_dir(resume) if resume is not None else None
    resolved = _resolve(spec, overrides, run_dir)
    data = prepare(resolved)
    torch.manual_seed(resolved.seed)
    model = build_model(resolved.model, data.input_shape, data.n_outputs)
    with _threads(resolved, model, data):
        if run_dir is None:
            run_dir = new_run_dir(out, resolved.name)
        _write_inputs(run_dir, resolved, data)
        history = _train(resolved, model, data, run_dir, console)
        metrics = _evaluate(resolved, model, data)
    write_json(run_dir.metrics, metrics)
    return RunResult(run_dir.path, metrics, history, resolved)


def _resolve(spec: Any, overrides: list[str] | None, run_dir: RunDir | None) -> Spec:
    if run_dir is None:
        if spec is None:
            raise CheckpointError("nothing to run: give a spec, a template or --resume RUN_DIR")
        return load_spec(spec, overrides)
    saved = load_spec(run_dir.spec)
    if spec is not None and spec_to_yaml(load_spec(spec, overrides)) != spec_to_yaml(saved):
        raise CheckpointError(
            f"--resume {run_dir.path}: the spec differs from the run's spec.yaml; resume with "
            "the same spec (or give only --resume)"
        )
    return saved


@contextlib.contextmanager
def _threads(spec: Spec, model: Any, data: Any) -> Iterator[int]:
    import torch

    from canonml.train.threads import choose_threads

    sample = torch.from_numpy(data.train.x[:1])
    n = choose_threads(spec.train.threads, model, sample, spec.train.batch_size)
    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield n
    finally:
        torch.set_num_threads(before)


def _write_inputs(run_dir: RunDir, spec: Spec, data: Any) -> None:
    atomic_write(run_dir.spec, spec_to_yaml(spec))
    write_json(run_dir.data, data.describe())
    write_json(run_dir.preprocess, data.preprocess)


def _train(spec: Spec, model: Any, data: Any, run_dir: RunDir, console: Console | None) -> Any:
    from canonml.train.session import train_model

    return train_model(spec, model, data, run_dir, console)


def _evaluate(spec: Spec, model: Any, data: Any) -> dict[str, float]:
    import torch

    from canonml.evaluate.metrics import compute_metrics

    model.eval()
    with torch.no_grad():
        out = model(torch.from_numpy(data.test.x)).numpy()
    assert spec.evaluate.metrics is not None  # filled by the spec's validator
    if spec.task == "classification":
        return compute_metrics(spec.evaluate.metrics, data.test.y, out.argmax(axis=1))
    truth, pred = data.target_values(data.test.y), data.target_values(out[:, 0])
    return compute_metrics(spec.evaluate.metrics, truth.astype(np.float64), pred.astype(np.float64))
