"""``report.html``: one self-contained page (CSS inline, PNGs as data URIs) built from sections.

A section is one function ``(ctx) -> html body | None`` registered with ``@section(title,
order)``; later stages add theirs the same way. Every user string goes through ``_esc``.
"""

from __future__ import annotations

import base64
import html
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from canonml.evaluate import plots
from canonml.evaluate.painter import Painter, now
from canonml.io import atomic_write

if TYPE_CHECKING:
    from canonml.evaluate.evaluation import Evaluation
    from canonml.spec import Spec
    from canonml.tasks.base import Task


@dataclass
class ReportContext:
    """Everything a section may show; ``plots`` is filled by ``make_plots``."""

    spec: Spec
    run_dir: Path
    data: dict[str, Any]  # data.json
    preprocess: dict[str, Any]  # fitted preprocessing state
    history: list[dict[str, Any]]
    evaluation: Evaluation | None
    model_rows: list[dict[str, Any]]  # {"layer", "output_shape", "parameters"}
    param_count: int
    seconds: float  # run time
    best_epoch: int | None = None
    monitor: str = "val_loss"
    plots: dict[str, Path] = field(default_factory=dict)
    captions: dict[str, str] = field(default_factory=dict)  # the task's figures, by plot key
    extra: dict[str, Any] = field(default_factory=dict)  # for sections added by later stages


@dataclass(frozen=True)
class Section:
    """A rendered section: its title and HTML body."""

    title: str
    body: str


Render = Callable[[ReportContext], "str | None"]


@dataclass(frozen=True)
class SectionEntry:
    title: str
    order: int
    render: Render


SECTIONS: list[SectionEntry] = []  # kept sorted by order


def section(title: str, order: int) -> Callable[[Render], Render]:
    """Register ``render(ctx) -> html body | None`` (None: not applicable) as a report section."""

    def register(render: Render) -> Render:
        if any(s.title == title for s in SECTIONS):
            raise ValueError(f"report section {title!r} is already registered")
        SECTIONS.append(SectionEntry(title, order, render))
        SECTIONS.sort(key=lambda s: s.order)
        return render

    return register


def render_sections(ctx: ReportContext) -> list[Section]:
    """The applicable sections, in order."""
    rendered = ((s.title, s.render(ctx)) for s in SECTIONS)
    return [Section(title, body) for title, body in rendered if body is not None]


# ---- HTML helpers -------------------------------------------------------------------------


def _esc(value: object) -> str:
    """Escaped text; '://' is written as an entity so the file holds no URL to follow."""
    return html.escape(str(value)).replace("://", ":&#47;&#47;")


def _fmt(value: object) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, int) and not isinstance(value, bool):
        return f"{value:,}"
    if isinstance(value, list | tuple):  # a shape: (None, 10)
        return "(" + ", ".join(str(v) for v in value) + ")"
    return str(value)


def table(headers: Sequence[str] | None, rows: Sequence[Sequence[object]]) -> str:
    """An escaped table (no header row if ``headers`` is None) that scrolls sideways if narrow."""
    head = "".join(f"<th>{_esc(h)}</th>" for h in headers or [])
    body = "".join(
        "<tr>" + "".join(f"<td>{_esc(_fmt(c))}</td>" for c in row) + "</tr>" for row in rows
    )
    return f'<div class="scroll"><table>{f"<tr>{head}</tr>" if head else ""}{body}</table></div>'


def facts(pairs: Sequence[tuple[str, object]]) -> str:
    """A two-column key/value table."""
    return table(None, pairs)


def figure(ctx: ReportContext, key: str, caption: str) -> str:
    """``ctx.plots[key]`` inlined as a data URI, or nothing when that plot was not made."""
    path = ctx.plots.get(key)
    return image(Path(path), caption) if path is not None else ""


def image(path: Path, caption: str) -> str:
    """The PNG at ``path`` inlined as a data URI, or nothing when it is missing."""
    if not path.is_file():
        return ""
    data = base64.b64encode(path.read_bytes()).decode("ascii")
    return (
        f'<figure><img src="data:image/png;base64,{data}" alt="{_esc(caption)}">'
        f"<figcaption>{_esc(caption)}</figcaption></figure>"
    )


