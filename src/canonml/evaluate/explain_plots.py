"""The plots of ``explanations.json`` (``canonml.evaluate.explain``), one PNG each."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np

from canonml.evaluate.plots import SIZE, _figure, _save, _text

TOP_FEATURES = 8  # bars per example
TOP_GLOBAL = 15  # features in the global-importance plot


def explain_plots(result: dict[str, Any], out: Path) -> dict[str, str]:
    """Every plot of ``result`` under ``out``; file names (relative to the run) by key."""
    out.mkdir(parents=True, exist_ok=True)
    made = {
        "explain_deletion": deletion_plot(result["deletion"], out / "explain_deletion.png"),
        "explain_randomisation": randomisation_plot(
            result["randomisation"], out / "explain_randomisation.png"
        ),
    }
    if result["examples"]:
        if result["kind"] == "image":
            made["explain_examples"] = heat_maps(result, out / "explain_examples.png")
        else:
            made["explain_examples"] = example_bars(result, out / "explain_examples.png")
    if "global" in result:
        made["explain_global"] = global_plot(result, out / "explain_global.png")
    return {key: f"plots/{path.name}" for key, path in made.items()}


def deletion_plot(d: dict[str, Any], path: Path) -> Path:
    """The predicted class's probability against the share of inputs removed."""
    fig = _figure()
    ax = fig.axes[0]
    f = np.asarray(d["fractions"])
    random, spread = np.asarray(d["random"]), np.asarray(d["random_spread"])
    ax.plot(f, d["attributed"], label=f"most attributed first (area {d['area_attributed']:.3f})")
    ax.plot(f, random, "--", label=f"random order (area {d['area_random']:.3f})")
    ax.fill_between(f, random - spread, random + spread, alpha=0.2, color="C1")
    ax.set_xlabel("share of inputs replaced by the baseline")
    ax.set_ylabel("predicted-class probability")
    ax.set_ylim(0, 1.02)
    ax.grid(alpha=0.3)
    ax.legend(fontsize="small")
    return _save(fig, path)


def randomisation_plot(r: dict[str, Any], path: Path) -> Path:
    """Per-example rank correlations, trained against re-initialised attributions."""
    fig = _figure()
    ax = fig.axes[0]
    bins = [i / 20 - 1 for i in range(41)]
    ax.hist(r["spearman"], bins=bins, alpha=0.7, label="signed attributions")
    ax.hist(r["spearman_abs"], bins=bins, alpha=0.5, label="|attributions|")
    ax.axvline(r["bound"], color="grey", linestyle=":", label=f"bound {r['bound']:g}")
    ax.set_xlabel("Spearman ρ, trained vs re-initialised model")
    ax.set_ylabel("examples")
    ax.legend(fontsize="small")
    return _save(fig, path)


def _image(values: list[float], shape: list[int]) -> np.ndarray:
    """(H, W) or (H, W, 3) for imshow from a flattened (C, H, W) array."""
    arr = np.asarray(values, dtype=np.float64).reshape(shape)
    if arr.shape[0] == 1:
        return arr[0]
    arr = np.moveaxis(arr, 0, -1)[..., :3]
    low, high = arr.min(), arr.max()
    return (arr - low) / (high - low) if high > low else np.zeros_like(arr)


def _heat(values: list[float], shape: list[int]) -> np.ndarray:
    """Attribution summed over channels: (H, W)."""
    return np.asarray(values, dtype=np.float64).reshape(shape).sum(axis=0)


def heat_maps(result: dict[str, Any], path: Path) -> Path:
    """Per example: the input, its attribution and the re-initialised model's attribution
    (red: raises the predicted class's probability, blue: lowers it)."""
    titles = [
        f"{_text(e['label'])} → {_text(e['predicted'])}{'' if e['correct'] else ' ✗'}\n"
        f"p={e['probability']:.2f}"
        for e in result["examples"]
    ]
    return image_grid(result["examples"], result["input_shape"], titles, path)


