"""``run_compress``: the compression stage — every variant the spec asks for, packaged under
``compressed/<variant>/`` and measured beside the original in ``compression.json``.

Every figure comes from this run on this machine: the ONNX files' sizes (raw and deflated),
non-zero parameters, ONNX Runtime latency at batch 1 and 256 (medians, the variants timed
in turn so drift hits all alike) and the test metric of each graph. A variant that is not
at least 5% smaller or faster than the original on a measure is marked "no gain" there.
"""

from __future__ import annotations

import copy
import json
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from canonml.compress import measure
from canonml.errors import SpecError
from canonml.io import sha256_bytes, stable_json, write_json

if TYPE_CHECKING:
    import torch

    from canonml.data.prepare import Prepared
    from canonml.spec import Spec
    from canonml.tasks.base import Task

FILE = "compression.json"
FOLDER = "compressed"
GAIN = 1.05  # a ratio below this is within noise of the original: "no gain"
ROUNDS = 5  # latency rounds, the variants timed in turn in each


@dataclass
class Variant:
    """One row of the table: its model (None: the graph is the original's, requantised),
    its spec's model section, its graph and what made it."""

    name: str
    method: str
    model: Any
    model_spec: Any
    graph: bytes = b""
    package: Path | None = None
    info: dict[str, Any] | None = None
    metrics: dict[str, float] | None = None


def check_compress(spec: Spec, task: Task, model: torch.nn.Module, data: Prepared) -> None:
    """What ``compress`` needs of the model, checked before anything trains: structured
    pruning of an architecture whose widths the spec lists, a student smaller than its
    teacher."""
    cfg = spec.compress
    if cfg is None:
        return
    from canonml.compress.prune import WIDTH_KEYS
    from canonml.models.summary import count_parameters

    for i, p in enumerate(cfg.prune):
        if p.structured and spec.model.arch not in WIDTH_KEYS:
            raise SpecError(
                f"compress.prune[{i}].structured",
                f"removing units needs a model whose widths the spec lists "
                f"({', '.join(WIDTH_KEYS)}); {spec.model.arch} is not one (use structured: "
                "false)",
            )
    names = cfg.variants
    for name in names:
        if names.count(name) > 1:
            raise SpecError("compress.prune", f"two prunings make the same variant {name}")
    if cfg.distill is not None:
        student = _builder(task, data)(cfg.distill.student)
        small, big = count_parameters(student), count_parameters(model)
        if small >= big:
            raise SpecError(
                "compress.distill.student",
                f"has {small:,} parameters, its teacher {big:,}; a student must be smaller "
                "(fewer or narrower layers)",
            )


def run_compress(
    spec: Spec, task: Task, model: torch.nn.Module, data: Prepared, run_dir: Path
) -> dict[str, Any]:
    """Make, package and measure every variant of ``model`` (whose package is
    ``run_dir/package``); writes ``compression.json`` and returns it."""
    cfg = spec.compress
    assert cfg is not None
    check_compress(spec, task, model, data)
    original = Variant(
        "original",
        "as trained",
        model,
        spec.model,
        (run_dir / "package" / "model.onnx").read_bytes(),
    )
    original.package = run_dir / "package"
    variants = [original]
    build = _builder(task, data)
    for p in cfg.prune:
        variants.append(_pruned(spec, task, model, data, p, build))
    if cfg.quantize is not None:
        variants.append(_quantized(spec, data, original, cfg.quantize))
    if cfg.distill is not None:
        variants += _distilled(spec, task, model, data, build)
    _clear_stale(run_dir / FOLDER, {v.name for v in variants})
    for v in variants[1:]:
        _package(spec, task, data, run_dir, v)
    rows = _measure(spec, task, data, variants, cfg.repeats, cfg.threads)
    result = {
        "cpu": measure.cpu_features(),
        "threads": cfg.threads,
        "repeats": cfg.repeats,
        "batches": list(measure.BATCHES),
        "metric": _headline(spec),
        "variants": rows,
    }
    write_json(run_dir / FILE, result)
    return result


# ---- the variants


def _builder(task: Task, data: Prepared) -> Callable[[Any], torch.nn.Module]:
    from canonml.models import build_model

    io = task.model_io(data.input_shape, data.label_names, data.preprocess)
    return lambda model_spec: build_model(model_spec, io)