def headline(evaluation: Evaluation) -> str:
    """'accuracy 0.981 (95% CI 0.967–0.992)'."""
    value = evaluation.metrics.get(evaluation.headline, float("nan"))
    text = f"{evaluation.headline} {value:.3f}"
    if evaluation.interval:
        lo, hi = evaluation.interval
        text += f" (95% CI {lo:.3f}–{hi:.3f})"
    return text


def _duration(seconds: float) -> str:
    minutes, secs = divmod(round(seconds), 60)
    return f"{seconds:.1f} s" if seconds < 60 else f"{minutes} min {secs} s"


# ---- plots --------------------------------------------------------------------------------


def make_plots(ctx: ReportContext, task: Task, painter: Painter | None = None) -> dict[str, Path]:
    """Write every applicable PNG to ``run_dir/plots/``; records and returns them by key.

    The learning curves are every run's; the rest are the task's (``Task.plots``), their
    captions kept in ``ctx.captions`` for the test results. With a ``painter`` the figures
    are drawn in its process (``canonml.evaluate.painter``).
    """
    draw = painter.submit if painter is not None else now
    out = Path(ctx.run_dir) / "plots"
    made: dict[str, Future[Path | None]] = {}
    if ctx.history:
        made["learning_curves"] = draw(
            plots.learning_curves,
            ctx.history,
            ctx.monitor,
            ctx.best_epoch,
            out / "learning_curves.png",
        )
        if any(row.get("lr") is not None for row in ctx.history):
            made["learning_rate"] = draw(
                plots.learning_rate, ctx.history, out / "learning_rate.png"
            )
    if ctx.evaluation is not None:
        for key, fn, args, caption in task.plots(ctx.evaluation, out):
            made[key] = draw(fn, *args)
            ctx.captions[key] = caption
    drawn = {k: f.result() for k, f in made.items()}
    ctx.plots.update({k: p for k, p in drawn.items() if p is not None})
    return ctx.plots


# ---- the page -----------------------------------------------------------------------------

CSS = """
body{font:16px/1.5 system-ui,sans-serif;color:#222;max-width:60rem;margin:0 auto;padding:1rem}
h1{font-size:1.6rem}h2{font-size:1.3rem;border-bottom:1px solid #ccc;margin-top:2rem}
img{max-width:100%;height:auto}figure{margin:1rem 0}figcaption{font-size:.9rem;color:#555}
.scroll{overflow-x:auto;margin:.5rem 0}table{border-collapse:collapse;font-size:.9rem}
th,td{border:1px solid #ddd;padding:.25rem .5rem;text-align:left;vertical-align:top}
th{background:#f4f4f4}code{overflow-wrap:anywhere}nav a{margin-right:.75rem}
pre{background:#f7f7f7;padding:.75rem;white-space:pre-wrap;overflow-wrap:anywhere}
@media print{nav{display:none}.scroll{overflow:visible}body{max-width:none}
figure,table,pre,tr{break-inside:avoid;page-break-inside:avoid}h2{break-after:avoid}}
"""


def render_page(ctx: ReportContext) -> str:
    """The whole HTML document (no scripts, no external references)."""
    sections = render_sections(ctx)
    nav = "".join(f'<a href="#s{i}">{_esc(s.title)}</a>' for i, s in enumerate(sections))
    body = "".join(
        f'<section id="s{i}"><h2>{_esc(s.title)}</h2>{s.body}</section>'
        for i, s in enumerate(sections)
    )
    title = _esc(f"canonml report: {ctx.spec.name}")
    return (
        '<!doctype html>\n<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{title}</title><style>{CSS}</style></head>"
        f"<body><h1>{title}</h1><nav>{nav}</nav>{body}</body></html>\n"
    )


def write_report(ctx: ReportContext) -> Path:
    """Render ``run_dir/report.html`` atomically and return its path."""
    path = Path(ctx.run_dir) / "report.html"
    atomic_write(path, render_page(ctx))
    return path


# ---- built-in sections ----------------------------------------------------------------------


