"""``audit`` / ``canon audit RUN_DIR``: membership inference against the trained model.

A post-training stage (DESIGN §7). Members are training examples, non-members test examples
the model never saw, the same number of each (a seeded draw: as many as the test split
holds, at most half the training split and ``examples``). Two attacks score every one:

- **loss**: the log-probability of the true class (regression: minus the squared error),
  in float64 — float32 rounds a confident point's loss to 0 and ties them;
- **LiRA (offline)**, after Carlini et al. 2022: ``shadows`` models trained by the same
  spec on data disjoint from every audited example (the training examples that are not
  audited and the validation split: most of the target's data, so the shadows resemble
  it); each example's score is how far the target's logit-scaled
  confidence log(p / (1 − p)) lies above the shadows' mean for that example, in units of the
  shadows' spread (one variance over all examples: the variant for few shadows). Hard
  examples, which every model gets wrong, then stop looking like non-members.

For each: ROC-AUC with a bootstrap 95% interval, TPR at 1% and 0.1% FPR, and the largest
TPR − FPR. With ``privacy.dp`` the report puts the bound (ε, δ)-DP allows beside them:
TPR ≤ e^ε · FPR + δ. An interval that holds 0.5 is said to be indistinguishable from guessing.
"""

from __future__ import annotations

import copy
import dataclasses
import math
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from canonml.errors import SpecError
from canonml.io import write_json

if TYPE_CHECKING:
    import torch

    from canonml.data.prepare import Prepared
    from canonml.spec.root import Spec
    from canonml.tasks.base import Task

AUDIT_FILE = "audit.json"
FPRS = (0.01, 0.001)
BATCH = 1024


