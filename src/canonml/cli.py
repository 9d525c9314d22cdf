"""The ``canon`` command: parse → call one library function → print. CanonError → exit 2."""

from __future__ import annotations

import json
import os
import sys
import warnings
from pathlib import Path
from typing import Annotated, Any, NoReturn

import typer
from rich.console import Console
from rich.table import Table

from canonml.errors import CanonError, CanonWarning

EXIT_CODES = (
    "Exit codes: 0 success; 1 canon verify found problems, or a process of a --nproc run "
    "died; 2 bad input (a wrong spec value, a missing or malformed file, a bad option); "
    "130 interrupted (Ctrl-C)."
)
app = typer.Typer(
    name="canon",
    help="canonml: one declarative spec for the whole life of a deep-learning model.\n\n"
    "Example: canon run --template digits-mlp",
    epilog=EXIT_CODES,
    no_args_is_help=True,
    add_completion=True,  # --install-completion / --show-completion for bash, zsh, fish
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)
out = Console(highlight=False, soft_wrap=True)
err = Console(stderr=True, highlight=False, soft_wrap=True)


def _version(value: bool) -> None:
    if value:
        from canonml._version import __version__

        out.print(f"canon (canonml) {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        bool,
        typer.Option(
            "--version", "-V", callback=_version, is_eager=True, help="print the version and exit"
        ),
    ] = False,
) -> None:
    """canonml: one declarative spec for the whole life of a deep-learning model.

    Example: canon run --template digits-mlp
    """


def fail(e: CanonError) -> NoReturn:
    from canonml.errors import DistributedError

    err.print(f"error: {e}", markup=False)
    # Bad input is 2; a process that lost its distributed run is a failure, not bad input.
    raise typer.Exit(1 if isinstance(e, DistributedError) else 2)


def _spec_source(spec: Path | None, template: str | None) -> str | Path:
    if (spec is None) == (template is None):
        raise CanonError("give either a spec file or --template NAME (see 'canon templates')")
    return f"template:{template}" if template else spec  # type: ignore[return-value]


SpecArg = Annotated[Path | None, typer.Argument(help="spec YAML file", show_default=False)]
TemplateOpt = Annotated[str | None, typer.Option("--template", "-t", help="a built-in template")]
SetOpt = Annotated[
    list[str] | None,
    typer.Option("--set", help="override a spec value: key.path=value (repeatable)"),
]


@app.command()
def run(
    spec: SpecArg = None,
    template: TemplateOpt = None,
    out_dir: Annotated[Path, typer.Option("--out", help="root of run directories")] = Path("runs"),
    seed: Annotated[int | None, typer.Option(help="override the spec's seed")] = None,
    overrides: SetOpt = None,
    resume: Annotated[
        Path | None, typer.Option(help="continue this run directory from its last checkpoint")
    ] = None,
    device: Annotated[
        str | None,
        typer.Option(
            help="train on auto|cpu|cuda|cuda:N|mps (sets train.device; may change on --resume)"
        ),
    ] = None,
    nproc: Annotated[
        int | None,
        typer.Option(
            help="train in N processes with DDP (torchrun on this machine; gloo on CPU, one "
            "GPU each on CUDA); train.batch_size is the global batch"
        ),
    ] = None,
) -> None:
    """Train and evaluate a spec; writes runs/<name>/<run-id>/.

    Example: canon run --template digits-mlp --set train.epochs=5
    """
    from canonml.pipeline import run as run_spec

    try:
        sets = list(overrides or []) + ([f"seed={seed}"] if seed is not None else [])
        sets += [f"train.device={device}"] if device is not None else []
        source = (
            None if (resume and spec is None and template is None) else _spec_source(spec, template)
        )
        if nproc is not None and nproc != 1:
            _launch(nproc, source, sets, out_dir, resume)
        result = run_spec(source, out_dir, overrides=sets, resume=resume, console=err)
    except CanonError as e:
        fail(e)
    except KeyboardInterrupt as e:
        _interrupted(e)
    from canonml.train.distributed import is_follower

    if is_follower():
        return  # rank 0 reports
    if result.tracking_warning:
        err.print(f"warning: {result.tracking_warning}", markup=False)
    out.print(f"run directory: {result.run_dir}")
    out.print(f"report: {result.run_dir / 'report.html'}")
    out.print(f"package: {result.run_dir / 'package'}")
    if result.tracking_run_id:
        out.print(
            f"tracked: MLflow run {result.tracking_run_id} in {result.tracking_uri} "
            f"(experiment '{result.tracking_experiment}'; see: canon runs)"
        )
    if result.tracking_model_id:
        registered = result.spec.track.register if result.spec.track else None
        out.print(
            f"MLflow model: runs:/{result.tracking_run_id}/model"
            + (f", registered as '{registered}'" if registered else "")
        )
    ev = result.evaluation
    _print_metrics(
        f"{result.spec.name}: test metrics",
        result.metrics,
        ev.interval if ev else None,
        ev.headline if ev else None,
        ev.cv if ev else None,
    )