@section("Summary", order=10)
def _summary(ctx: ReportContext) -> str:
    ev = ctx.evaluation
    rows: list[tuple[str, object]] = [
        ("task", ctx.spec.task.name),
        ("data set", ctx.data.get("source", ctx.spec.data.source)),
        ("model", ctx.spec.model.arch),
        ("headline", headline(ev) if ev is not None else "not evaluated"),
        ("run time", _duration(ctx.seconds)),
        ("parameters", ctx.param_count),
    ]
    return facts(rows)


@section("Data", order=20)
def _data(ctx: ReportContext) -> str:
    d = ctx.data
    sizes = d.get("sizes", {})
    rows: list[tuple[str, object]] = [
        ("source", d.get("source", "")),
        ("kind", d.get("kind", "")),
        ("rows", d.get("rows", "")),
        ("input shape", " × ".join(str(n) for n in d.get("input_shape", []))),
        ("features", len(d.get("feature_names") or [])),
        ("classes", len(d.get("label_names") or []) or "–"),
        ("fingerprint (sha256)", d.get("fingerprint", "")),
    ]
    if "duplicates_removed" in d:
        rows.append(("duplicates removed", d["duplicates_removed"]))
    parts = [facts(rows)]
    if sizes:
        parts += ["<h3>Splits</h3>", table(list(sizes), [list(sizes.values())])]
    columns = d.get("columns") or []
    if columns:
        parts += [
            "<h3>Columns</h3>",
            table(
                ["column", "kind", "missing cells"],
                [(c["name"], c["kind"], c["missing"]) for c in columns],
            ),
        ]
    ev = ctx.evaluation
    if ev is not None and ev.label_names and ev.proba is not None and len(ev.y_true):
        parts += ["<h3>Class balance (test split)</h3>", _class_counts(ev)]
    parts += ["<h3>Preprocessing</h3>", _preprocess(ctx.preprocess)]
    return "".join(parts)


@section("Anonymisation", order=21)
def _anonymisation(ctx: ReportContext) -> str | None:
    """What ``data.anonymize`` changed before anything was learned (data.json ``anonymize``)."""
    a = ctx.data.get("anonymize")
    if not a:
        return None
    rules = a.get("columns_generalized") or {}
    rows: list[tuple[str, object]] = [
        ("rows in / kept", f"{a.get('rows_in')} / {a.get('rows_out')}"),
        ("rows suppressed (k-anonymity)", a.get("rows_suppressed", 0)),
        ("columns dropped", ", ".join(a.get("columns_dropped") or []) or "–"),
        (
            "columns pseudonymized (HMAC-SHA256)",
            ", ".join(a.get("columns_pseudonymized") or []) or "–",
        ),
        (
            "columns generalized",
            ", ".join(f"{n} ({_rule(r)})" for n, r in rules.items()) or "–",
        ),
    ]
    if a.get("k"):
        rows += [
            (
                "k / quasi-identifiers",
                f"{a['k']} over {', '.join(a.get('quasi_identifiers') or [])}",
            ),
            (
                "smallest class before / after",
                f"{a.get('smallest_class_before')} / {a.get('smallest_class')}",
            ),
            ("classes before / after", f"{a.get('classes_before')} / {a.get('classes')}"),
        ]
        if a.get("l_diversity") is not None:
            rows.append(
                ("ℓ-diversity of the target (fewest distinct values in a class)", a["l_diversity"])
            )
    parts = [facts(rows)]
    masks = a.get("masks") or {}
    if masks:
        kinds = sorted({k for counts in masks.values() for k in counts})
        parts.append("<h3>Identifiers masked in free text</h3>")
        parts.append(
            table(
                ["column", *kinds],
                [(c, *(counts.get(k, 0) for k in kinds)) for c, counts in masks.items()],
            )
        )
    return "".join(parts)


def _rule(rule: dict[str, Any]) -> str:
    if rule.get("rule") == "bins":
        return f"bins of width {rule.get('width')}"
    return f"first {rule.get('keep')} characters kept"


def _class_counts(ev: Evaluation) -> str:
    import numpy as np

    k = max(len(ev.label_names or []), int(np.max(ev.y_true)) + 1)
    names = list(ev.label_names or range(k))
    counts = np.bincount(np.asarray(ev.y_true, dtype=np.int64).ravel(), minlength=k)
    total = max(int(counts.sum()), 1)
    return table(
        ["class", "count", "share"],
        [(names[i], int(n), f"{n / total:.1%}") for i, n in enumerate(counts)],
    )


