"""``canon search``: hyper-parameter search with Optuna, a driver around ``train_model``
(DESIGN §7) — trials that write nothing but their MLflow child runs, then the best (or a
picked) trial's spec trained as an ordinary run.

The study lives in an SQLite file beside the tracking store (``optuna.db``; Optuna and
MLflow cannot share one file: both keep their schema revision in a table named
``alembic_version``), so a killed search continues where it stopped: running it again loads
the study and runs only the trials still missing.
"""

from __future__ import annotations

import hashlib
import io
import json
import math
import multiprocessing
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

from canonml.errors import CanonError, SpecError
from canonml.spec import Spec, load_spec, spec_to_yaml
from canonml.spec.load import apply_overrides, validate_spec
from canonml.spec.search import MEASURES

if TYPE_CHECKING:
    from canonml.data.prepare import Prepared
    from canonml.tasks.base import Task

STUDY_FILE = "optuna.db"
SEARCH_FILE = "search.json"
PLOTS = {
    "history": "plots/search_history.png",
    "importance": "plots/search_importance.png",
    "pareto": "plots/search_pareto.png",
}


@dataclass
class SearchResult:
    """What ``search`` did: the study, its trials, the chosen trial and the final run."""

    study_name: str
    storage: str
    goals: list[tuple[str, str]]
    trials: list[dict[str, Any]]
    best: list[int]  # the best trial's number, or the Pareto front's
    chosen: int | None
    spec: Spec | None  # the chosen trial's spec (None: several objectives and no --pick)
    spec_file: Path | None
    seconds: float
    run: Any = None  # the final RunResult
    files: dict[str, bytes] = field(default_factory=dict)


def search(
    source: Any,
    out: str | os.PathLike[str] = "runs",
    *,
    overrides: list[str] | None = None,
    jobs: int = 1,
    pick: int | None = None,
    storage: str | None = None,
    final: bool = True,
    console: Any = None,
) -> SearchResult:
    """Run the spec's ``search`` (resuming its study), then train the chosen trial's spec.

    One objective: the best trial is chosen. Several: the Pareto front is reported and only
    ``pick`` (a trial number) is trained. ``jobs`` > 1 runs trials in that many processes
    (one torch thread each) on the shared study.
    """
    started = time.perf_counter()
    spec = load_spec(source, overrides)
    cfg = spec.search
    if cfg is None:
        raise SpecError("search", "the spec has no search section (see canon schema)")
    if jobs < 1:
        raise SpecError("--jobs", f"must be at least 1, got {jobs}")
    check_params(spec)
    try:
        import optuna  # noqa: F401
    except ImportError:
        from canonml.errors import MissingExtraError

        raise MissingExtraError("optuna", "search") from None
    goals = cfg.goals(spec.task.headline, spec.task.maximise)
    if spec.data.split.val <= 0 and any(m.startswith("val_") for m, _ in goals):
        raise SpecError(
            "search.metric",
            f"{goals[0][0]} needs a validation split; set data.split.val (e.g. 0.1)",
        )
    out = Path(out)
    where = storage or study_storage(spec, out)
    name = study_name(spec)
    study = _study(spec, name, where, goals)
    _fail_interrupted(study)
    left = cfg.trials - _finished(study)
    if left > 0:
        if console is not None:
            done = cfg.trials - left
            console.print(f"search: {left} trials to run ({done} done) in study {name} ({where})")
        if jobs == 1:
            _optimize(spec, name, where, goals, left)
        else:
            _parallel(spec, name, where, goals, left, jobs)
    study = _study(spec, name, where, goals)
    result = _result(spec, study, name, where, goals, pick)
    result.files = _report_files(spec, study, result)
    if result.spec is not None:
        folder = out / spec.name
        folder.mkdir(parents=True, exist_ok=True)
        result.spec_file = folder / f"search-{name}-trial-{result.chosen}.yaml"
        from canonml.io import atomic_write

        atomic_write(result.spec_file, spec_to_yaml(result.spec))
    result.seconds = time.perf_counter() - started
    if final and result.spec is not None:
        import canonml

        summary = json.loads(result.files[SEARCH_FILE])
        summary["seconds"] = result.seconds
        result.files[SEARCH_FILE] = json.dumps(summary, indent=2).encode("utf-8")
        result.run = canonml.run(result.spec, out, attach=result.files, console=console)
    return result


# ---- the spec of a trial