def _launch(
    nproc: int, source: str | Path | None, sets: list[str], out_dir: Path, resume: Path | None
) -> NoReturn:
    """``canon run`` of the same spec in ``nproc`` processes (torchrun); its exit code.
    What the spec alone decides is checked here, before any process starts."""
    from canonml.pipeline import resolve_spec
    from canonml.train.distributed import check_spec, launch

    if nproc > 1:
        check_spec(resolve_spec(source, sets, resume), nproc)
    args = ["run"] + ([str(source)] if source is not None else []) + ["--out", str(out_dir)]
    args += [a for o in sets for a in ("--set", o)]
    args += ["--resume", str(resume)] if resume is not None else []
    raise typer.Exit(launch(nproc, args))


def _interrupted(e: KeyboardInterrupt) -> NoReturn:
    """Ctrl-C: one line saying how to continue, exit 130 (the shell's code for SIGINT)."""
    run_dir = next((n for n in getattr(e, "__notes__", []) if n.startswith("run directory: ")), "")
    where = run_dir.removeprefix("run directory: ")
    hint = f"; continue it with: canon run --resume {where}" if where else ""
    err.print(f"interrupted{hint}", markup=False)
    raise typer.Exit(130)


@app.command()
def evaluate(
    run_dir: Annotated[Path, typer.Argument(help="a run directory", show_default=False)],
    data: Annotated[
        str | None, typer.Option("--data", help="another source with the same schema")
    ] = None,
    target: Annotated[
        str | None, typer.Option("--target", help="target column of a csv --data source")
    ] = None,
) -> None:
    """Evaluate a finished run again: on its own test split, or on another data source.

    Example: canon evaluate runs/iris/20261122-101500-ab12 --data csv:new-flowers.csv
    """
    from canonml.evaluate.rerun import evaluate_run

    try:
        evaluation, written = evaluate_run(str(run_dir), data, target)
    except CanonError as e:
        fail(e)
    _print_metrics(
        f"{data or 'test split'}: {len(evaluation.y_true)} examples",
        evaluation.metrics,
        evaluation.interval,
        evaluation.headline,
    )
    out.print(f"written: {written}")


def _print_metrics(
    title: str,
    metrics: dict[str, float],
    interval: tuple[float, float] | None = None,
    headline: str | None = None,
    cv: dict[str, Any] | None = None,
) -> None:
    table = Table(title=title, title_justify="left")
    table.add_column("metric")
    table.add_column("value", justify="right")
    table.add_column("95% interval", justify="right")
    if cv:
        table.add_column(f"{cv['folds']}-fold CV mean ± std", justify="right")
    for name, value in metrics.items():
        ci = f"{interval[0]:.4f} – {interval[1]:.4f}" if interval and name == headline else ""
        shown = f"{value:.4f}" if value == 0 or abs(value) >= 1e-3 else f"{value:.3g}"  # δ
        row = [name, shown, ci]
        if cv:
            fold = cv["metrics"].get(name)
            row.append(f"{fold['mean']:.4f} ± {fold['std']:.4f}" if fold else "")
        table.add_row(*row)
    out.print(table)