def run_audit(
    spec: Spec, task: Task, model: torch.nn.Module, data: Prepared, run_dir: Path | None
) -> dict[str, Any]:
    """Both attacks on ``model``; written to ``run_dir/audit.json`` when given."""
    cfg = spec.audit
    assert cfg is not None
    if data.kind == "text":
        raise SpecError("audit", "membership audits take tabular or image data, not text yet")
    rng = np.random.default_rng(spec.seed)
    m = min(len(data.train) // 2, len(data.test), cfg.examples)
    if m < 20:
        raise SpecError("audit", f"needs at least 20 test examples to audit, has {m}")
    members = np.sort(rng.choice(len(data.train), m, replace=False))
    outsiders = np.sort(rng.choice(len(data.test), m, replace=False))
    # The shadows learn from everything not audited: the other training examples and the
    # validation split (most of the target's own data, so they resemble it).
    unaudited = np.setdiff1d(np.arange(len(data.train)), members)
    target = _scores(model, data, members, outsiders)
    is_member = np.r_[np.ones(m), np.zeros(m)]
    loss = attack(target["loss"], is_member, cfg.resamples, spec.seed)
    result: dict[str, Any] = {"members": m, "non_members": m, "attacks": {"loss": loss}}
    if cfg.shadows > 0:
        phis = []
        for k in range(cfg.shadows):
            shadow = _train_shadow(spec, task, data, unaudited, k)
            phis.append(_scores(shadow, data, members, outsiders)["phi"])
        shadow_phi = np.stack(phis)  # (K, 2m)
        mean = shadow_phi.mean(axis=0)
        spread = float(np.std(shadow_phi - mean)) or 1e-12
        lira = (target["phi"] - mean) / spread
        result["attacks"]["lira"] = attack(lira, is_member, cfg.resamples, spec.seed)
        result["shadows"] = cfg.shadows
        result["shadow_examples"] = int(len(unaudited) + len(data.val))
    dp = spec.privacy.dp
    if dp is not None and dp.is_private and "privacy" in data.info:
        spent = data.info["privacy"]
        result["dp_bound"] = dp_bound(spent["epsilon"], spent["delta"])
    if run_dir is not None:
        write_json(run_dir / AUDIT_FILE, result)
    return result


def attack(score: np.ndarray, is_member: np.ndarray, resamples: int, seed: int) -> dict[str, Any]:
    """ROC-AUC (bootstrap interval), TPR at low FPR and the largest advantage of a score
    that is higher for members."""
    from sklearn.metrics import roc_auc_score, roc_curve

    auc = float(roc_auc_score(is_member, score))
    rng = np.random.default_rng(seed)
    m = int(is_member.sum())
    members, outsiders = np.flatnonzero(is_member == 1), np.flatnonzero(is_member == 0)
    draws = []
    for _ in range(resamples):
        rows = np.r_[rng.choice(members, m), rng.choice(outsiders, len(outsiders))]
        draws.append(roc_auc_score(is_member[rows], score[rows]))
    low, high = np.percentile(draws, [2.5, 97.5]) if draws else (auc, auc)
    fpr, tpr, _ = roc_curve(is_member, score)
    return {
        "auc": auc,
        "auc_interval": [float(low), float(high)],
        "chance": bool(low <= 0.5 <= high),
        "tpr_at_fpr": {f"{f:g}": float(np.interp(f, fpr, tpr)) for f in FPRS},
        "advantage": float(np.max(tpr - fpr)),
        "roc": {"fpr": _thin(fpr), "tpr": _thin(tpr)},
    }


def dp_bound(epsilon: float, delta: float) -> dict[str, Any]:
    """What (ε, δ)-DP allows any attack: TPR ≤ e^ε · FPR + δ (and the mirror bound)."""
    bound = {f"{f:g}": min(1.0, math.exp(epsilon) * f + delta) for f in FPRS}
    # The largest TPR − FPR over all FPR: (e^ε − 1 + 2δ) / (e^ε + 1).
    advantage = min(1.0, (math.exp(epsilon) - 1 + 2 * delta) / (math.exp(epsilon) + 1))
    return {"epsilon": epsilon, "delta": delta, "tpr_at_fpr": bound, "advantage": advantage}


def _scores(
    model: torch.nn.Module, data: Prepared, members: np.ndarray, outsiders: np.ndarray
) -> dict[str, np.ndarray]:
    """``loss`` and ``phi`` of the members then the non-members, float64."""
    import torch

    x = np.concatenate([data.train.x[members], data.test.x[outsiders]])
    y = np.concatenate([data.train.y[members], data.test.y[outsiders]])
    double = copy.deepcopy(model).double().eval()
    with torch.no_grad():
        out = torch.cat(
            [
                double(torch.from_numpy(np.ascontiguousarray(x[i : i + BATCH])).double())
                for i in range(0, len(x), BATCH)
            ]
        )
    if data.label_names:  # classes: logits (B, K)
        labels = torch.from_numpy(y.astype(np.int64))[:, None]
        # d = log Σ_{j≠y} e^(l_j − l_y): log p_y = −softplus(d) and log(p / (1 − p)) = −d,
        # exact even where p_y rounds to 1 (log_softmax would give 0 for all of them).
        margin = (out - out.gather(1, labels)).scatter(1, labels, -math.inf)
        d = margin.logsumexp(dim=1)
        return {"loss": (-torch.nn.functional.softplus(d)).numpy(), "phi": (-d).numpy()}
    error = -((out.reshape(len(y)) - torch.from_numpy(y.astype(np.float64))) ** 2)
    return {"loss": error.numpy(), "phi": error.numpy()}


def _train_shadow(
    spec: Spec, task: Task, data: Prepared, unaudited: np.ndarray, k: int
) -> torch.nn.Module:
    """A model of the spec trained on a seeded 80% of the shadow pool (the training examples
    that are not audited + the validation split): disjoint from every audited example."""
    import torch

    from canonml.data.prepare import Split
    from canonml.models import build_model
    from canonml.train.session import train_model

    rng = np.random.default_rng(spec.seed + 1 + k)
    x = np.concatenate([data.train.x[unaudited], data.val.x])
    y = np.concatenate([data.train.y[unaudited], data.val.y])
    rows = rng.permutation(len(x))[: max(2, int(0.8 * len(x)))]
    empty = Split(x[:0], y[:0])
    shadow_data = dataclasses.replace(
        data, train=Split(x[rows], y[rows]), val=empty, info=dict(data.info)
    )
    updates: dict[str, Any] = {"seed": spec.seed + 1 + k}
    dp = spec.privacy.dp
    if dp is not None and dp.is_private:  # δ for the shadow's own N (the default)
        updates["privacy"] = spec.privacy.model_copy(
            update={"dp": dp.model_copy(update={"delta": None})}
        )
    if spec.train.early_stopping is not None:  # no validation split: train every epoch
        updates["train"] = spec.train.model_copy(update={"early_stopping": None})
    shadow_spec = spec.model_copy(update=updates)
    torch.manual_seed(shadow_spec.seed)
    io = task.model_io(data.input_shape, data.label_names, data.preprocess)
    model = build_model(shadow_spec.model, io)
    train_model(shadow_spec, task, model, shadow_data, None)
    return model


def _thin(values: np.ndarray, keep: int = 200) -> list[float]:
    """At most ``keep`` points of a curve, for the plot (the ends kept)."""
    idx = np.unique(np.linspace(0, len(values) - 1, min(keep, len(values))).astype(int))
    return [float(v) for v in values[idx]]


def audit_run(run_dir: str, shadows: int | None = None) -> tuple[dict[str, Any], str]:
    """Audit a finished run (``canon audit``): its spec, data and final weights; the
    ``audit.json`` it writes and the result. ``shadows`` overrides ``audit.shadows``."""
    import json

    from canonml.data.prepare import prepare
    from canonml.errors import CheckpointError
    from canonml.models.weights import load_trained
    from canonml.rundir import existing_run_dir
    from canonml.spec import load_spec
    from canonml.spec.privacy import AuditSpec
    from canonml.tasks import get_task

    run = existing_run_dir(run_dir)
    spec = load_spec(run.spec)
    cfg = spec.audit or AuditSpec()
    if shadows is not None:
        cfg = cfg.model_copy(update={"shadows": shadows})
    spec = spec.model_copy(update={"audit": cfg})
    task = get_task(spec)
    if not run.weights.is_file():
        raise CheckpointError(f"{run.weights}: missing; the run did not finish (use --resume)")
    data, _ = prepare(spec, task)
    io = task.model_io(data.input_shape, data.label_names, data.preprocess)
    model = load_trained(
        spec.model, io, run.weights.read_bytes(), str(run.weights), CheckpointError
    )
    privacy = run.path / "privacy.json"
    if privacy.is_file():
        data.info["privacy"] = json.loads(privacy.read_text(encoding="utf-8"))
    result = run_audit(spec, task, model, data, run.path)
    return result, str(run.path / AUDIT_FILE)


AUDIT_COLUMNS = (
    "attack",
    "ROC-AUC",
    "95% interval",
    "TPR @ 1% FPR",
    "TPR @ 0.1% FPR",
    "max TPR − FPR",
)


def audit_rows(result: dict[str, Any]) -> list[tuple[str, ...]]:
    """One row of text per attack (``AUDIT_COLUMNS``), then the DP bound's, if any."""
    names = {"loss": "loss threshold", "lira": f"LiRA, offline ({result.get('shadows')} shadows)"}
    rows: list[tuple[str, ...]] = []
    for key, r in result["attacks"].items():
        low, high = r["auc_interval"]
        rows.append(
            (
                names.get(key, key) + (" — chance" if r["chance"] else ""),
                f"{r['auc']:.4f}",
                f"{low:.4f} – {high:.4f}",
                f"{r['tpr_at_fpr']['0.01']:.4f}",
                f"{r['tpr_at_fpr']['0.001']:.4f}",
                f"{r['advantage']:.4f}",
            )
        )
    bound = result.get("dp_bound")
    if bound:
        limits = (bound["tpr_at_fpr"]["0.01"], bound["tpr_at_fpr"]["0.001"], bound["advantage"])
        rows.append(
            (
                f"bound of (ε = {bound['epsilon']:.3g}, δ = {bound['delta']:.2g})-DP",
                "",
                "",
                *(f"≤ {v:.4f}" for v in limits),
            )
        )
    return rows