def _pruned(spec: Spec, task: Task, model: Any, data: Prepared, p: Any, build: Any) -> Variant:
    import torch

    from canonml.compress.prune import make_permanent, prune_unstructured, pruned_structured

    torch.manual_seed(spec.seed)
    if p.structured:
        model_spec, pruned = pruned_structured(spec.model, model, p.amount, build)
        method = f"structured L1: {p.amount:.0%} of the units and channels of each layer removed"
    else:
        model_spec, pruned = spec.model, prune_unstructured(copy.deepcopy(model), p.amount)
        method = f"global magnitude: {p.amount:.0%} of all weights set to zero"
    if p.epochs > 0:
        _fine_tune(spec, task, pruned, model_spec, data, p.epochs)
        method += f", then {p.epochs} fine-tuning epochs"
    make_permanent(pruned)
    info = {"method": "prune", "amount": p.amount, "structured": p.structured, "epochs": p.epochs}
    return Variant(p.name, method, pruned.eval(), model_spec, info=info)


def _fine_tune(
    spec: Spec, task: Task, model: Any, model_spec: Any, data: Prepared, epochs: int, wrap: Any = ()
) -> list[dict[str, Any]]:
    """Train ``model`` (a variant) for ``epochs`` more, at a tenth of the spec's learning
    rate, without early stopping or a time budget; nothing is written."""
    from canonml.train.session import train_model

    train = spec.train.model_copy(
        update={
            "epochs": epochs,
            "early_stopping": None,
            "max_minutes": None,
            "optimizer": spec.train.optimizer.model_copy(
                update={"lr": spec.train.optimizer.lr / 10}
            ),
        }
    )
    tuned = spec.model_copy(update={"train": train, "model": model_spec})
    history, _ = train_model(tuned, task, model, data, None, wrap=wrap)
    return history


def _quantized(spec: Spec, data: Prepared, original: Variant, q: Any) -> Variant:
    from canonml.compress.quantize import choose_mode, quantize_graph

    mode = choose_mode(q.mode, original.graph)
    calibration = None
    if mode == "static":
        rng = np.random.default_rng(spec.seed)
        rows = np.sort(rng.permutation(len(data.train))[: q.calibration])
        calibration = raw_inputs(data.preprocess, data.train.x[rows])
    graph = quantize_graph(original.graph, mode, calibration)
    method = (
        f"ONNX Runtime static QDQ int8, ranges calibrated on {len(calibration)} training examples"
        if calibration is not None
        else "ONNX Runtime dynamic int8 (dense weights int8, activations at run time)"
    )
    info: dict[str, Any] = {"method": "quantize", "quantized": "int8", "mode": mode}
    if calibration is not None:
        info["calibration_examples"] = len(calibration)
    return Variant("int8", method, original.model, spec.model, graph, info=info)


def _distilled(spec: Spec, task: Task, teacher: Any, data: Prepared, build: Any) -> list[Variant]:
    """The student distilled from ``teacher`` and, for the comparison, the same student
    trained alone on the labels (same seed, same epochs)."""
    import torch

    from canonml.compress.distill import Distillation
    from canonml.train.session import train_model

    assert spec.compress is not None and spec.compress.distill is not None
    d = spec.compress.distill
    train = spec.train.model_copy(update={"epochs": d.epochs or spec.train.epochs})
    student_spec = spec.model_copy(update={"model": d.student, "train": train})

    def distil(step: Any) -> Distillation:
        return Distillation(step, copy.deepcopy(teacher), task, d.temperature, d.alpha)

    runs: list[tuple[str, list[Any], str, dict[str, Any]]] = [
        (
            "distilled",
            [distil],
            f"knowledge distillation: T = {d.temperature:g}, alpha = {d.alpha:g}",
            {"method": "distill", "temperature": d.temperature, "alpha": d.alpha},
        )
    ]
    if d.baseline:
        runs.append(
            (
                "student-alone",
                [],
                "the same student trained alone on the labels (the comparison)",
                {"method": "train", "baseline_for": "distilled"},
            )
        )
    out = []
    for name, wrap, method, info in runs:
        torch.manual_seed(spec.seed)
        student = build(d.student)
        train_model(student_spec, task, student, data, None, wrap=wrap)
        out.append(Variant(name, method, student.eval(), d.student, info=info))
    return out


# ---- packaging


def raw_inputs(state: dict[str, Any], x: np.ndarray) -> np.ndarray:
    """Model inputs ``x`` mapped back to the raw graph inputs (the graph scales them)."""
    from canonml.package.signature import graph_constants

    _, shift, scale = graph_constants({**state, "in_graph": True})
    view = (1, -1, 1, 1) if state["kind"] == "image" else (1, -1)
    raw = x.astype(np.float64) * scale.reshape(view) + shift.reshape(view)
    return np.ascontiguousarray(raw, dtype=np.float32)