def check_params(spec: Spec) -> None:
    """Every ``search.params`` key a spec path, and every end of its range (every choice) a
    value it takes — before any trial trains."""
    assert spec.search is not None
    base = spec.model_dump(mode="json")
    for path, dist in spec.search.params.items():
        probes = dist.choice if dist.choice is not None else list(getattr(dist, dist.kind))
        for value in probes:
            try:
                trial_spec(base, {path: value})
            except SpecError as e:
                text = str(e)
                if any(w in text for w in ("unknown key", "not a known key", "extra")):
                    problem = f"not a spec path ({text}); use a dotted key of canon schema"
                else:
                    problem = f"the value {json.dumps(value)} is not allowed there ({text})"
                raise SpecError(f"search.params.{path}", problem) from None


def trial_spec(base: dict[str, Any], values: dict[str, Any]) -> Spec:
    """The spec ``base`` (a dumped spec) with ``values`` at their dotted paths, without its
    search (a trial does not search)."""
    raw = apply_overrides(base, [f"{p}={json.dumps(v)}" for p, v in values.items()])
    raw.pop("search", None)
    return validate_spec(raw)


def study_name(spec: Spec) -> str:
    """The spec's name and a hash of everything but ``search.trials`` (more trials continue
    the same study)."""
    dumped = spec.model_dump(mode="json")
    dumped["search"].pop("trials", None)
    digest = hashlib.sha256(json.dumps(dumped, sort_keys=True).encode()).hexdigest()[:8]
    return f"{spec.name}-{digest}"


def study_storage(spec: Spec, out: Path) -> str:
    """``sqlite:///…/optuna.db`` beside the tracking store's SQLite file, else in ``out``."""
    from canonml.spec.track import tracking_uri
    from canonml.track.store import SQLITE, resolve_uri, sqlite_path

    folder = out
    if spec.track:
        path = sqlite_path(resolve_uri(tracking_uri(spec.track.uri), Path.cwd()))
        if path is not None:
            folder = path.parent
    folder.mkdir(parents=True, exist_ok=True)
    return SQLITE + str((folder / STUDY_FILE).resolve())


# ---- the study


def _study(spec: Spec, name: str, storage: str, goals: list[tuple[str, str]]) -> Any:
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    cfg = spec.search
    assert cfg is not None
    seed = spec.seed
    sampler: Any
    if cfg.sampler == "random":
        sampler = optuna.samplers.RandomSampler(seed=seed)
    else:
        sampler = optuna.samplers.TPESampler(
            seed=seed, n_startup_trials=cfg.startup_trials, multivariate=len(goals) == 1
        )
    pruner: Any = optuna.pruners.NopPruner()
    kind = cfg.pruner if cfg.pruner != "auto" else ("median" if len(goals) == 1 else "none")
    if kind == "median":
        pruner = optuna.pruners.MedianPruner(
            n_startup_trials=cfg.startup_trials, n_warmup_steps=cfg.warmup_epochs
        )
    elif kind == "hyperband":
        pruner = optuna.pruners.HyperbandPruner(min_resource=max(1, cfg.warmup_epochs))
    try:
        return optuna.create_study(
            study_name=name,
            storage=storage,
            sampler=sampler,
            pruner=pruner,
            directions=cast(Any, [d for _, d in goals]),
            load_if_exists=True,
        )
    except (optuna.exceptions.OptunaError, RuntimeError, ValueError) as e:
        raise CanonError(f"search: the study store {storage} cannot be used ({e})") from None


def _finished(study: Any) -> int:
    from optuna.trial import TrialState

    return len(study.get_trials(deepcopy=False, states=(TrialState.COMPLETE, TrialState.PRUNED)))


def _fail_interrupted(study: Any) -> None:
    """Trials left RUNNING by a killed search are marked failed (they are run again)."""
    from optuna.trial import TrialState

    for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        study._storage.set_trial_state_values(t._trial_id, state=TrialState.FAIL)


def _optimize(spec: Spec, name: str, storage: str, goals: list[tuple[str, str]], n: int) -> None:
    """Run ``n`` more finished trials of the study in this process."""
    import optuna

    from canonml.errors import TrainingDiverged

    study = _study(spec, name, storage, goals)
    objective = Objective(spec, goals, name)
    target = _finished(study) + n

    def enough(study: Any, _trial: Any) -> None:
        if _finished(study) >= target:
            study.stop()

    while _finished(study) < target:
        study.optimize(
            objective,
            n_trials=target - _finished(study),
            catch=(TrainingDiverged,),
            callbacks=[enough],
        )
        if (
            all(t.state == optuna.trial.TrialState.FAIL for t in study.trials[-3:])
            and len(study.trials) >= 3
        ):
            raise CanonError("search: the last 3 trials failed; see the warnings above")
    objective.close()