def _preprocess(state: dict[str, Any]) -> str:
    if not state:
        return "<p>none</p>"
    if state.get("kind") == "image":
        rows: list[tuple[str, object]] = [
            ("scaling", state.get("method", "")),
            ("shape", " × ".join(str(n) for n in state.get("shape", []))),
            ("shift per channel", ", ".join(_fmt(float(v)) for v in state.get("shift", []))),
            ("scale per channel", ", ".join(_fmt(float(v)) for v in state.get("scale", []))),
        ]
    else:
        categorical = state.get("categorical", [])
        rows = [
            ("imputation", state.get("impute", "")),
            ("scaling", state.get("method", "")),
            ("numeric columns", len(state.get("numeric", []))),
            ("categorical columns", len(categorical)),
        ]
    if state.get("target"):
        t = state["target"]
        rows.append(("target scaling", f"shift {_fmt(t['shift'])}, scale {_fmt(t['scale'])}"))
    out = facts(rows)
    cats = state.get("categorical", []) if state.get("kind") != "image" else []
    if cats:
        out += table(
            ["column", "categories"],
            [(c["name"], ", ".join(str(v) for v in c["categories"])) for c in cats],
        )
    return out


@section("Privacy", order=41)
def _privacy(ctx: ReportContext) -> str | None:
    """``privacy.dp``: the ε spent, how it was accounted, and the ε per epoch
    (``privacy.json``, written by ``canonml.train.privacy``)."""
    import json

    path = ctx.run_dir / "privacy.json"
    if not path.is_file():
        return None
    p = json.loads(path.read_text(encoding="utf-8"))
    rows: list[tuple[str, object]] = [
        ("mechanism", p["mechanism"]),
        ("ε spent (target)", f"{p['epsilon']:.4f} ({p['target_epsilon']:g})"),
        ("δ", f"{p['delta']:.3g}"),
        ("accountant", p["accountant"]),
        ("noise multiplier σ", f"{p['noise_multiplier']:.6g}"),
        ("clipping norm C", f"{p['max_grad_norm']:g}"),
        ("sample rate q (Poisson)", f"{p['sample_rate']:.6g}"),
        ("steps (planned)", f"{p['steps']} ({p['planned_steps']})"),
        ("training examples", p["training_examples"]),
    ]
    spent = [(r.get("epoch"), r.get("epsilon")) for r in ctx.history if "epsilon" in r]
    parts = [
        facts(rows),
        "<p>Opacus' accountant re-derives ε from σ, q, the steps and δ alone. The guarantee "
        "covers each training example; validation and test data are not protected.</p>",
    ]
    if spent:  # at most 12 rows, the last epoch among them
        shown = sorted({round(i * (len(spent) - 1) / 11) for i in range(12)})
        rows_shown = [spent[i] for i in shown]
        parts.append(table(["epoch", "ε spent"], [(e, f"{v:.4f}") for e, v in rows_shown]))
    return "".join(parts)


@section("Membership inference audit", order=52)
def _audit(ctx: ReportContext) -> str | None:
    """``audit.json`` (``canonml.evaluate.audit``): each attack beside what DP allows."""
    import json

    path = ctx.run_dir / "audit.json"
    if not path.is_file():
        return None
    from canonml.evaluate.audit import AUDIT_COLUMNS, audit_rows

    a = json.loads(path.read_text(encoding="utf-8"))
    names = {"loss": "loss threshold", "lira": "LiRA"}
    verdicts = [
        f"{names.get(k, k)}: AUC within noise of 0.5 (indistinguishable from guessing)"
        if r["chance"]
        else f"{names.get(k, k)}: AUC above chance (its 95% interval excludes 0.5)"
        for k, r in a["attacks"].items()
    ]
    return (
        f"<p>{a['members']} training examples (members) against {a['non_members']} test "
        "examples (non-members); a higher score says member. TPR at a fixed FPR is the share "
        "of members found while wrongly accusing that share of non-members.</p>"
        + table(list(AUDIT_COLUMNS), audit_rows(a))
        + "<p>"
        + "; ".join(html.escape(v) for v in verdicts)
        + ".</p>"
    )