@app.command()
def runs(
    ids: Annotated[
        list[str] | None, typer.Argument(help="run ids to compare (with --compare)")
    ] = None,
    compare: Annotated[bool, typer.Option("--compare", help="metrics of IDS side by side")] = False,
    experiment: Annotated[
        str | None,
        typer.Option(
            "--experiment",
            "-e",
            help="experiment name [default: $MLFLOW_EXPERIMENT_NAME, else canon]",
            show_default=False,
        ),
    ] = None,
    limit: Annotated[int, typer.Option("--limit", "-n", help="how many runs")] = 20,
    sort: Annotated[str | None, typer.Option(help="order by this metric, best first")] = None,
    uri: Annotated[
        str | None,
        typer.Option(
            help="MLflow tracking URI [default: $MLFLOW_TRACKING_URI, else sqlite:///mlflow.db]",
            show_default=False,
        ),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="print JSON instead of a table")] = False,
) -> None:
    """List recent tracked runs, or compare runs' metrics side by side.

    Example: canon runs --sort accuracy  |  canon runs --compare RUN_ID_1 RUN_ID_2
    (the same runs show in MLflow's own UI: run `mlflow ui` in the same folder)
    """
    from canonml.spec.track import experiment_name
    from canonml.track.runs import compare_table, find_runs, get_runs, runs_table

    try:
        if compare:
            if not ids or len(ids) < 2:
                raise CanonError("--compare: give at least two run ids")
            found = get_runs(ids, uri=uri)
            table = compare_table(found)
        else:
            if ids:
                raise CanonError(f"unexpected run ids {ids}: use --compare ID1 ID2 ...")
            found = find_runs(uri=uri, experiment=experiment, limit=limit, sort=sort)
            table = runs_table(found, experiment_name(experiment), sort)
    except CanonError as e:
        fail(e)
    if as_json:
        sys.stdout.write(json.dumps(found, indent=2) + "\n")
        return
    out.print(table)


@app.command()
def export(
    source: Annotated[
        Path,
        typer.Argument(
            help="a finished run directory or a model package (directory or .zip)",
            show_default=False,
        ),
    ],
    fmt: Annotated[
        str,
        typer.Option(
            "--format",
            "-f",
            help="package (directory), zip, triton (a Triton model repository) or hf "
            "(a Hugging Face model folder)",
        ),
    ] = "package",
    as_zip: Annotated[bool, typer.Option("--zip", help="the same as --format zip")] = False,
    output: Annotated[
        Path | None,
        typer.Option(
            "-o",
            "--output",
            help="where to write (default beside the run's package: package, package.zip, "
            "triton, hf)",
            show_default=False,
        ),
    ] = None,
    max_batch_size: Annotated[
        int | None,
        typer.Option(
            "--max-batch-size",
            help="triton: largest batch Triton's dynamic batcher forms (default 64)",
            show_default=False,
        ),
    ] = None,
) -> None:
    """Export a run's model package as a directory, a zip, a Triton repository or for the Hub.

    Examples: canon export runs/digits-mlp/20261122-101500-ab12 --zip -o digits.zip;
    canon export runs/iris/20261122-101500-ab12 --format triton -o model_repository
    """
    from canonml.package.convert import check_format, export_as

    try:
        if as_zip and check_format(fmt) not in ("package", "zip"):
            raise CanonError(f"--zip: is --format zip; it cannot be combined with --format {fmt}")
        written = export_as(source, "zip" if as_zip else fmt, output, max_batch_size=max_batch_size)
    except CanonError as e:
        fail(e)
    label = {"triton": "triton model", "hf": "hugging face folder"}.get(fmt, "package")
    out.print(f"{label}: {written}", markup=False)


@app.command()
def verify(
    package: Annotated[Path, typer.Argument(help="package directory or .zip", show_default=False)],
    as_json: Annotated[
        bool, typer.Option("--json", help='print {"package", "ok", "problems"} as JSON')
    ] = False,
) -> None:
    """Check a package: file hashes, ONNX checker, signature, ONNX Runtime vs PyTorch outputs.

    Exit 0 only if everything agrees; otherwise exit 1 with one line per problem.
    Example: canon verify runs/digits-mlp/20261122-101500-ab12/package
    """
    from canonml.package import verify_package

    problems = verify_package(package)
    if as_json:
        report = {"package": str(package), "ok": not problems, "problems": problems}
        sys.stdout.write(json.dumps(report, indent=2) + "\n")
    else:
        for line in problems:
            err.print(f"problem: {line}", markup=False)
    if problems:
        raise typer.Exit(1)
    if not as_json:
        out.print(f"ok: {package} (hashes, onnx checker, signature, outputs agree)")


