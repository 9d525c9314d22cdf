"""``run``: the whole life of one spec, top to bottom — data → model → train → evaluate →
report → package, tracked."""

from __future__ import annotations

import contextlib
import json
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rich.console import Console

from canonml.errors import CheckpointError
from canonml.evaluate.painter import Painter
from canonml.io import atomic_write, write_json
from canonml.package import write_package
from canonml.rundir import RunDir, existing_run_dir, new_run_dir
from canonml.spec import Spec, load_spec, spec_to_yaml
from canonml.tasks import get_task
from canonml.track import Tracker, make_tracker, run_record
from canonml.track.model import input_example
from canonml.track.record import model_message

if TYPE_CHECKING:
    import torch

    from canonml.data.prepare import Loaded, Prepared
    from canonml.evaluate.evaluation import Evaluation
    from canonml.tasks.base import Task


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
    tracking_model_id: str | None = None  # the MLflow logged model (runs:/<run id>/model)
    tracking_uri: str | None = None  # where the run was recorded
    tracking_experiment: str | None = None
    # Wall seconds per phase: data, train, evaluate, package, report, tracking.
    phases: dict[str, float] = field(default_factory=dict)


def run(
    spec: str | os.PathLike[str] | dict[str, Any] | Spec | None = None,
    out: str | os.PathLike[str] = "runs",
    *,
    overrides: list[str] | None = None,
    resume: str | os.PathLike[str] | None = None,
    console: Console | None = None,
    attach: dict[str, bytes] | None = None,
) -> RunResult:
    """Run every section of ``spec``; with ``resume``, continue that run from its checkpoint.

    ``console`` receives progress (None: quiet). ``attach``: files a driver puts into the
    run directory before training (``canon search``: the study's summary and plots, which
    the report shows). Raises ``CanonError`` on bad input; a bad spec or data set fails
    before the run directory is created.
    """
    from canonml.train.distributed import is_follower

    started = time.perf_counter()
    run_dir = existing_run_dir(resume) if resume is not None else None
    resolved = _resolve(spec, overrides, run_dir)
    if is_follower():  # another rank of ``canon run --nproc``: it trains, rank 0 writes
        return _follow(resolved, run_dir)
    tracker = make_tracker(resolved.track)
    tracker.start(resolved.name)  # MLflow loads in a worker process while this one trains
    painter = Painter()  # so will matplotlib, in another, for the plots
    phases: dict[str, float] = {}
    try:
        result = _run(resolved, run_dir, out, console, started, tracker, phases, painter, attach)
    except BaseException as e:
        tracker.abort("KILLED" if isinstance(e, KeyboardInterrupt) else "FAILED")
        raise
    finally:
        painter.close()
    record = run_record(
        resolved.model_dump(mode="json"),
        result.run_dir,
        result.history,
        result.metrics,
        fingerprint=result.fingerprint,
    )
    with _phase(phases, "tracking"):  # what is left once the worker gets the last line
        result.tracking_warning = tracker.finish(record)
    result.phases = phases
    result.tracking_run_id, result.tracking_model_id = tracker.run_id, tracker.model_id
    if resolved.track:
        result.tracking_uri, result.tracking_experiment = tracker.uri, tracker.experiment
    return result