@section("Explanations", order=54)
def _explanations(ctx: ReportContext) -> str | None:
    """``explanations.json`` (``canonml.evaluate.explain``): attributions and the two checks
    that say whether to trust them."""
    import json

    path = ctx.run_dir / "explanations.json"
    if not path.is_file():
        return None
    from canonml.evaluate.explain import METHOD_NAMES

    e = json.loads(path.read_text(encoding="utf-8"))
    d, r = e["deletion"], e["randomisation"]
    plots = {key: ctx.run_dir / name for key, name in e.get("plots", {}).items()}
    rows: list[tuple[str, object]] = [
        ("method", METHOD_NAMES.get(e["method"], e["method"])),
        ("explained", e["explained"]),
        ("baseline", e["baseline"]),
        ("test examples checked", e["examples_checked"]),
    ]
    if "convergence_delta" in e:
        rows.append(
            (
                "|convergence delta| mean / max",
                "{mean_abs:.4g} / {max_abs:.4g}".format(**e["convergence_delta"]),
            )
        )
    verdict = {True: "holds", False: "FAILS"}
    checks = [
        (
            "deletion test",
            verdict[d["holds"]],
            f"area under the probability curve {d['area_attributed']:.3f} removing the most "
            f"attributed inputs first, {d['area_random']:.3f} removing random ones; lower for "
            f"{d['share_below_random']:.0%} of examples (Wilcoxon p = {d['p_value']:.2g})",
        ),
        (
            "model randomisation",
            verdict[r["holds"]],
            f"mean Spearman ρ between the trained and a re-initialised model's attributions "
            f"{r['mean_spearman']:.3f} (bound {r['bound']:g}); of their magnitudes "
            f"{r['mean_spearman_abs']:.3f}",
        ),
    ]
    parts = [facts(rows), table(["check", "verdict", "measured"], checks)]
    if "explain_examples" in plots:
        caption = (
            "Input, attribution and the re-initialised model's attribution (red raises the "
            "predicted class's probability, blue lowers it)"
            if e["kind"] == "image"
            else "Largest attributions of a few test rows (red: towards the predicted class)"
        )
        parts.append(image(plots["explain_examples"], caption))
    if "global" in e:
        g = e["global"]
        rho = "n/a" if g["spearman"] is None else f"{g['spearman']:.3f}"
        parts.append(
            f"<p>Global importance: mean |attribution| beside scikit-learn's permutation "
            f"importance on the test split (rank correlation {_esc(rho)}).</p>"
        )
        parts.append(image(plots.get("explain_global", Path()), "Global feature importance"))
    parts.append(image(plots.get("explain_deletion", Path()), "Deletion test"))
    parts.append(image(plots.get("explain_randomisation", Path()), "Model-randomisation check"))
    return "".join(parts)


@section("Compression", order=56)
def _compression(ctx: ReportContext) -> str | None:
    """``compression.json`` (``canonml.compress``): each variant beside the original, as
    measured in this run; a measure that is not ≥ 5% better says "no gain"."""
    import json

    path = ctx.run_dir / "compression.json"
    if not path.is_file():
        return None
    from canonml.compress.measure import features_line
    from canonml.compress.stage import compression_rows

    c = json.loads(path.read_text(encoding="utf-8"))
    headers, rows = compression_rows(c)
    methods = [(r["variant"], r["method"], r.get("package") or "") for r in c["variants"]]
    return (
        f"<p>Measured in this run: file sizes of <code>model.onnx</code> (raw, and deflated as "
        f"a zip stores it), ONNX Runtime latency with {c['threads']} thread(s) (median of "
        f"{c['repeats']} runs in each of 3 rounds, the variants timed in turn) and the test "
        f"{_esc(c['metric'])} of each graph. A measure that is not at least 5% better than "
        "the original is marked <em>no gain</em>; zeros from unstructured pruning do not make "
        "the stored file smaller or the dense kernels faster.</p>"
        + table(headers, rows)
        + f"<p>{_esc(features_line(c['cpu']))} (int8 is fast where VNNI or AMX is present).</p>"
        + table(["variant", "how it was made", "package"], methods)
    )