@app.command()
def predict(
    package: Annotated[Path, typer.Argument(help="package directory or .zip", show_default=False)],
    inputs: Annotated[list[str], typer.Argument(help="CSV, .npy, JSON or image files")],
    as_json: Annotated[bool, typer.Option("--json", help="print JSON instead of a table")] = False,
) -> None:
    """Predict with ONNX Runtime only (no torch needed).

    Example: canon predict runs/iris/20261122-101500-ab12/package flowers.csv --json
    """
    from canonml.package import predict_inputs

    try:
        rows = predict_inputs(package, inputs)
    except CanonError as e:
        fail(e)
    if as_json:
        sys.stdout.write(json.dumps(rows, indent=2) + "\n")
        return
    # Scalars only: mappings and arrays (probabilities, a reconstruction) are --json's.
    columns = [k for k, v in rows[0].items() if not isinstance(v, dict | list)] if rows else []
    table = Table(*columns)
    for row in rows:
        table.add_row(
            *(f"{row[c]:.4f}" if isinstance(row[c], float) else str(row[c]) for c in columns)
        )
    out.print(table)


@app.command()
def sample(
    source: Annotated[
        Path,
        typer.Argument(
            help="a generator's package (directory or .zip) or its run directory",
            show_default=False,
        ),
    ],
    n: Annotated[int, typer.Option("-n", help="how many images")] = 64,
    class_: Annotated[
        str | None,
        typer.Option(
            "--class",
            help="the class to generate, by index or label (conditional models; default: "
            "every class in turn)",
            show_default=False,
        ),
    ] = None,
    seed: Annotated[
        int, typer.Option(help="seed of the noise: the same seed, the same images")
    ] = 0,
    output: Annotated[Path, typer.Option("-o", "--output", help="the grid of images (PNG)")] = Path(
        "samples.png"
    ),
    npy: Annotated[
        Path | None,
        typer.Option(
            help="also write the raw images (N, C, H, W) float32, in the data's units",
            show_default=False,
        ),
    ] = None,
) -> None:
    """Generate images with ONNX Runtime only (no torch needed) and write them as a grid.

    Example: canon sample runs/digits-cgan/20261122-101500-ab12 -n 20 --class 3 -o threes.png
    """
    import numpy as np

    from canonml.package.sample import open_sampler, pixel_max, sample_images, write_grid

    try:
        pkg = open_sampler(source)
        images, labels = sample_images(pkg, n, class_, seed)
        classes = pkg.signature["sampler"].get("classes") if class_ is None else None
        cols = int(classes) if labels is not None and classes and n > classes else None
        write_grid(output, images, pixel_max(pkg), cols=cols)
        if npy is not None:
            np.save(npy, images)
    except CanonError as e:
        fail(e)
    except OSError as e:
        fail(CanonError(f"-o/--npy: cannot write ({e})"))
    what = "noise" if labels is None else "every class in turn"
    if class_ is not None and labels is not None:
        what = f"class {labels[0]}"
    out.print(f"wrote {output} ({len(images)} images from {what}, seed {seed})", markup=False)
    if npy is not None:
        out.print(f"wrote {npy} ({' × '.join(map(str, images.shape))} float32)", markup=False)


@app.command()
def generate(
    source: Annotated[
        Path,
        typer.Argument(
            help="a language model's package (directory or .zip) or its run directory",
            show_default=False,
        ),
    ],
    prompt: Annotated[str, typer.Option(help="the text to continue")] = "",
    max_new_tokens: Annotated[int, typer.Option(help="the most new tokens")] = 200,
    temperature: Annotated[float, typer.Option(help="sampling temperature; 0: greedy")] = 0.8,
    top_k: Annotated[int, typer.Option(help="sample among the k likeliest tokens; 0: all")] = 50,
    top_p: Annotated[
        float, typer.Option(help="sample within this share of the probability (nucleus)")
    ] = 0.95,
    seed: Annotated[int, typer.Option(help="the same seed and settings, the same text")] = 0,
) -> None:
    """Continue a prompt with ONNX Runtime and tokenizers only (no torch), streaming the
    tokens as they come.

    Example: canon generate runs/news-gpt/20261201-101500-ab12 --prompt 中国 --seed 1
    """
    from canonml.package.generate import open_generator

    try:
        gen = open_generator(source)
        pieces = gen.generate(
            prompt,
            max_new_tokens=max_new_tokens,
            temperature=temperature,
            top_k=top_k,
            top_p=top_p,
            seed=seed,
        )
        sys.stdout.write(prompt)
        for piece in pieces:
            sys.stdout.write(piece)
            sys.stdout.flush()
        sys.stdout.write("\n")
        sys.stdout.flush()
    except CanonError as e:
        fail(e)