def _package(spec: Spec, task: Task, data: Prepared, run_dir: Path, v: Variant) -> None:
    """``compressed/<name>/``: a full package of the variant (spec.yaml with its model
    section, its weights, its graph), made by the package writer from a run-like folder."""
    from canonml.models.weights import weights_bytes
    from canonml.package.reader import MANIFEST
    from canonml.package.writer import package_files, write_files
    from canonml.rundir import RunDir
    from canonml.spec import spec_to_yaml

    folder = run_dir / FOLDER
    work = folder / f".{run_dir.name}-{v.name}"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    try:
        variant_spec = spec.model_copy(update={"model": v.model_spec, "compress": None})
        spec_yaml = spec_to_yaml(variant_spec).encode("utf-8")
        (work / "spec.yaml").write_bytes(spec_yaml)
        (work / "model.safetensors").write_bytes(weights_bytes(v.model, spec_yaml))
        for name in ("data.json", "preprocess.json", "privacy.json"):
            if (run_dir / name).is_file():
                shutil.copyfile(run_dir / name, work / name)
        v.metrics = _metrics(spec, task, data, v)
        write_json(work / "metrics.json", v.metrics)
        files = package_files(RunDir(work))
        manifest = json.loads(files[MANIFEST])
        if v.graph:  # the int8 graph replaces the exported fp32 one
            files["model.onnx"] = v.graph
        else:
            v.graph = files["model.onnx"]
        manifest["compression"] = {**(v.info or {}), "of": run_dir.name, "variant": v.name}
        files["MODEL_CARD.md"] += _card_note(v, run_dir.name).encode("utf-8")
        manifest["files"] = {n: sha256_bytes(b) for n, b in files.items() if n != MANIFEST}
        files[MANIFEST] = stable_json(manifest).encode("utf-8")
        v.package = folder / v.name
        write_files(v.package, files)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _clear_stale(folder: Path, keep: set[str]) -> None:
    """Remove variant packages of an earlier compression that this one does not remake."""
    if not folder.is_dir():
        return
    for old in folder.iterdir():
        if old.is_dir() and old.name not in keep and (old / "canon.json").is_file():
            shutil.rmtree(old)


def _card_note(v: Variant, run_id: str) -> str:
    return (
        f"\n## Compression\n\nThis package is the `{v.name}` variant of run `{run_id}`: "
        f"{v.method}. Its size, speed and test metric beside the original are in the run's "
        f"`{FILE}`.\n"
    )


def _metrics(spec: Spec, task: Task, data: Prepared, v: Variant) -> dict[str, float]:
    """The spec's test metrics of the variant: from its int8 graph where it has one (ONNX
    Runtime), else from its PyTorch model (which the exported graph matches to 1e-4)."""
    names = tuple(spec.evaluate.metrics or ())
    if v.graph:
        outputs = measure.run_graph(
            measure.session(v.graph, 1), raw_inputs(data.preprocess, data.test.x)
        )
        predicted = _graph_task(task).graph_predictions(outputs, data.test, data)
    else:
        predicted = task.predict(v.model, data.test, data)
    return task.score(names, predicted)


# ---- measuring


def _graph_task(task: Task) -> Any:
    """``task`` as the standard-graph task ``compress`` needs (the spec checked it)."""
    from canonml.tasks.base import StandardGraphTask

    assert isinstance(task, StandardGraphTask)
    return task


def _headline(spec: Spec) -> str:
    return spec.task.headline


def _measure(
    spec: Spec, task: Task, data: Prepared, variants: list[Variant], repeats: int, threads: int
) -> list[dict[str, Any]]:
    x = raw_inputs(data.preprocess, data.test.x)
    headline = _headline(spec)
    sessions = [measure.session(v.graph, threads) for v in variants]
    batches = measure.batches_of(x)
    times: dict[tuple[int, int], list[float]] = {}
    for _ in range(ROUNDS):  # in turn, so that a slower moment is shared by every variant
        for i, sess in enumerate(sessions):
            for n, batch in batches.items():
                times.setdefault((i, n), []).append(measure.latency_ms(sess, batch, repeats))
    rows = []
    for i, (v, sess) in enumerate(zip(variants, sessions, strict=True)):
        outputs = measure.run_graph(sess, x)
        predicted = _graph_task(task).graph_predictions(outputs, data.test, data)
        score = task.score((headline,), predicted)
        total, nonzero = measure.parameter_counts(v.model)
        row: dict[str, Any] = {
            "variant": v.name,
            "method": v.method,
            "package": str(v.package.relative_to(v.package.parents[1])) if v.package else None,
            "file_bytes": len(v.graph),
            "zipped_bytes": measure.zipped_size(v.graph),
            "parameters": total,
            "nonzero_parameters": nonzero,
            **{f"latency_ms_b{n}": float(np.median(times[(i, n)])) for n in batches},
            headline: float(score[headline]),
        }
        rows.append(row)
    base = rows[0]
    for row in rows:
        row["gain"] = _gains(base, row)
        row["verdict"] = _verdict(row["gain"]) if row is not base else "the reference"
        row[f"{headline}_change"] = row[headline] - base[headline]
    return rows