def _run(
    spec: Spec,
    run_dir: RunDir | None,
    out: Any,
    console: Console | None,
    started: float,
    tracker: Tracker,
    phases: dict[str, float],
    painter: Painter,
    attach: dict[str, bytes] | None = None,
) -> RunResult:
    task = get_task(spec)
    with _phase(phases, "data"):
        loaded, data, pool, model = _prepare(spec, task)
        check_stages(spec, task, model, data)
    painter.start()  # now: the tracking worker has done its imports; the model trains next
    with _threads(spec, task, model, data):
        if run_dir is None:
            run_dir = new_run_dir(out, spec.name)
        from canonml.train.distributed import announce

        announce(run_dir.path)
        _write_inputs(run_dir, spec, data)
        for name, content in (attach or {}).items():
            (run_dir.path / name).parent.mkdir(parents=True, exist_ok=True)
            atomic_write(run_dir.path / name, content)
        try:
            with _phase(phases, "train"):
                history, best_epoch = _train(spec, task, model, data, run_dir, console)
        except KeyboardInterrupt as e:
            if run_dir.last_checkpoint.is_file():  # the CLI says how to continue
                e.add_note(f"run directory: {run_dir.path}")
            raise
        with _phase(phases, "evaluate"):
            evaluation = _evaluate(spec, task, model, data, loaded, pool, len(history))
        with _phase(phases, "stages"):
            post_training(spec, task, model, data, run_dir.path)
    write_json(run_dir.path / "evaluation.json", evaluation.summary())
    write_json(run_dir.metrics, evaluation.selected)
    with _phase(phases, "package"):
        package = write_package(run_dir.path)
    if spec.compress is not None:
        with _phase(phases, "compress"), _threads(spec, task, model, data):
            from canonml.compress.stage import run_compress

            run_compress(spec, task, model, data, run_dir.path)
    # The tracking worker logs the package as an MLflow model while this process reports.
    example = input_example(data.preprocess, data.test.x) if len(data.test) else None
    register = spec.track.register if spec.track else None
    tracker.package_ready(model_message(package, example, register))
    with _phase(phases, "report"):
        _report(spec, task, run_dir, data, model, history, best_epoch, evaluation, started, painter)
    return RunResult(
        run_dir.path, evaluation.selected, history, spec, evaluation, fingerprint=data.fingerprint
    )


def _prepare(spec: Spec, task: Task) -> tuple[Loaded, Prepared, Any, torch.nn.Module]:
    """The data (loaded, split and preprocessed), checked against what training needs, and
    the model built from the seed."""
    import torch

    from canonml.data.prepare import load_data, split_loaded
    from canonml.models import build_model
    from canonml.train.session import check_wrappers

    loaded = load_data(spec, task)
    data, pool = split_loaded(spec, loaded, task)
    check_wrappers(spec, data)
    torch.manual_seed(spec.seed)
    model = build_model(
        spec.model, task.model_io(data.input_shape, data.label_names, data.preprocess)
    )
    return loaded, data, pool, model


def _follow(spec: Spec, run_dir: RunDir | None) -> RunResult:
    """A rank other than 0 of a distributed run: the same data and model, trained in step
    with rank 0 (resuming from ``run_dir``'s checkpoint), and nothing written."""
    from canonml.train.session import train_model

    task = get_task(spec)
    _, data, _, model = _prepare(spec, task)
    with _threads(spec, task, model, data), _process_group(spec):
        history, _ = train_model(spec, task, model, data, run_dir, None)
    return RunResult(run_dir.path if run_dir else Path(), {}, history, spec)


@contextlib.contextmanager
def _process_group(spec: Spec) -> Iterator[None]:
    from canonml.train.device import resolve_device
    from canonml.train.distributed import place, process_group

    with process_group(place(resolve_device(spec.train.device))):
        yield


# Where a run trains and how often it saves are not what it trains: a resumed run may
# move to another device or checkpoint at another interval.
PLACEMENT = ("train.device", "train.checkpoint_interval")


def resolve_spec(
    spec: Any, overrides: list[str] | None, resume: str | os.PathLike[str] | None
) -> Spec:
    """The spec ``run`` would train: ``spec`` with ``overrides``, or a resumed run's own."""
    return _resolve(spec, overrides, existing_run_dir(resume) if resume is not None else None)


def _resolve(spec: Any, overrides: list[str] | None, run_dir: RunDir | None) -> Spec:
    if run_dir is None:
        if spec is None:
            raise CheckpointError("nothing to run: give a spec, a template or --resume RUN_DIR")
        return load_spec(spec, overrides)
    saved = load_spec(run_dir.spec)
    placement = [o for o in overrides or [] if o.split("=", 1)[0].strip() in PLACEMENT]
    if spec is None:
        others = [o for o in overrides or [] if o not in placement]
        if others:
            raise CheckpointError(
                f"--resume {run_dir.path}: --set {others[0]} would change the run's spec; "
                f"only {', '.join(PLACEMENT)} may change on resume"
            )
        return load_spec(saved.model_dump(mode="json"), placement) if placement else saved
    given = load_spec(spec, overrides)
    if _identity(given) != _identity(saved):
        raise CheckpointError(
            f"--resume {run_dir.path}: the spec differs from the run's spec.yaml; resume with "
            "the same spec (or give only --resume)"
        )
    return given