@app.command()
def serve(
    packages: Annotated[
        list[Path], typer.Argument(help="package directories or .zip files", show_default=False)
    ],
    host: Annotated[str, typer.Option(help="address to listen on")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="TCP port")] = 8080,
    token: Annotated[
        str | None,
        typer.Option(
            envvar="CANON_TOKEN",
            show_default=False,
            help="require 'Authorization: Bearer TOKEN' (health probes and the page stay open)",
        ),
    ] = None,
    workers: Annotated[int, typer.Option(help="uvicorn worker processes")] = 1,
    max_body: Annotated[
        str, typer.Option("--max-body", help="largest request body, e.g. 16MiB (413 above)")
    ] = "16MiB",
    max_batch: Annotated[
        int, typer.Option("--max-batch", help="samples per ONNX Runtime call; 1 = no batching")
    ] = 32,
    max_wait_ms: Annotated[
        float, typer.Option("--max-wait-ms", help="how long a batch that is not full waits")
    ] = 0.0,
    threads: Annotated[int, typer.Option(help="ONNX Runtime threads per model")] = 1,
) -> None:
    """Serve model packages over the Open Inference Protocol v2 (KServe / Triton clients work),
    and language models also on the OpenAI completions API (/v1/completions, /v1/models).

    Example: canon serve runs/digits-mlp/20261122-101500-ab12/package --port 8080
    """
    from canonml.serve.server import parse_size, run_server

    try:
        run_server(
            packages,
            host=host,
            port=port,
            token=token,
            workers=workers,
            max_body=parse_size(max_body),
            max_batch=max_batch,
            max_wait_ms=max_wait_ms,
            threads=threads,
            announce=lambda line: out.print(line, markup=False),
        )
    except CanonError as e:
        fail(e)


@app.command()
def validate(spec: SpecArg = None, template: TemplateOpt = None, overrides: SetOpt = None) -> None:
    """Check a spec without running it; prints the resolved spec's name on success.

    Example: canon validate my-spec.yaml
    """
    from canonml.spec import load_spec

    try:
        resolved = load_spec(_spec_source(spec, template), overrides or [])
    except CanonError as e:
        fail(e)
    out.print(
        f"ok: {resolved.name} ({resolved.task.name}, {resolved.model.arch}, {resolved.data.source})"
    )


@app.command()
def audit(
    run_dir: Annotated[Path, typer.Argument(help="a finished run directory")],
    shadows: Annotated[
        int | None, typer.Option(min=0, help="shadow models for LiRA (default: the spec's, 4)")
    ] = None,
) -> None:
    """Membership inference against a run's model: loss and LiRA attacks (audit.json).

    Example: canon audit runs/digits-mlp/<run-id> --shadows 4
    """
    from canonml.evaluate.audit import AUDIT_COLUMNS, audit_rows, audit_run

    try:
        result, written = audit_run(str(run_dir), shadows)
    except CanonError as e:
        fail(e)
    table = Table(
        title=f"membership inference: {result['members']} members vs "
        f"{result['non_members']} non-members"
    )
    for column in AUDIT_COLUMNS:
        table.add_column(column, justify="right")
    for row in audit_rows(result):
        table.add_row(*row)
    out.print(table)
    out.print(f"written: {written}")


@app.command()
def explain(
    source: Annotated[
        Path, typer.Argument(help="a classifier's run directory or package", show_default=False)
    ],
    inputs: Annotated[
        list[str],
        typer.Option("--input", "-i", help="CSV, .npy, JSON or image file (repeatable)"),
    ],
    method: Annotated[
        str | None,
        typer.Option(
            help="integrated_gradients, saliency, gradient_shap or occlusion "
            "(default: the spec's explain.method, else integrated_gradients)"
        ),
    ] = None,
    target: Annotated[
        str | None, typer.Option(help="explain this class (label or index), not the predicted one")
    ] = None,
    baseline: Annotated[
        str, typer.Option(help="zeros, or mean (the training mean; needs the run directory)")
    ] = "zeros",
    steps: Annotated[int | None, typer.Option(help="integration steps / SHAP samples")] = None,
    output: Annotated[
        Path | None,
        typer.Option("-o", "--out", help="write the attributions as .json, or heat maps as .png"),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="print JSON instead of a table")] = False,
) -> None:
    """Attribute a classifier's prediction to its input features or pixels (Captum).

    Example: canon explain runs/breast-cancer/<run-id> --input patient.csv --method occlusion
    """
    from canonml.package.explain import explain_inputs, write_explanation

    try:
        rows = explain_inputs(source, inputs, method, target, steps, baseline)
        written = write_explanation(rows, output, source) if output is not None else None
    except CanonError as e:
        fail(e)
    if as_json:
        sys.stdout.write(json.dumps(rows, indent=2) + "\n")
    else:
        for row in rows:
            _print_explanation(row)
    if written is not None:
        out.print(f"written: {written}")


