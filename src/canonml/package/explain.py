"""``canon explain`` and the server's ``/explain``: attributions of a package's classifier.

The model is rebuilt from the package's ``spec.yaml`` and ``weights.safetensors`` (Captum
needs PyTorch's gradients; ``model.onnx`` has none). Inputs are read and given exactly as
for ``canon predict`` and ``/infer``: raw rows or images; the in-graph preprocessing (fill
a missing cell, shift, scale) is applied here in NumPy with the same constants, and the
attribution of each raw input is that of its scaled value (one per column or pixel).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from canonml.errors import CanonError
from canonml.package.reader import Package, PackageError
from canonml.package.signature import graph_constants
from canonml.spec.explain import METHODS, ExplainSpec


class Explainer:
    """A package's classifier as PyTorch, ready to attribute raw inputs."""

    def __init__(self, pkg: Package) -> None:
        import yaml

        from canonml.package.rebuild import rebuild_model

        sig = pkg.signature
        takes = [i.get("name") for i in sig.get("inputs") or []]
        if not sig.get("labels") or sig.get("text") or takes != ["input"]:
            raise PackageError(
                f"{pkg.path}: explain attributes a classifier's prediction to its input "
                f"features or pixels; {pkg.task} model '{pkg.name}' is not one"
            )
        self.name = pkg.name
        self.labels = [str(v) for v in sig["labels"]]
        self.state = sig["preprocessing"]
        self.feature_names = [str(n) for n in sig.get("features") or []]
        self.model = rebuild_model(
            pkg.read("spec.yaml").decode("utf-8"), pkg.read("weights.safetensors"), sig
        ).eval()
        fill, shift, scale = graph_constants(self.state)
        view = (1, -1, 1, 1) if self.state["kind"] == "image" else (1, -1)
        self.fill = None if fill is None else fill.reshape(view)
        self.shift, self.scale = shift.reshape(view), scale.reshape(view)
        spec = yaml.safe_load(pkg.read("spec.yaml")) or {}
        self.settings = ExplainSpec.model_validate(
            spec.get("explain") if isinstance(spec.get("explain"), dict) else {}
        )

    def scaled(self, x: np.ndarray) -> np.ndarray:
        """Raw graph inputs → the model's inputs (what ``model.onnx`` does first)."""
        x = x.astype(np.float32)
        if self.fill is not None:
            x = np.where(np.isnan(x), self.fill, x)
        return ((x - self.shift) / self.scale).astype(np.float32)

    def target_index(self, target: str | int | None) -> int | None:
        """A class given as its label or its index; None: each input's predicted class."""
        if target is None:
            return None
        text = str(target).strip()
        if text in self.labels:
            return self.labels.index(text)
        try:
            index = int(text)
        except ValueError:
            shown = ", ".join(self.labels[:12]) + (", …" if len(self.labels) > 12 else "")
            raise CanonError(f"target: '{text}' is not a class; known: {shown}") from None
        if not 0 <= index < len(self.labels):
            raise CanonError(
                f"target: {index} is out of range: the model has {len(self.labels)} classes"
            )
        return index

    def settings_for(self, method: str | None, steps: int | None) -> ExplainSpec:
        """The package's ``explain`` settings (or the defaults) with these overrides."""
        updates: dict[str, Any] = {}
        if method is not None:
            if method not in METHODS:
                raise CanonError(f"method: '{method}' is not one of {', '.join(METHODS)}")
            updates["method"] = method
        if steps is not None:
            if not 2 <= steps <= 1024:
                raise CanonError(f"steps: {steps} must be between 2 and 1024")
            updates["steps"] = steps
        return self.settings.model_copy(update=updates)

    def explain(
        self,
        x: np.ndarray,
        method: str | None = None,
        target: str | int | None = None,
        steps: int | None = None,
        baseline: np.ndarray | None = None,
    ) -> dict[str, Any]:
        """Attributions of raw inputs ``x`` ``(N, *shape)``: ``attributions`` (the shape of
        ``x``), ``target`` (the explained class per input), ``predicted``, ``probability``
        (of the target) and, for integrated gradients, ``convergence_delta``. ``baseline``
        is in the model's scaled inputs (default zeros)."""
        from canonml.evaluate.explain import attribute, class_probabilities

        cfg = self.settings_for(method, steps)
        scaled = self.scaled(x)
        if not np.isfinite(scaled).all():
            raise CanonError("input: holds a value that is not a finite number")
        probs = class_probabilities(self.model, scaled)
        predicted = probs.argmax(axis=1)
        index = self.target_index(target)
        explained = predicted if index is None else np.full(len(x), index)
        base = np.zeros((1, *scaled.shape[1:]), np.float32) if baseline is None else baseline
        attr, delta = attribute(self.model, scaled, explained, cfg, base)
        return {
            "method": cfg.method,
            "attributions": attr,
            "target": explained.astype(np.int64),
            "predicted": predicted.astype(np.int64),
            "probability": probs[np.arange(len(x)), explained].astype(np.float32),
            "convergence_delta": delta,
        }