@section("Hyper-parameter search", order=57)
def _search(ctx: ReportContext) -> str | None:
    """``search.json`` (``canon search``): the study this run's spec came from."""
    import json

    path = ctx.run_dir / "search.json"
    if not path.is_file():
        return None
    s = json.loads(path.read_text(encoding="utf-8"))
    names = [o["metric"] for o in s["objectives"]]
    c = s["counts"]
    done = [t for t in s["trials"] if t["state"] == "COMPLETE"]
    maximise = s["objectives"][0]["direction"] == "maximize"
    if len(names) > 1:
        shown = [t for t in done if t["number"] in s["best"]]
        title = "the Pareto front"
    else:
        shown = sorted(done, key=lambda t: t["values"][0], reverse=maximise)[:10]
        title = "the ten best trials"
    rows = [
        [
            ("▶ " if t["number"] == s["chosen"] else "") + str(t["number"]),
            *(f"{v:.4g}" for v in t["values"]),
            ", ".join(f"{k} = {json.dumps(v)}" for k, v in t["params"].items()),
        ]
        for t in shown
    ]
    goals = ", ".join(f"{o['metric']} ({o['direction']})" for o in s["objectives"])
    parts = [
        f"<p>This run trains trial {s['chosen']} of Optuna study <code>{_esc(s['study'])}</code> "
        f"({c['COMPLETE']} trials finished, {c['PRUNED']} pruned, {c['FAIL']} failed; "
        f"objectives: {_esc(goals)}). Below, {title}.</p>",
        table(["trial", *names, "parameters"], rows),
    ]
    captions = {
        "history": "Optimisation history (each trial's value, and the best so far)",
        "importance": "Parameter importances (fANOVA)",
        "pareto": "Pareto front of the objectives",
    }
    for key, rel in s.get("plots", {}).items():
        parts.append(image(ctx.run_dir / rel, captions.get(key, key)))
    return "".join(parts)


@section("Model", order=30)
def _model(ctx: ReportContext) -> str:
    rows = [(r["layer"], r["output_shape"], r["parameters"]) for r in ctx.model_rows]
    rows.append(("total", "", ctx.param_count))
    return facts([("architecture", ctx.spec.model.arch)]) + table(
        ["layer", "output shape", "parameters"], rows
    )


@section("Training", order=40)
def _training(ctx: ReportContext) -> str | None:
    if not ctx.history:
        return None
    rows: list[tuple[str, object]] = [("epochs run", len(ctx.history)), ("monitor", ctx.monitor)]
    best = next((r for r in ctx.history if r.get("epoch") == ctx.best_epoch), None)
    if best is not None:
        value = best.get(ctx.monitor)
        note = f" ({ctx.monitor} {_fmt(value)})" if value is not None else ""
        rows.append(("best epoch (early stopping)", f"{ctx.best_epoch}{note}"))
    return (
        facts(rows)
        + figure(ctx, "learning_curves", "Learning curves: train vs val; dotted line: best epoch")
        + figure(ctx, "learning_rate", "Learning rate per epoch")
    )


@section("Test results", order=50)
def _test_results(ctx: ReportContext) -> str | None:
    ev = ctx.evaluation
    if ev is None:
        return None
    marked = [(n, v, "✓" if n in ev.selected else "") for n, v in ev.metrics.items()]
    parts = [f"<p><strong>{_esc(headline(ev))}</strong></p>"]
    parts.append(table(["metric", "value", "in metrics.json"], marked))
    if ev.per_class:
        keys = list(ev.per_class[0])
        parts += [
            "<h3>Per class</h3>",
            table(keys, [[r.get(k) for k in keys] for r in ev.per_class]),
        ]
    if ev.cv:
        cv_rows = [(n, f"{m['mean']:.4g} ± {m['std']:.4g}") for n, m in ev.cv["metrics"].items()]
        parts += [f"<h3>Cross-validation ({_esc(ev.cv.get('folds', ''))} folds)</h3>"]
        parts.append(table(["metric", "mean ± std"], cv_rows))
    parts += [figure(ctx, key, caption) for key, caption in ctx.captions.items()]
    return "".join(parts)


@section("Spec", order=90)
def _spec(ctx: ReportContext) -> str:
    from canonml.spec import spec_to_yaml

    return f"<pre>{_esc(spec_to_yaml(ctx.spec))}</pre>"