def _print_explanation(row: dict[str, Any]) -> None:
    """One input's explanation: its largest attributions (tables) or their total (images)."""
    head = (
        f"{row['input']}: {row['method']} of p({row['explained']}) = {row['probability']:.4f}"
        f" (predicted {row['predicted']})"
    )
    attr = row["attributions"]
    if not isinstance(attr, dict):
        out.print(
            f"{head}; attributions sum to {row['total']:.4f} (-o FILE.png draws them)",
            markup=False,
        )
        return
    table = Table("feature", "attribution", title=head, title_justify="left")
    top = sorted(attr.items(), key=lambda kv: -abs(kv[1]))[:10]
    for name, value in top:
        table.add_row(name, f"{value:+.4f}")
    out.print(table)


@app.command()
def compress(
    run_dir: Annotated[Path, typer.Argument(help="a finished run directory")],
    prune: Annotated[
        list[float] | None,
        typer.Option(help="prune this share of the weights (repeatable: one variant each)"),
    ] = None,
    structured: Annotated[
        bool, typer.Option(help="--prune removes whole units and channels instead")
    ] = False,
    epochs: Annotated[int | None, typer.Option(help="fine-tuning epochs after pruning")] = None,
    quantize: Annotated[
        str | None, typer.Option(help="int8 (auto), static or dynamic: an int8 ONNX graph")
    ] = None,
    student: Annotated[
        str | None,
        typer.Option(help="distil into this model section, as YAML: '{arch: mlp, hidden: [32]}'"),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="print compression.json")] = False,
) -> None:
    """Pruned, int8 and distilled variants of a run's model, measured beside it.

    Writes compressed/<variant>/ (each a package) and compression.json. Without options:
    the spec's compress section, else prune 50% + int8.
    Example: canon compress runs/digits-cnn/<run-id> --prune 0.5 --prune 0.8 --quantize int8
    """
    import yaml

    from canonml.compress.measure import cpu_features, features_line
    from canonml.compress.stage import FILE, compress_run, compression_rows

    settings: dict[str, object] | None = None
    if prune or quantize or student:
        settings = {}
        if prune:
            extra = {"epochs": epochs} if epochs is not None else {}
            settings["prune"] = [{"amount": a, "structured": structured, **extra} for a in prune]
        if quantize:
            settings["quantize"] = {} if quantize == "int8" else {"mode": quantize}
        if student:
            try:
                settings["distill"] = {"student": yaml.safe_load(student)}
            except yaml.YAMLError as e:
                fail(CanonError(f"--student: not YAML ({str(e).splitlines()[0]})"))
    try:
        result = compress_run(str(run_dir), settings)
    except CanonError as e:
        fail(e)
    if as_json:
        out.print_json(data=result)
        return
    headers, rows = compression_rows(result)
    table = Table(title=f"compression of {run_dir}")
    for h in headers[:-1]:  # the verdicts follow, one line each
        table.add_column(h, justify="left" if h == "variant" else "right")
    for row in rows:
        table.add_row(*(str(c) for c in row[:-1]))
    out.print(table)
    for row in rows[1:]:
        out.print(f"{row[0]}: {row[-1]}", markup=False)
    out.print(features_line(cpu_features()), markup=False)
    out.print(
        f"latency: ONNX Runtime, {result['threads']} thread(s), median of "
        f"{result['repeats']} runs × 3 rounds; written: {Path(run_dir) / FILE} and "
        f"{Path(run_dir) / 'compressed'}/"
    )