def open_explainer(path: str | os.PathLike[str]) -> Explainer:
    """The explainer of a package, or of the package of a run directory."""
    from canonml.package.convert import source_package

    return Explainer(source_package(Path(path)))


def explain_inputs(
    path: str | os.PathLike[str],
    inputs: list[str],
    method: str | None = None,
    target: str | None = None,
    steps: int | None = None,
    baseline: str = "zeros",
) -> list[dict[str, Any]]:
    """``canon explain``: one JSON-able row per input example — where it came from, the
    explained class, its probability and the attribution of every input value.

    ``baseline: mean`` needs the run directory (the mean of its training inputs)."""
    from canonml.package.convert import source_package
    from canonml.package.inputs import read_inputs

    pkg = source_package(Path(path))
    explainer = Explainer(pkg)
    base = None
    if baseline == "mean":
        base = _training_mean(Path(path))
    elif baseline != "zeros":
        raise CanonError(f"--baseline: '{baseline}' is not zeros or mean")
    x, refs = read_inputs(pkg, inputs)
    out = explainer.explain(x, method, target, steps, base)
    x_scaled = explainer.scaled(x)
    rows = []
    names = explainer.feature_names
    for i, ref in enumerate(refs):
        attr = out["attributions"][i]
        row: dict[str, Any] = {
            "input": ref,
            "method": out["method"],
            "baseline": baseline,
            "explained": explainer.labels[int(out["target"][i])],
            "predicted": explainer.labels[int(out["predicted"][i])],
            "probability": float(out["probability"][i]),
        }
        row["total"] = float(attr.sum())
        if out["convergence_delta"] is not None:
            row["convergence_delta"] = float(out["convergence_delta"][i])
        if names and attr.ndim == 1 and len(names) == len(attr):
            row["attributions"] = {n: float(v) for n, v in zip(names, attr, strict=True)}
        else:
            row["attributions"] = attr.tolist()
            row["scaled_input"] = x_scaled[i].tolist()
        rows.append(row)
    return rows


def write_explanation(rows: list[dict[str, Any]], path: Path, source: Path) -> Path:
    """``rows`` as JSON (``.json``) or as pictures (``.png``: heat maps over image inputs,
    bars of the largest attributions of table rows), written atomically."""
    import json

    from canonml.io import atomic_write

    suffix = path.suffix.lower()
    if suffix == ".json":
        atomic_write(path, json.dumps(rows, indent=2) + "\n")
        return path
    if suffix != ".png":
        raise CanonError(f"-o {path}: write .json or .png")
    from canonml.evaluate.explain_plots import example_bars, image_grid

    titles = [f"{r['input']}\np({r['explained']})={r['probability']:.2f}" for r in rows]
    if isinstance(rows[0]["attributions"], dict):
        examples = [
            {
                "attribution": list(r["attributions"].values()),
                "title": title.replace("\n", ": "),
            }
            for r, title in zip(rows, titles, strict=True)
        ]
        return example_bars(
            {"examples": examples, "feature_names": list(rows[0]["attributions"])}, path
        )
    shape = list(np.asarray(rows[0]["attributions"]).shape)
    examples = [{"input": r["scaled_input"], "attribution": r["attributions"]} for r in rows]
    return image_grid(examples, shape, titles, path)


def _training_mean(path: Path) -> np.ndarray:
    """The mean of the run's scaled training inputs (``--baseline mean``)."""
    from canonml.data.prepare import prepare
    from canonml.package.convert import is_run_dir
    from canonml.rundir import existing_run_dir
    from canonml.spec import load_spec
    from canonml.tasks import get_task

    if not is_run_dir(path):
        raise CanonError(
            "--baseline mean needs the run directory (the mean of its training inputs), not a "
            "package; give RUN_DIR or use --baseline zeros"
        )
    spec = load_spec(existing_run_dir(str(path)).spec)
    data, _ = prepare(spec, get_task(spec))
    return data.train.x.mean(axis=0, keepdims=True, dtype=np.float64).astype(np.float32)
