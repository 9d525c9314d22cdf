"""``canon privacy-curve``: the privacy–utility trade-off of one spec, measured.

The spec runs once per target ε (``inf``: without differential privacy) and seed; each is an
ordinary run (report, package, tracking) under ``OUT/``. ``privacy_curve.json`` holds every
run's headline test metric and the ε it spent; ``privacy_curve.png`` plots the metric (median
over the seeds, every seed as a dot) against ε on a log axis, the non-private model as a line.
"""

from __future__ import annotations

import math
import statistics
from pathlib import Path
from typing import Any

from canonml.errors import SpecError
from canonml.io import write_json

CURVE_JSON = "privacy_curve.json"
CURVE_PNG = "privacy_curve.png"


def parse_epsilons(text: str) -> list[float]:
    """``0.5,1,3,8,inf`` → the values (each > 0; ``inf`` trains without DP)."""
    values = []
    for part in (p.strip() for p in text.split(",")):
        try:
            value = float(part)
        except ValueError:
            raise SpecError(
                "--epsilons", f"'{part}' is not a number (write e.g. 0.5,1,3,inf)"
            ) from None
        if not value > 0:
            raise SpecError("--epsilons", f"every ε must be > 0 (inf: no DP), got {part}")
        values.append(value)
    if not values:
        raise SpecError("--epsilons", "give at least one ε, e.g. 1,3,8,inf")
    return values


def privacy_curve(
    spec: Any,
    epsilons: list[float],
    out: str | Path = "runs",
    seeds: int = 1,
    overrides: list[str] | None = None,
    console: Any = None,
) -> dict[str, Any]:
    """Train ``spec`` at each ε and seed; write and return the curve (``points``)."""
    from canonml.pipeline import run
    from canonml.spec import load_spec

    base = load_spec(spec, overrides or []) if not hasattr(spec, "model_dump") else spec
    raw = base.model_dump(mode="json")
    dp = (raw.get("privacy") or {}).get("dp") or {}
    headline = base.task.headline
    points = []
    for epsilon in epsilons:
        for k in range(seeds):
            variant = {**raw, "seed": base.seed + k}
            if math.isinf(epsilon):
                variant["privacy"] = {"dp": None}
            else:
                variant["privacy"] = {"dp": {**dp, "epsilon": epsilon}}
            result = run(variant, out=out, console=console)
            metrics = result.metrics
            points.append(
                {
                    "target_epsilon": epsilon,
                    "seed": base.seed + k,
                    "epsilon": metrics.get("dp_epsilon", math.inf),
                    headline: metrics.get(headline),
                    "run_dir": str(result.run_dir),
                }
            )
    folder = Path(out)
    curve = {"spec": base.name, "metric": headline, "points": points}
    write_json(folder / CURVE_JSON, _json_safe(curve))
    curve["plot"] = str(plot_curve(points, headline, folder / CURVE_PNG))
    return curve


def medians(points: list[dict[str, Any]], metric: str) -> dict[float, float]:
    """Median ``metric`` per target ε."""
    by: dict[float, list[float]] = {}
    for p in points:
        if p.get(metric) is not None:
            by.setdefault(p["target_epsilon"], []).append(float(p[metric]))
    return {e: statistics.median(v) for e, v in sorted(by.items())}


def plot_curve(points: list[dict[str, Any]], metric: str, path: Path) -> Path:
    from canonml.evaluate.plots import _figure, _save

    fig = _figure()
    ax = fig.axes[0]
    finite = [p for p in points if math.isfinite(p["target_epsilon"]) and p.get(metric) is not None]
    mid = {e: v for e, v in medians(points, metric).items() if math.isfinite(e)}
    if finite:
        ax.scatter([p["epsilon"] for p in finite], [p[metric] for p in finite], s=12, alpha=0.5)
        ax.plot(list(mid), list(mid.values()), marker="o", label="DP-SGD (median)")
        ax.set_xscale("log")
    plain = medians([p for p in points if math.isinf(p["target_epsilon"])], metric)
    if plain:
        ax.axhline(next(iter(plain.values())), linestyle="--", color="grey", label="no DP")
    ax.set_xlabel("ε spent (δ fixed)")
    ax.set_ylabel(f"test {metric}")
    ax.legend(loc="lower right")
    return _save(fig, path)


def _json_safe(value: Any) -> Any:
    """JSON has no infinity: ε = inf is written as the string "inf"."""
    if isinstance(value, float) and math.isinf(value):
        return "inf"
    if isinstance(value, dict):
        return {k: _json_safe(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_json_safe(v) for v in value]
    return value