def _worker(spec_json: str, name: str, storage: str, goals: list[tuple[str, str]], n: int) -> None:
    import torch

    torch.set_num_threads(1)
    _optimize(load_spec(json.loads(spec_json)), name, storage, goals, n)


def _parallel(
    spec: Spec, name: str, storage: str, goals: list[tuple[str, str]], n: int, jobs: int
) -> None:
    """``n`` trials shared by ``jobs`` processes on the same study (spawned: no forked
    torch state), each with one torch thread."""
    ctx = multiprocessing.get_context("spawn")
    shares = [n // jobs + (1 if i < n % jobs else 0) for i in range(jobs)]
    payload = json.dumps(spec.model_dump(mode="json"))
    procs = [
        ctx.Process(target=_worker, args=(payload, name, storage, goals, k), daemon=False)
        for k in shares
        if k > 0
    ]
    for p in procs:
        p.start()
    for p in procs:
        p.join()
    bad = [p.exitcode for p in procs if p.exitcode != 0]
    if bad:
        raise CanonError(
            f"search: {len(bad)} of {len(procs)} worker processes failed (exit {bad[0]})"
        )


class Objective:
    """One trial: the sampled spec trained with ``train_model`` (nothing written), scored by
    the goals; its per-epoch metric reported to the pruner; an MLflow child run."""

    def __init__(self, spec: Spec, goals: list[tuple[str, str]], name: str) -> None:
        from canonml.data.prepare import load_data, split_loaded
        from canonml.tasks import get_task

        self.spec, self.goals, self.name = spec, goals, name
        self.base = spec.model_dump(mode="json")
        self.task = get_task(spec)
        self.loaded = load_data(spec, self.task)
        self.data, _ = split_loaded(spec, self.loaded, self.task)
        self.tracker = _Tracking(spec, name)

    def __call__(self, trial: Any) -> Any:
        import torch

        from canonml.models import build_model
        from canonml.train.session import train_model

        assert self.spec.search is not None
        values = {p: _suggest(trial, p, d) for p, d in self.spec.search.params.items()}
        tspec = trial_spec(self.base, values)
        data = self.data
        if any(p.startswith("data.") for p in values):
            from canonml.data.prepare import load_data, split_loaded

            data, _ = split_loaded(tspec, load_data(tspec, self.task), self.task)
        torch.manual_seed(tspec.seed)
        io = self.task.model_io(data.input_shape, data.label_names, data.preprocess)
        model = build_model(tspec.model, io)
        metric, direction = self.goals[0]
        prune = len(self.goals) == 1
        wrap = [lambda step: _report(trial, metric, prune)]
        started = time.perf_counter()
        try:
            history, kept = train_model(tspec, self.task, model, data, None, wrap=wrap)
        except BaseException as e:
            import optuna

            state = "PRUNED" if isinstance(e, optuna.TrialPruned) else "FAILED"
            self.tracker.trial(trial.number, values, {}, state, time.perf_counter() - started)
            raise
        # Scored where the model ends: the last epoch, or the best one early stopping kept.
        ending = history[(kept or len(history)) - 1] if history else {}
        scores = [_score(m, d, ending, model, self.task, data, tspec) for m, d in self.goals]
        trial.set_user_attr("epochs", len(history))
        self.tracker.trial(
            trial.number,
            values,
            {m: s for (m, _), s in zip(self.goals, scores, strict=True)},
            "FINISHED",
            time.perf_counter() - started,
            history,
        )
        return scores[0] if len(scores) == 1 else scores

    def close(self) -> None:
        self.tracker.close()


def _suggest(trial: Any, path: str, dist: Any) -> Any:
    if dist.loguniform is not None:
        return trial.suggest_float(path, *dist.loguniform, log=True)
    if dist.uniform is not None:
        return trial.suggest_float(path, *dist.uniform)
    if dist.int is not None:
        return trial.suggest_int(path, *dist.int)
    # Optuna's choices are scalars: a list (hidden: [256, 128]) is chosen by its JSON text.
    return json.loads(trial.suggest_categorical(path, [json.dumps(c) for c in dist.choice]))


def _report(trial: Any, metric: str, prune: bool) -> Any:
    """A training callback: the trial's metric per epoch to Optuna, and pruning."""
    import optuna

    from canonml.train.callbacks import Callback

    class Report(Callback):
        def on_epoch_end(self, state: Any, logs: dict[str, Any]) -> None:
            if metric not in logs:
                if metric in MEASURES:
                    return
                logged = ", ".join(k for k in logs if k not in ("epoch", "seconds"))
                raise SpecError(
                    "search.metric", f"{metric} is not logged by this run; logged: {logged}"
                )
            if not prune:
                return
            trial.report(float(logs[metric]), step=int(logs["epoch"]))
            if trial.should_prune():
                raise optuna.TrialPruned()

    return Report()


def _score(
    metric: str,
    direction: str,
    ending: dict[str, Any],
    model: Any,
    task: Task,
    data: Prepared,
    spec: Spec,
) -> float:
    """A trained trial's value of ``metric``: logged at the epoch whose weights it ends
    with (``ending``), or the batch-1 latency (ms) of its exported ONNX graph, or its
    parameter count."""
    if metric == "parameters":
        from canonml.models.summary import count_parameters

        return float(count_parameters(model))
    if metric == "latency_ms":
        return _latency(model, task, data, spec)
    value = float(ending.get(metric, math.nan))
    if not math.isfinite(value):  # a diverged trial: the worst value there is
        return -math.inf if direction == "maximize" else math.inf
    return value


def _latency(model: Any, task: Task, data: Prepared, spec: Spec) -> float:
    from canonml.compress import measure
    from canonml.compress.stage import raw_inputs
    from canonml.package.export import export_onnx
    from canonml.package.signature import build_signature

    signature = task.signature_for(
        build_signature(task, data.describe(), data.preprocess), spec.model_dump(mode="json")
    )
    graph = export_onnx(model.eval(), signature, task)
    x = raw_inputs(data.preprocess, (data.val if len(data.val) else data.train).x[:1])
    return measure.latency_ms(measure.session(graph, 1), x, 200)


class _Tracking:
    """The study as an MLflow parent run and each trial as a child run (``track: false``:
    nothing)."""

    def __init__(self, spec: Spec, name: str) -> None:
        self.client = self.parent = None
        if not spec.track:
            return
        try:
            from mlflow.tracking import MlflowClient

            from canonml.spec.track import experiment_name, tracking_uri
            from canonml.track.store import mlflow_warnings_ignored, quiet_logs, resolve_uri

            quiet_logs()
            with mlflow_warnings_ignored():
                self.client = MlflowClient(
                    tracking_uri=resolve_uri(tracking_uri(spec.track.uri), Path.cwd())
                )
                exp_name = experiment_name(spec.track.experiment)
                exp = self.client.get_experiment_by_name(exp_name)
                exp_id = exp.experiment_id if exp else self.client.create_experiment(exp_name)
                found = self.client.search_runs(
                    [exp_id], f"tags.canon_study = '{name}'", max_results=1
                )
                self.parent = (
                    found[0].info.run_id
                    if found
                    else self.client.create_run(
                        exp_id, run_name=f"{name} (search)", tags={"canon_study": name}
                    ).info.run_id
                )
                self.exp_id = exp_id
        except Exception as e:  # tracking must not stop a search
            print(
                "warning: search: trials are not tracked "
                f"({type(e).__name__}: {str(e).splitlines()[0][:200]})"
            )
            self.client = None

    def trial(
        self,
        number: int,
        params: dict[str, Any],
        metrics: dict[str, float],
        status: str,
        seconds: float,
        history: list[dict[str, Any]] | None = None,
    ) -> None:
        if self.client is None:
            return
        from mlflow.entities import Metric, Param

        from canonml.track.store import mlflow_warnings_ignored

        try:
            with mlflow_warnings_ignored():
                run = self.client.create_run(
                    self.exp_id,
                    run_name=f"trial {number}",
                    tags={"mlflow.parentRunId": self.parent, "canon_study_trial": str(number)},
                )
                now = int(time.time() * 1000)
                rows = [
                    Metric(k, float(v), now, 0)
                    for k, v in metrics.items()
                    if isinstance(v, int | float) and math.isfinite(v)
                ]
                for h in history or []:
                    rows += [
                        Metric(k, float(v), now, int(h["epoch"]))
                        for k, v in h.items()
                        if k not in ("epoch",) and isinstance(v, int | float)
                    ]
                rows.append(Metric("seconds", seconds, now, 0))
                self.client.log_batch(
                    run.info.run_id,
                    metrics=rows[:1000],
                    params=[Param(k, json.dumps(v)[:500]) for k, v in params.items()],
                )
                self.client.set_terminated(
                    run.info.run_id,
                    status="FINISHED"
                    if status == "FINISHED"
                    else "KILLED"
                    if status == "PRUNED"
                    else "FAILED",
                )
        except Exception as e:
            print(f"warning: search: trial {number} not tracked ({type(e).__name__})")

    def close(self) -> None:
        if self.client is not None and self.parent is not None:
            try:
                self.client.set_terminated(self.parent, status="FINISHED")
            except Exception:
                pass


# ---- the result


def _result(
    spec: Spec, study: Any, name: str, storage: str, goals: list[tuple[str, str]], pick: int | None
) -> SearchResult:
    from optuna.trial import TrialState

    trials = []
    for t in study.get_trials(deepcopy=False):
        trials.append(
            {
                "number": t.number,
                "state": t.state.name,
                "values": list(t.values) if t.values is not None else None,
                "params": {
                    p: (json.loads(v) if isinstance(v, str) and v[:1] in "[{" else v)
                    for p, v in t.params.items()
                },
                "epochs": t.user_attrs.get("epochs", len(t.intermediate_values) or None),
                "seconds": t.duration.total_seconds() if t.duration else None,
            }
        )
    complete = [t for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))]
    if not complete:
        raise CanonError(
            "search: no trial finished (every one failed or was pruned); widen search.params"
        )
    best = [t.number for t in study.best_trials] if len(goals) > 1 else [study.best_trial.number]
    chosen = pick if pick is not None else (best[0] if len(goals) == 1 else None)
    chosen_spec = None
    if chosen is not None:
        by_number = {t.number: t for t in complete}
        if chosen not in by_number:
            raise SpecError(
                "--pick", f"trial {chosen} did not finish; finished: {sorted(by_number)[:20]}"
            )
        values = {p: _param_value(spec, p, v) for p, v in by_number[chosen].params.items()}
        chosen_spec = trial_spec(spec.model_dump(mode="json"), values)
    return SearchResult(name, storage, goals, trials, best, chosen, chosen_spec, None, 0.0)


