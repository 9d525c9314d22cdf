"""The ``canon`` command: parse → call one library function → print. CanonError → exit 2."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Any, NoReturn

import typer
from rich.console import Console
from rich.table import Table

from canonml.errors import CanonError

app = typer.Typer(
    name="canon",
    help="canonml: one declarative spec for the whole life of a deep-learning model.\n\n"
    "Example: canon run --template digits-mlp",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)
out = Console(highlight=False, soft_wrap=True)
err = Console(stderr=True, highlight=False, soft_wrap=True)


def fail(e: CanonError) -> NoReturn:
    err.print(f"error: {e}", markup=False)
    raise typer.Exit(2)


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
) -> None:
    """Train and evaluate a spec; writes runs/<name>/<run-id>/.

    Example: canon run --template digits-mlp --set train.epochs=5
    """
    from canonml.pipeline import run as run_spec

    try:
        sets = list(overrides or []) + ([f"seed={seed}"] if seed is not None else [])
        source = (
            None if (resume and spec is None and template is None) else _spec_source(spec, template)
        )
        result = run_spec(source, out_dir, overrides=sets, resume=resume, console=err)
    except CanonError as e:
        fail(e)
    if result.tracking_warning:
        err.print(f"warning: {result.tracking_warning}", markup=False)
    out.print(f"run directory: {result.run_dir}")
    out.print(f"report: {result.run_dir / 'report.html'}")
    out.print(f"package: {result.run_dir / 'package'}")
    track = result.spec.track
    if result.tracking_run_id and track:
        out.print(
            f"tracked: MLflow run {result.tracking_run_id} in {track.uri} "
            f"(experiment '{track.experiment}'; see: canon runs)"
        )
    ev = result.evaluation
    _print_metrics(
        f"{result.spec.name}: test metrics",
        result.metrics,
        ev.interval if ev else None,
        ev.headline if ev else None,
    )


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
) -> None:
    table = Table(title=title, title_justify="left")
    table.add_column("metric")
    table.add_column("value", justify="right")
    table.add_column("95% interval", justify="right")
    for name, value in metrics.items():
        ci = f"{interval[0]:.4f} – {interval[1]:.4f}" if interval and name == headline else ""
        table.add_row(name, f"{value:.4f}", ci)
    out.print(table)


@app.command()
def runs(
    ids: Annotated[
        list[str] | None, typer.Argument(help="run ids to compare (with --compare)")
    ] = None,
    compare: Annotated[bool, typer.Option("--compare", help="metrics of IDS side by side")] = False,
    experiment: Annotated[str, typer.Option("--experiment", "-e")] = "canon",
    limit: Annotated[int, typer.Option("--limit", "-n", help="how many runs")] = 20,
    sort: Annotated[str | None, typer.Option(help="order by this metric, best first")] = None,
    uri: Annotated[str, typer.Option(help="MLflow tracking URI")] = "sqlite:///mlruns.db",
) -> None:
    """List recent tracked runs, or compare runs' metrics side by side.

    Example: canon runs --sort accuracy  |  canon runs --compare RUN_ID_1 RUN_ID_2
    (the same runs show in MLflow's own UI: mlflow ui --backend-store-uri sqlite:///mlruns.db)
    """
    from canonml.track import compare_runs, list_runs

    try:
        if compare:
            if not ids or len(ids) < 2:
                raise CanonError("--compare: give at least two run ids")
            table = compare_runs(ids, uri=uri)
        else:
            if ids:
                raise CanonError(f"unexpected run ids {ids}: use --compare ID1 ID2 ...")
            table = list_runs(uri=uri, experiment=experiment, limit=limit, sort=sort)
    except CanonError as e:
        fail(e)
    out.print(table)


@app.command()
def export(
    run_dir: Annotated[Path, typer.Argument(help="a finished run directory", show_default=False)],
    as_zip: Annotated[bool, typer.Option("--zip", help="write one .zip file")] = False,
    output: Annotated[Path | None, typer.Option("-o", "--output", help="where to write")] = None,
) -> None:
    """Write the run's model package (canon.json, model.onnx, weights, spec, model card).

    Example: canon export runs/digits-mlp/20261122-101500-ab12 --zip -o digits.zip
    """
    from canonml.package import write_package

    try:
        written = write_package(run_dir, output, as_zip=as_zip)
    except CanonError as e:
        fail(e)
    out.print(f"package: {written}")


@app.command()
def verify(
    package: Annotated[Path, typer.Argument(help="package directory or .zip", show_default=False)],
) -> None:
    """Check a package: file hashes, ONNX checker, signature, ONNX Runtime vs PyTorch outputs.

    Exit 0 only if everything agrees; otherwise exit 1 with one line per problem.
    Example: canon verify runs/digits-mlp/20261122-101500-ab12/package
    """
    from canonml.package import verify_package

    problems = verify_package(package)
    for line in problems:
        err.print(f"problem: {line}", markup=False)
    if problems:
        raise typer.Exit(1)
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
    columns = [k for k in rows[0] if k != "probabilities"] if rows else []
    table = Table(*columns)
    for row in rows:
        table.add_row(
            *(f"{row[c]:.4f}" if isinstance(row[c], float) else str(row[c]) for c in columns)
        )
    out.print(table)


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
    """Serve model packages over the Open Inference Protocol v2 (KServe / Triton clients work).

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
        f"ok: {resolved.name} ({resolved.task}, {resolved.model.arch}, {resolved.data.source})"
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
    from canonml.spec import load_spec, template_names

    table = Table("template", "task", "data", "model")
    for name in template_names():
        s = load_spec(f"template:{name}")
        table.add_row(name, s.task, s.data.source, s.model.arch)
    out.print(table)


@app.command()
def init(
    template: Annotated[str, typer.Option("--template", "-t", help="template name")],
    output: Annotated[Path | None, typer.Option("-o", "--output", help="file to write")] = None,
    force: Annotated[bool, typer.Option(help="overwrite an existing file")] = False,
) -> None:
    """Write a template as an editable spec file (default: NAME.yaml).

    Example: canon init --template breast-cancer -o my-spec.yaml
    """
    from canonml.io import atomic_write
    from canonml.spec import template_text

    try:
        text = template_text(template)
        target = output or Path(f"{template}.yaml")
        if target.exists() and not force:
            raise CanonError(f"{target}: already exists (use --force to overwrite)")
        atomic_write(target, text)
    except CanonError as e:
        fail(e)
    out.print(f"wrote {target}; run it with: canon run {target}")


def main(argv: list[str] | None = None) -> Any:
    return app(args=argv, prog_name="canon")