def _gains(base: dict[str, Any], row: dict[str, Any]) -> dict[str, float]:
    """Original ÷ variant per measure: above 1 is smaller or faster."""
    keys = ["file_bytes", "zipped_bytes", "nonzero_parameters"] + [
        f"latency_ms_b{n}" for n in measure.BATCHES
    ]
    return {k: float(base[k]) / max(float(row[k]), 1e-12) for k in keys}


def _verdict(gain: dict[str, float]) -> str:
    """What the variant really gains, in words; "no gain" when nothing is ≥ 5% better."""
    words = {
        "file_bytes": "smaller file",
        "zipped_bytes": "smaller zipped",
        "latency_ms_b1": "faster at batch 1",
        "latency_ms_b256": "faster at batch 256",
    }
    found = [f"{gain[k]:.2g}× {w}" for k, w in words.items() if gain[k] >= GAIN]
    return ", ".join(found) if found else "no gain"


def compression_rows(result: dict[str, Any]) -> tuple[list[str], list[list[object]]]:
    """The table of ``compression.json`` for the report and ``canon compress``: headers and
    one row per variant ("no gain" in a cell that is not ≥ 5% better than the original)."""
    metric = result["metric"]
    headers = [
        "variant",
        "file (kB)",
        "zipped (kB)",
        "parameters (non-zero)",
        "latency b1 (ms)",
        "latency b256 (ms)",
        f"test {metric}",
        "verdict",
    ]
    rows: list[list[object]] = []
    for i, r in enumerate(result["variants"]):
        g = r["gain"]

        def mark(key: str, text: str, g: dict[str, float] = g, i: int = i) -> str:
            if i == 0:
                return text
            return f"{text} ({g[key]:.2g}×)" if g[key] >= GAIN else f"{text} (no gain)"

        rows.append(
            [
                r["variant"],
                mark("file_bytes", f"{r['file_bytes'] / 1000:.1f}"),
                mark("zipped_bytes", f"{r['zipped_bytes'] / 1000:.1f}"),
                f"{r['nonzero_parameters']:,} of {r['parameters']:,}",
                mark("latency_ms_b1", f"{r['latency_ms_b1']:.4f}"),
                mark("latency_ms_b256", f"{r['latency_ms_b256']:.3f}"),
                f"{r[metric]:.4f}" + ("" if i == 0 else f" ({r[f'{metric}_change']:+.4f})"),
                r["verdict"],
            ]
        )
    return headers, rows


def compress_run(run_dir: str, settings: dict[str, Any] | None = None) -> dict[str, Any]:
    """``canon compress``: the stage on a finished run — its spec (``compress`` replaced by
    ``settings`` when given; neither: prune 50% and int8), data and final weights."""
    import yaml

    from canonml.data.prepare import prepare
    from canonml.errors import CheckpointError
    from canonml.models.weights import load_trained
    from canonml.rundir import existing_run_dir
    from canonml.spec import load_spec
    from canonml.tasks import get_task

    run = existing_run_dir(run_dir)
    spec = load_spec(run.spec)
    if settings is not None or spec.compress is None:
        chosen = settings if settings is not None else {"prune": [{}], "quantize": {}}
        spec = load_spec(
            run.spec, [f"compress={yaml.safe_dump(chosen, default_flow_style=True).strip()}"]
        )
    task = get_task(spec)
    if not run.weights.is_file() or not (run.path / "package" / "canon.json").is_file():
        raise CheckpointError(
            f"{run.path}: no final weights or package; the run did not finish (use --resume)"
        )
    data, _ = prepare(spec, task)
    io = task.model_io(data.input_shape, data.label_names, data.preprocess)
    blob = run.weights.read_bytes()
    model = load_trained(spec.model, io, blob, str(run.weights), CheckpointError).eval()
    return run_compress(spec, task, model, data, run.path)