@app.command()
def search(
    spec: SpecArg = None,
    template: TemplateOpt = None,
    overrides: SetOpt = None,
    out_dir: Annotated[Path, typer.Option("--out", help="root of run directories")] = Path("runs"),
    trials: Annotated[int | None, typer.Option(help="override search.trials")] = None,
    jobs: Annotated[
        int, typer.Option(help="trials in parallel (processes, 1 torch thread each)")
    ] = 1,
    pick: Annotated[
        int | None, typer.Option(help="train this trial as the final run (several objectives)")
    ] = None,
    storage: Annotated[
        str | None,
        typer.Option(
            help="the Optuna study's database URL (default: optuna.db beside the tracking store)"
        ),
    ] = None,
    no_final: Annotated[
        bool, typer.Option("--no-final", help="search only; train no final run")
    ] = False,
) -> None:
    """Hyper-parameter search with Optuna over the spec's search.params, then the final run.

    Running it again continues the same study (after a kill, too). With several
    objectives it prints the Pareto front; --pick N trains trial N.
    Example: canon search my-spec.yaml --trials 20 --jobs 2
    """
    from canonml.search import search as run_search

    sets = list(overrides or []) + ([f"search.trials={trials}"] if trials is not None else [])
    try:
        result = run_search(
            _spec_source(spec, template),
            out_dir,
            overrides=sets,
            jobs=jobs,
            pick=pick,
            storage=storage,
            final=not no_final,
            console=err,
        )
    except CanonError as e:
        fail(e)
    except KeyboardInterrupt as e:
        _interrupted(e)
    finished = [t for t in result.trials if t["state"] == "COMPLETE"]
    pruned = sum(t["state"] == "PRUNED" for t in result.trials)
    names = [m for m, _ in result.goals]
    table = Table(
        title=f"study {result.study_name}: {len(finished)} finished, {pruned} pruned "
        f"({result.seconds:.0f} s)"
    )
    table.add_column("trial", justify="right")
    for n in names:
        table.add_column(n, justify="right")
    table.add_column("params")
    shown = (
        [t for t in finished if t["number"] in result.best]
        if len(names) > 1
        else sorted(
            finished, key=lambda t: t["values"][0], reverse=result.goals[0][1] == "maximize"
        )[:10]
    )
    for t in shown:
        table.add_row(str(t["number"]), *(f"{v:.4g}" for v in t["values"]), json.dumps(t["params"]))
    out.print(table)
    out.print(f"study: {result.storage} (run canon search again to continue it)")
    if len(names) > 1:
        out.print(
            f"Pareto front: trials {result.best}"
            + ("" if result.chosen is not None else "; train one with: canon search SPEC --pick N")
        )
    if result.spec_file is not None:
        out.print(f"trial {result.chosen}'s spec: {result.spec_file}")
    if result.run is not None:
        out.print(f"final run: {result.run.run_dir}")
        _print_metrics(
            f"{result.run.spec.name}: test metrics", result.run.metrics, None, None, None
        )


@app.command("privacy-curve")
def privacy_curve(
    spec: SpecArg = None,
    template: TemplateOpt = None,
    overrides: SetOpt = None,
    epsilons: Annotated[
        str, typer.Option(help="target ε values, comma-separated; inf trains without DP")
    ] = "0.5,1,3,8,inf",
    seeds: Annotated[int, typer.Option(min=1, help="runs per ε (seed, seed+1, ...)")] = 1,
    out_dir: Annotated[Path, typer.Option("--out", help="root of the runs and the curve")] = Path(
        "runs"
    ),
) -> None:
    """Train the spec at each ε and plot the test metric against ε (privacy_curve.png).

    Example: canon privacy-curve --template breast-cancer --epsilons 0.5,1,3,8,inf
    """
    from canonml.evaluate.privacy_curve import medians, parse_epsilons
    from canonml.evaluate.privacy_curve import privacy_curve as measure
    from canonml.spec import load_spec

    try:
        values = parse_epsilons(epsilons)
        resolved = load_spec(_spec_source(spec, template), overrides or [])
        curve = measure(resolved, values, out_dir, seeds=seeds, console=err)
    except CanonError as e:
        fail(e)
    except KeyboardInterrupt as e:
        _interrupted(e)
    metric = curve["metric"]
    table = Table(title=f"{resolved.name}: test {metric} against ε")
    for column in ("target ε", f"median {metric}", "runs"):
        table.add_column(column, justify="right")
    counts: dict[float, int] = {}
    for point in curve["points"]:
        counts[point["target_epsilon"]] = counts.get(point["target_epsilon"], 0) + 1
    for epsilon, value in medians(curve["points"], metric).items():
        table.add_row(f"{epsilon:g}", f"{value:.4f}", str(counts[epsilon]))
    out.print(table)
    out.print(f"curve: {curve['plot']}")


