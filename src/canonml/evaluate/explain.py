"""``explain`` / ``canon explain``: attributions of a classifier's predictions, with Captum.

A post-training stage (DESIGN §7). What is explained is the **probability of the predicted
class** (softmax of the model's scores) with respect to the model's input — the scaled
features of a table, the pixels of an image — so integrated gradients' attributions add up
to p(x) − p(baseline) (the "convergence delta" is how far they miss).

Two checks say whether the attributions can be trusted, each on ``checks`` test examples:

- **deletion test**: replace the k inputs with the highest attribution by the baseline, for
  k from none to all, and follow the predicted class's probability; the same with k inputs
  chosen at random (5 draws). A faithful attribution makes the probability fall faster: the
  area under its curve is lower than the random one's, for most examples (a one-sided
  Wilcoxon signed-rank test over the examples, p < 0.01).
- **model-randomisation check** (Adebayo et al. 2018): the same attributions for the same
  architecture with re-initialised weights. An explanation that does not depend on what the
  model learned is an edge detector, not an explanation: the mean Spearman rank correlation
  between the trained and the re-initialised model's attributions must stay below 0.5.

Tables also get the global importance of each feature (mean |attribution|) beside
scikit-learn's permutation importance on the test split, and their rank correlation.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from canonml.errors import SpecError
from canonml.io import write_json

if TYPE_CHECKING:
    import torch

    from canonml.data.prepare import Prepared
    from canonml.spec.explain import ExplainSpec
    from canonml.spec.root import Spec
    from canonml.tasks.base import Task

EXPLAIN_FILE = "explanations.json"
METHOD_NAMES = {
    "integrated_gradients": "integrated gradients",
    "saliency": "saliency (|gradient|)",
    "gradient_shap": "gradient SHAP",
    "occlusion": "occlusion",
}
RANDOM_DRAWS = 5  # random deletion orders per example
MAX_POINTS = 33  # deletion steps for inputs with more features than this
P_VALUE = 0.01  # the deletion test's significance level
MAX_RANK_CORRELATION = 0.5  # the randomisation check's bound
BATCH = 64  # examples per attribution call
PERMUTATION_REPEATS = 10


def probabilities(model: torch.nn.Module) -> torch.nn.Module:
    """``model`` followed by a softmax: the function whose output is explained."""
    from torch import nn

    class Probabilities(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.model = model

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.model(x).softmax(dim=-1)

    return Probabilities().eval()


def class_probabilities(model: torch.nn.Module, x: np.ndarray) -> np.ndarray:
    """Softmax probabilities ``(N, K)`` of ``model`` on the model-space inputs ``x``."""
    import torch

    forward = probabilities(model)
    with torch.no_grad():
        parts = [
            forward(torch.from_numpy(np.ascontiguousarray(x[i : i + 4096]))).numpy()
            for i in range(0, len(x), 4096)
        ]
    return np.concatenate(parts) if parts else np.zeros((0, 0), np.float32)


def attribute(
    model: torch.nn.Module,
    x: np.ndarray,
    target: np.ndarray,
    cfg: ExplainSpec,
    baseline: np.ndarray,
    seed: int = 0,
) -> tuple[np.ndarray, np.ndarray | None]:
    """Attributions (the shape of ``x``) of each example's ``target`` class probability, and
    integrated gradients' convergence delta per example (None for the other methods)."""
    import torch
    from captum import attr as ca

    forward = probabilities(model)
    base = torch.from_numpy(np.ascontiguousarray(baseline, dtype=np.float32))
    parts, deltas = [], []
    numpy_state = np.random.get_state()  # Captum's gradient SHAP draws from NumPy's global RNG
    np.random.seed(seed)  # noqa: NPY002
    try:
        with torch.random.fork_rng():
            torch.manual_seed(seed)  # ... and its noise from torch's
            for i in range(0, len(x), BATCH):
                xb = torch.from_numpy(np.ascontiguousarray(x[i : i + BATCH], dtype=np.float32))
                tb = torch.from_numpy(np.asarray(target[i : i + BATCH], dtype=np.int64))
                a, delta = _one_batch(ca, forward, xb, tb, cfg, base)
                parts.append(a.detach().numpy().astype(np.float32))
                if delta is not None:
                    deltas.append(delta.detach().numpy().astype(np.float64))
    finally:
        np.random.set_state(numpy_state)
    return np.concatenate(parts), (np.concatenate(deltas) if deltas else None)


