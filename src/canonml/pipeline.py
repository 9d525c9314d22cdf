"""``run``: the whole life of one spec, top to bottom — data → model → train → evaluate →
report → package, tracked."""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rich.console import Console

from canonml.errors import CheckpointError
from canonml.io import atomic_write, write_json
from canonml.package import write_package
from canonml.rundir import RunDir, existing_run_dir, new_run_dir
from canonml.spec import Spec, load_spec, spec_to_yaml
from canonml.track import make_tracker, run_record

if TYPE_CHECKING:
    import torch

    from canonml.data.prepare import Loaded, Prepared
    from canonml.evaluate.evaluation import Evaluation


@dataclass
class RunResult:
    """What a finished run produced."""

    run_dir: Path
    metrics: dict[str, float]
    history: list[dict[str, float]]
    spec: Spec
    evaluation: Evaluation | None = None
    fingerprint: str = ""
    tracking_warning: str | None = None  # one line when the run could not be recorded
    tracking_run_id: str | None = None  # the MLflow run id


def run(
    spec: str | os.PathLike[str] | dict[str, Any] | Spec | None = None,
    out: str | os.PathLike[str] = "runs",
    *,
    overrides: list[str] | None = None,
    resume: str | os.PathLike[str] | None = None,
    console: Console | None = None,
) -> RunResult:
    """Run every section of ``spec``; with ``resume``, continue that run from its checkpoint.

    ``console`` receives progress (None: quiet). Raises ``CanonError`` on bad input; a bad
    spec or data set fails before the run directory is created.
    """
    started = time.perf_counter()
    run_dir = existing_run_dir(resume) if resume is not None else None
    resolved = _resolve(spec, overrides, run_dir)
    tracker = make_tracker(resolved.track)
    tracker.start(resolved.name)  # MLflow loads in a worker process while this one trains
    try:
        result = _run(resolved, run_dir, out, console, started)
    except BaseException as e:
        tracker.abort("KILLED" if isinstance(e, KeyboardInterrupt) else "FAILED")
        raise
    record = run_record(
        resolved.model_dump(mode="json"),
        result.run_dir,
        result.history,
        result.metrics,
        fingerprint=result.fingerprint,
    )
    result.tracking_warning = tracker.finish(record)
    result.tracking_run_id = tracker.run_id
    return result


def _run(
    spec: Spec, run_dir: RunDir | None, out: Any, console: Console | None, started: float
) -> RunResult:
    import torch

    from canonml.data.prepare import load_data
    from canonml.models import build_model

    loaded = load_data(spec)
    data, pool = split_data(spec, loaded)
    torch.manual_seed(spec.seed)
    model = build_model(spec.model, data.input_shape, data.n_outputs)
    with _threads(spec, model, data):
        if run_dir is None:
            run_dir = new_run_dir(out, spec.name)
        _write_inputs(run_dir, spec, data)
        history, best_epoch = _train(spec, model, data, run_dir, console)
        evaluation = _evaluate(spec, model, data, loaded, pool)
    write_json(run_dir.path / "evaluation.json", evaluation.summary())
    write_json(run_dir.metrics, evaluation.selected)
    _report(spec, run_dir, data, model, history, best_epoch, evaluation, started)
    write_package(run_dir.path)
    return RunResult(
        run_dir.path, evaluation.selected, history, spec, evaluation, fingerprint=data.fingerprint
    )


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


def split_data(spec: Spec, loaded: Loaded) -> tuple[Prepared, Any]:
    """The seeded train/val/test split; also the train+val rows for cross-validation."""
    import numpy as np

    from canonml.data.prepare import build_splits
    from canonml.data.split import split_indices

    raw = loaded.raw
    has_test = loaded.official_test is not None
    strata = raw.y if spec.task == "classification" else None
    tr, va, te = split_indices(len(raw), strata, spec.data.split, spec.seed, has_test=has_test)
    test = loaded.official_test if has_test else raw.take(te)
    data = build_splits(spec, loaded, raw.take(tr), raw.take(va), test)  # type: ignore[arg-type]
    return data, np.sort(np.concatenate([tr, va]))


@contextlib.contextmanager
def _threads(spec: Spec, model: torch.nn.Module, data: Prepared) -> Iterator[int]:
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


def _write_inputs(run_dir: RunDir, spec: Spec, data: Prepared) -> None:
    atomic_write(run_dir.spec, spec_to_yaml(spec))
    write_json(run_dir.data, data.describe())
    write_json(run_dir.preprocess, data.preprocess)


def _train(
    spec: Spec, model: torch.nn.Module, data: Prepared, run_dir: RunDir, console: Console | None
) -> tuple[list[dict[str, Any]], int | None]:
    """Train (or finish training), then keep the final weights as ``model.safetensors``."""
    from safetensors.torch import save

    from canonml.train.session import train_model

    history, best_epoch = train_model(spec, model, data, run_dir, console)
    weights = {k: v.contiguous() for k, v in model.state_dict().items()}
    atomic_write(run_dir.weights, save(weights))
    return history, best_epoch


def _evaluate(
    spec: Spec, model: torch.nn.Module, data: Prepared, loaded: Loaded, pool: Any
) -> Evaluation:
    from canonml.evaluate.cv import cross_validate
    from canonml.evaluate.evaluate import evaluate_model

    evaluation = evaluate_model(spec, model, data)
    if spec.evaluate.cv:
        evaluation.cv = cross_validate(spec, loaded, pool)
    return evaluation


def _report(
    spec: Spec,
    run_dir: RunDir,
    data: Prepared,
    model: torch.nn.Module,
    history: list[dict[str, Any]],
    best_epoch: int | None,
    evaluation: Evaluation,
    started: float,
) -> None:
    """Plots to ``plots/`` and the self-contained ``report.html``."""
    import torch

    from canonml.evaluate.report import ReportContext, make_plots, write_report
    from canonml.models.summary import count_parameters, summarize

    stopping = spec.train.early_stopping
    ctx = ReportContext(
        spec=spec,
        run_dir=run_dir.path,
        data=data.describe(),
        preprocess=data.preprocess,
        history=history,
        evaluation=evaluation,
        model_rows=summarize(model, torch.from_numpy(data.train.x[:1])),
        param_count=count_parameters(model),
        seconds=time.perf_counter() - started,
        best_epoch=best_epoch,
        monitor=stopping.monitor if stopping else "val_loss",
    )
    make_plots(ctx)
    write_report(ctx)