def _param_value(spec: Spec, path: str, value: Any) -> Any:
    assert spec.search is not None
    dist = spec.search.params[path]
    return json.loads(value) if dist.choice is not None else value


def _report_files(spec: Spec, study: Any, result: SearchResult) -> dict[str, bytes]:
    """``search.json`` and the plots, for the final run's directory (its report shows them)."""
    plots: dict[str, str] = {}
    summary: dict[str, Any] = {
        "study": result.study_name,
        "storage": result.storage,
        "objectives": [{"metric": m, "direction": d} for m, d in result.goals],
        "trials": result.trials,
        "best": result.best,
        "chosen": result.chosen,
        "counts": {
            s: sum(t["state"] == s for t in result.trials) for s in ("COMPLETE", "PRUNED", "FAIL")
        },
        "plots": plots,
    }
    files: dict[str, bytes] = {}
    for key, make in _plots(study, result).items():
        files[PLOTS[key]] = make
        plots[key] = PLOTS[key]
    files[SEARCH_FILE] = json.dumps(summary, indent=2).encode("utf-8")
    return files


def _plots(study: Any, result: SearchResult) -> dict[str, bytes]:
    import warnings

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from optuna.visualization import matplotlib as ovm

    names = [m for m, _ in result.goals]
    first = None if len(names) == 1 else (lambda t: t.values[0])
    makers: dict[str, Callable[[], Any]] = {
        "history": lambda: ovm.plot_optimization_history(study, target=first, target_name=names[0]),
        "importance": lambda: ovm.plot_param_importances(study, target=first, target_name=names[0]),
    }
    if len(names) > 1:
        makers["pareto"] = lambda: ovm.plot_pareto_front(study, target_names=names)
    out = {}
    for key, make in makers.items():
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            try:
                ax = make()
            except Exception:  # too few finished trials for importances, say
                continue
        fig = ax.figure if hasattr(ax, "figure") else ax
        buf = io.BytesIO()
        fig.set_size_inches(7, 4.5)
        fig.tight_layout()
        fig.savefig(buf, format="png", dpi=96)
        plt.close(fig)
        out[key] = buf.getvalue()
    return out