def _one_batch(
    ca: Any,
    forward: torch.nn.Module,
    xb: torch.Tensor,
    tb: torch.Tensor,
    cfg: ExplainSpec,
    base: torch.Tensor,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """One batch through Captum's ``cfg.method`` (``ca``: ``captum.attr``)."""
    if cfg.method == "integrated_gradients":
        a, delta = ca.IntegratedGradients(forward).attribute(
            xb,
            baselines=base.expand_as(xb),
            target=tb,
            n_steps=cfg.steps,
            return_convergence_delta=True,
        )
        return a, delta
    if cfg.method == "saliency":
        return ca.Saliency(forward).attribute(xb.requires_grad_(), target=tb, abs=True), None
    if cfg.method == "gradient_shap":
        shap = ca.GradientShap(forward)
        return shap.attribute(xb, baselines=base, n_samples=cfg.steps, stdevs=0.1, target=tb), None
    window, strides = _occlusion_window(tuple(xb.shape[1:]), cfg.window)
    occlusion = ca.Occlusion(forward)
    a = occlusion.attribute(
        xb, sliding_window_shapes=window, strides=strides, baselines=base, target=tb
    )
    return a, None


def _occlusion_window(shape: tuple[int, ...], side: int) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """A patch of ``side`` × ``side`` pixels over every channel, moved one pixel at a time;
    one feature at a time for a table."""
    if len(shape) == 3:
        side = min(side, shape[1], shape[2])
        return (shape[0], side, side), (shape[0], 1, 1)
    return (1,) * len(shape), (1,) * len(shape)


def baseline_for(cfg: ExplainSpec, train_x: np.ndarray) -> np.ndarray:
    """What a removed input becomes, ``(1, *shape)`` float32: zeros of the model's input, or
    the training mean of each input."""
    if cfg.baseline == "mean":
        return train_x.mean(axis=0, keepdims=True, dtype=np.float64).astype(np.float32)
    return np.zeros((1, *train_x.shape[1:]), np.float32)


def run_explain(
    spec: Spec, task: Task, model: torch.nn.Module, data: Prepared, run_dir: Path | None
) -> dict[str, Any]:
    """Attributions, the deletion test and the randomisation check (and, for tables, the
    global importance); written to ``run_dir/explanations.json`` with plots when given."""
    cfg = spec.explain
    assert cfg is not None
    if data.kind == "text" or not data.label_names:
        raise SpecError("explain", "attributions need a classifier on a table or images")
    if len(data.test) < 2:
        raise SpecError("explain", f"needs at least 2 test examples, has {len(data.test)}")
    model.eval()
    rng = np.random.default_rng(spec.seed)
    n = min(len(data.test), cfg.checks)
    rows = np.sort(rng.choice(len(data.test), n, replace=False))
    x, y = data.test.x[rows].astype(np.float32), data.test.y[rows].astype(np.int64)
    base = baseline_for(cfg, data.train.x)
    probs = class_probabilities(model, x)
    pred = probs.argmax(axis=1)
    attr, delta = attribute(model, x, pred, cfg, base, spec.seed)
    random_model = reinitialised(model, spec.seed)
    attr_random, _ = attribute(random_model, x, pred, cfg, base, spec.seed)
    shown = pick_examples(pred, y, cfg.samples, rng)
    labels = [str(v) for v in data.label_names]
    result: dict[str, Any] = {
        "method": cfg.method,
        "baseline": cfg.baseline,
        "explained": "probability of the predicted class",
        "kind": data.kind,
        "input_shape": list(data.input_shape),
        "examples_checked": int(n),
        "test_accuracy_checked": float(np.mean(pred == y)),
        "baseline_values": base[0].ravel().tolist(),
        "deletion": deletion_test(
            lambda xs: class_probabilities(model, xs), x, pred, attr, base, rng
        ),
        "randomisation": randomisation_check(attr, attr_random),
        "examples": [
            {
                "test_row": int(rows[i]),
                "label": labels[int(y[i])],
                "predicted": labels[int(pred[i])],
                "probability": float(probs[i, pred[i]]),
                "correct": bool(pred[i] == y[i]),
                "attribution": attr[i].ravel().tolist(),
                "attribution_reinitialised": attr_random[i].ravel().tolist(),
                "input": x[i].ravel().tolist(),
            }
            for i in shown
        ],
    }
    if delta is not None:
        result["convergence_delta"] = {
            "mean_abs": float(np.mean(np.abs(delta))),
            "max_abs": float(np.max(np.abs(delta))),
        }
    if data.kind != "image":
        result["feature_names"] = list(data.feature_names)
        result["global"] = global_importance(model, data, attr, spec.seed)
    if run_dir is not None:
        from canonml.evaluate.explain_plots import explain_plots

        result["plots"] = explain_plots(result, run_dir / "plots")
        write_json(run_dir / EXPLAIN_FILE, result)
    return result


def pick_examples(pred: np.ndarray, y: np.ndarray, k: int, rng: np.random.Generator) -> list[int]:
    """Up to ``k`` examples: at most half of them wrong predictions, the rest right ones."""
    wrong = np.flatnonzero(pred != y)
    right = np.flatnonzero(pred == y)
    n_wrong = min(len(wrong), k // 2)
    chosen = list(rng.choice(wrong, n_wrong, replace=False)) if n_wrong else []
    n_right = min(len(right), k - n_wrong)
    chosen += list(rng.choice(right, n_right, replace=False)) if n_right else []
    return sorted(int(i) for i in chosen)


def reinitialised(model: torch.nn.Module, seed: int) -> torch.nn.Module:
    """A copy of ``model`` with every layer's parameters drawn afresh (seeded)."""
    import torch

    clone = copy.deepcopy(model).eval()
    with torch.random.fork_rng():
        torch.manual_seed(seed + 7919)
        for module in clone.modules():
            reset = getattr(module, "reset_parameters", None)
            if module is not clone and callable(reset):
                reset()
    return clone


def deletion_steps(features: int) -> np.ndarray:
    """How many inputs are removed at each point of the curve: all counts for a few
    features, else ``MAX_POINTS`` evenly spaced ones."""
    if features + 1 <= MAX_POINTS:
        return np.arange(features + 1)
    return np.unique(np.linspace(0, features, MAX_POINTS).round().astype(int))


def deletion_test(
    predict: Callable[[np.ndarray], np.ndarray],
    x: np.ndarray,
    target: np.ndarray,
    attr: np.ndarray,
    baseline: np.ndarray,
    rng: np.random.Generator,
) -> dict[str, Any]:
    """The predicted class's probability as the most-attributed inputs (or random ones) are
    replaced by the baseline; the areas under both curves and the test between them."""
    from scipy.stats import wilcoxon

    n = len(x)
    flat, base = x.reshape(n, -1), baseline.reshape(1, -1)
    d = flat.shape[1]
    steps = deletion_steps(d)
    ranked = np.argsort(-attr.reshape(n, -1), axis=1, kind="stable")
    orders = [ranked] + [
        np.argsort(rng.random((n, d)), axis=1, kind="stable") for _ in range(RANDOM_DRAWS)
    ]
    curves = np.empty((len(orders), n, len(steps)))
    for j, order in enumerate(orders):
        position = np.empty_like(order)
        np.put_along_axis(position, order, np.arange(d)[None, :].repeat(n, 0), axis=1)
        for s, k in enumerate(steps):
            removed = np.where(position < k, base, flat).reshape(x.shape).astype(np.float32)
            p = predict(removed)
            curves[j, :, s] = p[np.arange(n), target]
    fractions = steps / max(d, 1)
    area = np.asarray(np.trapezoid(curves, fractions, axis=2))  # (orders, n)
    attributed, random = area[0], area[1:].mean(axis=0)
    differences = random - attributed
    if np.allclose(differences, 0):
        p_value = 1.0
    else:
        p_value = float(wilcoxon(differences, alternative="greater").pvalue)
    random_curves = curves[1:].mean(axis=0)
    return {
        "fractions": fractions.tolist(),
        "attributed": curves[0].mean(axis=0).tolist(),
        "random": random_curves.mean(axis=0).tolist(),
        "random_spread": random_curves.std(axis=0).tolist(),
        "area_attributed": float(attributed.mean()),
        "area_random": float(random.mean()),
        "share_below_random": float(np.mean(attributed < random)),
        "p_value": p_value,
        "holds": bool(attributed.mean() < random.mean() and p_value < P_VALUE),
    }


def randomisation_check(attr: np.ndarray, attr_random: np.ndarray) -> dict[str, Any]:
    """Spearman rank correlation, per example, between the trained and the re-initialised
    model's attributions (signed, and of their magnitudes)."""
    from scipy.stats import spearmanr

    n = len(attr)
    a, b = attr.reshape(n, -1), attr_random.reshape(n, -1)
    signed: list[float] = []
    magnitude: list[float] = []
    for i in range(n):
        for (u, v), out in (((a[i], b[i]), signed), ((np.abs(a[i]), np.abs(b[i])), magnitude)):
            if np.ptp(u) > 0 and np.ptp(v) > 0:
                out.append(float(spearmanr(u, v).statistic))
    mean = float(np.mean(signed)) if signed else math.nan
    mean_abs = float(np.mean(magnitude)) if magnitude else math.nan
    return {
        "spearman": signed,
        "spearman_abs": magnitude,
        "mean_spearman": mean,
        "mean_spearman_abs": mean_abs,
        "bound": MAX_RANK_CORRELATION,
        "holds": bool(math.isfinite(mean) and mean < MAX_RANK_CORRELATION),
    }


def global_importance(
    model: torch.nn.Module, data: Prepared, attr: np.ndarray, seed: int
) -> dict[str, Any]:
    """Mean |attribution| per feature beside scikit-learn's permutation importance
    (the drop in test accuracy when a feature's column is shuffled)."""
    from scipy.stats import spearmanr
    from sklearn.inspection import permutation_importance

    x, y = data.test.x.astype(np.float32), data.test.y.astype(np.int64)

    def accuracy(_: Any, xs: np.ndarray, ys: np.ndarray) -> float:
        return float(np.mean(class_probabilities(model, xs.astype(np.float32)).argmax(1) == ys))

    result = permutation_importance(
        _Fitted(), x, y, scoring=accuracy, n_repeats=PERMUTATION_REPEATS, random_state=seed
    )
    mean_abs = np.abs(attr.reshape(len(attr), -1)).mean(axis=0)
    rho = spearmanr(mean_abs, result.importances_mean).statistic
    return {
        "attribution": mean_abs.tolist(),
        "permutation": result.importances_mean.tolist(),
        "permutation_std": result.importances_std.tolist(),
        "spearman": None if not np.isfinite(rho) else float(rho),
    }


class _Fitted:
    """The already-trained model as scikit-learn's permutation importance takes it (the
    scorer calls the model itself)."""

    def fit(self, *_: Any) -> _Fitted:
        return self