@app.command()
def anonymize(
    spec: SpecArg = None,
    template: TemplateOpt = None,
    overrides: SetOpt = None,
    output: Annotated[
        Path, typer.Option("--output", "-o", help="the anonymized table (CSV)")
    ] = Path("anonymized.csv"),
) -> None:
    """Apply the spec's data.anonymize to its source and write the table, without training.

    Example: CANON_PSEUDONYM_KEY=... canon anonymize patients.yaml -o shareable.csv
    """
    from canonml.data.anonymize import write_anonymized
    from canonml.spec import load_spec

    try:
        resolved = load_spec(_spec_source(spec, template), overrides or [])
        report = write_anonymized(resolved.data, output)
    except CanonError as e:
        fail(e)
    masked = sum(n for counts in report.get("masks", {}).values() for n in counts.values())
    out.print(
        f"wrote {output}: {report['rows_out']} of {report['rows_in']} rows "
        f"({report['rows_suppressed']} suppressed for k-anonymity), "
        f"{len(report['columns_dropped'])} columns dropped, "
        f"{len(report['columns_pseudonymized'])} pseudonymized, "
        f"{len(report['columns_generalized'])} generalized, {masked} identifiers masked",
        markup=False,
    )


@app.command()
def schema() -> None:
    """Print the JSON Schema of the spec (for editors).

    Example: canon schema > canon.schema.json
    """
    from canonml.spec import json_schema

    sys.stdout.write(json.dumps(json_schema(), indent=2) + "\n")


@app.command()
def templates() -> None:
    """List the built-in templates.

    Example: canon templates
    """
    import yaml

    from canonml.spec import template_names
    from canonml.spec.load import template_text
    from canonml.spec.task import task_name

    # Read as written, not validated: a template that fine-tunes run:NAME is listed before
    # that run exists.
    table = Table("template", "task", "data", "model")
    for name in template_names():
        raw = yaml.safe_load(template_text(name))
        model = raw.get("model") or {}
        table.add_row(
            name, task_name(raw.get("task")), raw["data"]["source"], model.get("arch", "mlp")
        )
    out.print(table)


@app.command()
def init(
    template: Annotated[str, typer.Option("--template", "-t", help="template name")],
    output: Annotated[Path | None, typer.Option("-o", "--output", help="file to write")] = None,
    force: Annotated[bool, typer.Option(help="overwrite an existing file")] = False,
) -> None:
    """Write a template as an editable spec file (default: NAME.yaml) and the spec's JSON
    Schema beside it (canon.schema.json), linked from the spec's first line so VS Code's and
    JetBrains' YAML plugins check and complete it with no set-up.

    Example: canon init --template breast-cancer -o my-spec.yaml
    """
    from canonml.spec.init import write_spec_file

    try:
        target, schema = write_spec_file(template, output or Path(f"{template}.yaml"), force)
    except CanonError as e:
        fail(e)
    out.print(f"wrote {target} (schema: {schema}); run it with: canon run {target}")


def _show_warning(
    message: Warning | str,
    category: type[Warning],
    filename: str,
    lineno: int,
    file: Any = None,
    line: str | None = None,
) -> None:
    """canonml's own warnings as one ``warning: ...`` line; others as Python shows them."""
    if issubclass(category, CanonWarning):
        err.print(f"warning: {message}", markup=False)
    else:
        _python_show_warning(message, category, filename, lineno, file, line)


_python_show_warning = warnings.showwarning


def main(argv: list[str] | None = None) -> Any:
    warnings.showwarning = _show_warning
    return app(args=argv, prog_name="canon")


def entry() -> NoReturn:
    """The ``canon`` executable (and ``python -m canonml``): ``main``, then a quick exit.

    Tearing down an interpreter that has loaded torch, scikit-learn and matplotlib takes
    about 0.8 s, and a finished command has nothing left to do: every artefact is written
    atomically and fsynced, worker processes and threads are joined. So once the command
    returns, the output streams are flushed and the process ends at once. A crash (any
    exception but ``SystemExit``) still ends the normal way, with its traceback.
    """
    try:
        main()
        code: int = 0
    except SystemExit as e:
        if isinstance(e.code, str):
            err.print(e.code, markup=False)
        code = e.code if isinstance(e.code, int) else (1 if isinstance(e.code, str) else 0)
    for stream in (sys.stdout, sys.stderr):
        stream.flush()
    os._exit(code)