def _identity(spec: Spec) -> str:
    """The spec without its placement keys: what must match for a run to be resumed."""
    dumped = spec.model_dump(mode="json")
    for key in PLACEMENT:
        section, name = key.split(".")
        dumped[section].pop(name, None)
    return json.dumps(dumped, sort_keys=True)


@contextlib.contextmanager
def _phase(phases: dict[str, float], name: str) -> Iterator[None]:
    start = time.perf_counter()
    try:
        yield
    finally:
        phases[name] = phases.get(name, 0.0) + time.perf_counter() - start


@contextlib.contextmanager
def _threads(spec: Spec, task: Task, model: torch.nn.Module, data: Prepared) -> Iterator[int]:
    import torch

    from canonml.train.threads import choose_threads

    sample = task.example(data.train, model)
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
    for name, content in data.files.items():  # learned artefacts: a text's tokenizer.json
        atomic_write(run_dir.path / name, content)


def _train(
    spec: Spec,
    task: Task,
    model: torch.nn.Module,
    data: Prepared,
    run_dir: RunDir,
    console: Console | None,
) -> tuple[list[dict[str, Any]], int | None]:
    """Train (or finish training), then keep the final weights as ``model.safetensors``."""
    from canonml.models.weights import weights_bytes
    from canonml.train.session import train_model

    with _process_group(spec):
        history, best_epoch = train_model(spec, task, model, data, run_dir, console)
    atomic_write(run_dir.weights, weights_bytes(model, run_dir.spec.read_bytes()))
    return history, best_epoch


def _evaluate(
    spec: Spec,
    task: Task,
    model: torch.nn.Module,
    data: Prepared,
    loaded: Loaded,
    pool: Any,
    epochs: int,
) -> Evaluation:
    from canonml.evaluate.cv import cross_validate
    from canonml.evaluate.evaluate import evaluate_model

    evaluation = evaluate_model(spec, task, model, data)
    # What a training wrapper measured of the run (privacy.dp: the ε spent and how).
    evaluation.selected |= data.info.get("run_metrics", {})
    if spec.evaluate.cv:
        evaluation.cv = cross_validate(spec, task, loaded, pool)
    if spec.evaluate.baselines:
        from canonml.evaluate.baselines import run_baselines

        accuracy = evaluation.metrics["accuracy"]
        details = evaluation.extra.setdefault("details", {})
        details["baselines"] = run_baselines(spec, task, data, loaded, accuracy, epochs)
    return evaluation


def check_stages(spec: Spec, task: Task, model: torch.nn.Module, data: Prepared) -> None:
    """What the post-training stages need of the model, checked before training
    (``compress``: a structured pruning the architecture allows, a smaller student)."""
    if spec.compress is not None:
        from canonml.compress.stage import check_compress

        check_compress(spec, task, model, data)


def post_training(
    spec: Spec, task: Task, model: torch.nn.Module, data: Prepared, run_dir: Path
) -> None:
    """The post-training stages the spec asks for (DESIGN §7); each writes its own file,
    which its report section reads: ``explain`` (attributions and their checks), ``audit``
    (membership inference)."""
    if spec.explain is not None:
        from canonml.evaluate.explain import run_explain

        run_explain(spec, task, model, data, run_dir)
    if spec.audit is not None:
        from canonml.evaluate.audit import run_audit

        run_audit(spec, task, model, data, run_dir)


def _report(
    spec: Spec,
    task: Task,
    run_dir: RunDir,
    data: Prepared,
    model: torch.nn.Module,
    history: list[dict[str, Any]],
    best_epoch: int | None,
    evaluation: Evaluation,
    started: float,
    painter: Painter,
) -> None:
    """Plots to ``plots/`` and the self-contained ``report.html``."""

    from canonml.evaluate.report import ReportContext, make_plots, write_report
    from canonml.models.summary import count_parameters

    stopping = spec.train.early_stopping
    ctx = ReportContext(
        spec=spec,
        run_dir=run_dir.path,
        data=data.describe(),
        preprocess=data.preprocess,
        history=history,
        evaluation=evaluation,
        model_rows=task.summary(model, data.train),
        param_count=count_parameters(model),
        seconds=time.perf_counter() - started,
        best_epoch=best_epoch,
        monitor=stopping.monitor if stopping else "val_loss",
    )
    make_plots(ctx, task, painter)
    write_report(ctx)