def image_grid(
    examples: list[dict[str, Any]], shape: list[int], titles: list[str], path: Path
) -> Path:
    """A column per example: its ``input``, its ``attribution`` and, where given, its
    ``attribution_reinitialised``, each map on its own symmetric colour scale."""
    keys = [("attribution", "attribution"), ("attribution_reinitialised", "re-initialised")]
    keys = [(k, name) for k, name in keys if all(k in e for e in examples)]
    k = len(examples)
    fig = _figure(width=1.6 * k + 0.6, height=1.8 * (1 + len(keys)), fit=True)
    fig.clear()
    axes = fig.subplots(1 + len(keys), k, squeeze=False)
    for j, e in enumerate(examples):
        picture = _image(e["input"], shape)
        axes[0][j].imshow(picture, cmap="gray" if picture.ndim == 2 else None)
        axes[0][j].set_title(titles[j], fontsize="small")
        for i, (key, _) in enumerate(keys, start=1):
            heat = _heat(e[key], shape)
            top = float(np.max(np.abs(heat))) or 1.0
            axes[i][j].imshow(heat, cmap="RdBu_r", vmin=-top, vmax=top)
    names = ["input", *(name for _, name in keys)]
    for i, row in enumerate(axes):
        for ax in row:
            ax.set_xticks([])
            ax.set_yticks([])
        row[0].set_ylabel(names[i], fontsize="small")
    return _save(fig, path)


def example_bars(result: dict[str, Any], path: Path) -> Path:
    """Per example: the features with the largest |attribution|, signed bars."""
    examples, names = result["examples"], result["feature_names"]
    cols = 2 if len(examples) > 1 else 1
    rows = math.ceil(len(examples) / cols)
    fig = _figure(width=5.0 * cols, height=2.3 * rows + 0.3, fit=True)
    fig.clear()
    axes = np.atleast_1d(fig.subplots(rows, cols, squeeze=False)).ravel()
    for ax, e in zip(axes, examples, strict=False):
        a = np.asarray(e["attribution"])
        top = np.argsort(-np.abs(a), kind="stable")[:TOP_FEATURES][::-1]
        ax.barh(
            [_text(names[i]) for i in top],
            a[top],
            color=["C3" if v > 0 else "C0" for v in a[top]],
        )
        ax.axvline(0, color="grey", linewidth=0.8)
        ax.set_title(e.get("title") or _bar_title(e), fontsize="small")
        ax.tick_params(labelsize="x-small")
    for ax in axes[len(examples) :]:
        ax.set_visible(False)
    return _save(fig, path)


def _bar_title(e: dict[str, Any]) -> str:
    mark = "" if e["correct"] else " (wrong)"
    return (
        f"row {e['test_row']}: {_text(e['label'])} → {_text(e['predicted'])}{mark}, "
        f"p={e['probability']:.2f}"
    )


def global_plot(result: dict[str, Any], path: Path) -> Path:
    """Mean |attribution| and permutation importance of the most attributed features."""
    g, names = result["global"], result["feature_names"]
    a, p = np.asarray(g["attribution"]), np.asarray(g["permutation"])
    top = np.argsort(-a, kind="stable")[:TOP_GLOBAL][::-1]
    labels = [_text(names[i]) for i in top]
    fig = _figure(width=2 * SIZE[0], height=0.28 * len(top) + 1.2, fit=True)
    fig.clear()
    left, right = fig.subplots(1, 2, sharey=True)
    left.barh(labels, a[top], color="C0")
    left.set_xlabel("mean |attribution|")
    right.barh(labels, p[top], xerr=np.asarray(g["permutation_std"])[top], color="C1")
    right.set_xlabel("permutation importance (accuracy drop)")
    for ax in (left, right):
        ax.tick_params(labelsize="x-small")
        ax.grid(alpha=0.3, axis="x")
    return _save(fig, path)
