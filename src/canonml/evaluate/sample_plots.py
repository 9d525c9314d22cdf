"""Figures of a GAN run — the sample grid, the reference classifier's class shares, the same
noise over training, the training curves (D and G losses, D's outputs, FD per epoch) — and
the report's Samples section, which shows them beside FD and its floor, baseline and ceiling.

As in ``canonml.evaluate.plots``: ``Figure`` objects rendered by Agg, never pyplot; each
written atomically as one PNG without metadata. Images come in raw units ``(N, C, H, W)``;
a grid is one mosaic drawn by one ``imshow`` (a hundred axes take seconds to draw), grey
images as dark ink on white, as the other image figures of the report.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from canonml.evaluate.plots import _epochs_axis, _figure, _names, _save, _series, _text
from canonml.evaluate.report import ReportContext, facts, figure, section, table

if TYPE_CHECKING:
    from matplotlib.axes import Axes

CELL = 0.45  # inches per image of a grid
GAP = 1  # pixels between two images of a mosaic
# Figures of the Samples section, shown there rather than under "Test results".
FIGURES = {
    "samples": "Generated samples (fixed noise; a row per class when conditional)",
    "class_shares": "The reference classifier's class of each generated sample (dotted: the "
    "2% coverage threshold; dashed: an even share)",
    "samples_over_epochs": "The same noise over training",
    "gan_training": "D and G losses (2·ln 2 and ln 2: where D cannot tell), D's mean "
    "probability of real on real and generated images, and FD vs the validation split",
}


def mosaic(images: np.ndarray, rows: int, cols: int, pixel_max: float | None) -> np.ndarray:
    """``images`` (N, C, H, W) row by row as one (rows·H, cols·W[, 3]) array in [0, 1]."""
    n, c, h, w = images.shape
    top = float(pixel_max) if pixel_max else float(np.max(images) or 1.0)
    cells = np.clip(np.asarray(images, dtype=np.float64) / top, 0.0, 1.0).transpose(0, 2, 3, 1)
    # Gaps light grey on the page: grey images are drawn inverted (ink on paper).
    out = np.full((rows * (h + GAP) - GAP, cols * (w + GAP) - GAP, c), 0.15 if c == 1 else 1.0)
    for i, cell in enumerate(cells[: rows * cols]):
        r, q = divmod(i, cols)
        out[r * (h + GAP) : r * (h + GAP) + h, q * (w + GAP) : q * (w + GAP) + w] = cell
    return out[:, :, 0] if c == 1 else out[:, :, :3]


def _fixed(fig: Any) -> None:
    """Keep the layout set here (``_save`` would fit margins to tick labels these lack)."""
    from matplotlib.layout_engine import PlaceHolderLayoutEngine

    fig.set_layout_engine(PlaceHolderLayoutEngine(adjust_compatible=True, colorbar_gridspec=True))


def _show(ax: Axes, picture: np.ndarray) -> None:
    if picture.ndim == 2:  # grey: ink on paper
        ax.imshow(1.0 - picture, cmap="gray", vmin=0.0, vmax=1.0, interpolation="nearest")
    else:
        ax.imshow(picture, interpolation="nearest")
    ax.set_xticks([])
    ax.set_yticks([])


def sample_grid(
    images: np.ndarray, row_names: Sequence[str] | None, pixel_max: float | None, path: Path
) -> Path:
    """Generated images in rows of 10 (a row per class, named on the left, when conditional)."""
    from matplotlib.figure import Figure

    n, _, h, _ = images.shape
    cols = min(10, n)
    rows = math.ceil(n / cols)
    fig = Figure(figsize=(cols * CELL + 0.6, rows * CELL + 0.2), dpi=100)
    ax = fig.add_axes((0.5 / (cols * CELL + 0.6), 0.02, 1 - 0.55 / (cols * CELL + 0.6), 0.96))
    _show(ax, mosaic(images, rows, cols, pixel_max))
    if row_names:
        ax.set_yticks([r * (h + GAP) + h / 2 - 0.5 for r in range(rows)])
        ax.set_yticklabels([_text(s) for s in row_names[:rows]], fontsize="small")
        ax.tick_params(length=0)
    _fixed(fig)
    return _save(fig, path)


def class_shares(
    shares: Sequence[float], label_names: Sequence[str] | None, threshold: float, path: Path
) -> Path:
    """The share of generated samples the reference classifier puts in each class."""
    k = len(shares)
    names = [_text(s) for s in _names(label_names, k)]
    fig = _figure(width=max(4.0, 0.4 * k + 1.5), height=3.0, fit=True)
    ax = fig.axes[0]
    values = np.asarray(shares, dtype=np.float64)
    colours = ["tab:blue" if v >= threshold else "tab:red" for v in values]
    ax.bar(range(k), values, color=colours)
    ax.axhline(threshold, color="grey", linestyle=":", label=f"{threshold:.0%}")
    ax.axhline(1.0 / max(k, 1), color="grey", linestyle="--", label="even")
    ax.set_xticks(range(k), names, rotation=45 if k > 10 else 0)
    ax.set_ylabel("share of samples")
    ax.legend(fontsize="small")
    return _save(fig, path)


def epoch_grids(paths: Sequence[Path], epochs: Sequence[int], path: Path) -> Path:
    """The sample grids written during training (``samples_epoch_NNN.png``) side by side."""
    from matplotlib.figure import Figure
    from PIL import Image

    pictures = []
    for p in paths:
        with Image.open(p) as im:
            pictures.append(np.asarray(im.convert("L" if im.mode == "L" else "RGB")) / 255.0)
    width = 2.2 * len(pictures)
    fig = Figure(figsize=(width, 2.5), dpi=100)
    axes = fig.subplots(1, len(pictures), squeeze=False)[0]
    for ax, picture, epoch in zip(axes, pictures, epochs, strict=True):
        _show(ax, picture)
        ax.set_title(f"epoch {epoch}", fontsize="small")
    fig.subplots_adjust(left=0.01, right=0.99, bottom=0.02, top=0.88, wspace=0.05)
    _fixed(fig)
    return _save(fig, path)


def gan_training(history: Sequence[dict[str, Any]], path: Path) -> Path:
    """D and G losses, D's mean outputs on real and generated images, and FD per epoch."""
    has_fd = any("val_fd" in row for row in history)
    fig = _figure(width=13.5 if has_fd else 9.0, height=3.5, ncols=3 if has_fd else 2, fit=True)
    losses, outputs = fig.axes[0], fig.axes[1]
    for key, label, colour in (("loss", "D loss", "tab:red"), ("g_loss", "G loss", "tab:blue")):
        for split, style in (("train", "-"), ("val", "--")):
            epochs, values = _series(history, f"{split}_{key}")
            if epochs:
                losses.plot(epochs, values, style, color=colour, label=f"{label} ({split})")
    for level in (2 * math.log(2), math.log(2)):
        losses.axhline(level, color="grey", linestyle=":", linewidth=0.8)
    losses.set_ylabel("loss")
    for key, label, colour in (
        ("d_real", "D(real)", "tab:green"),
        ("d_fake", "D(G(z))", "tab:purple"),
    ):
        epochs, values = _series(history, f"train_{key}")
        if epochs:
            outputs.plot(epochs, values, color=colour, label=label)
    outputs.axhline(0.5, color="grey", linestyle=":", linewidth=0.8)
    outputs.set_ylim(0.0, 1.0)
    outputs.set_ylabel("mean probability of real")
    axes = [losses, outputs]
    if has_fd:
        fd = fig.axes[2]
        epochs, values = _series(history, "val_fd")
        fd.plot(epochs, values, marker=".", color="tab:orange")
        if values and min(values) > 0 and max(values) / min(values) > 10:
            fd.set_yscale("log")
        fd.set_ylabel("FD vs validation split")
        axes.append(fd)
    for ax in axes:
        _epochs_axis(ax)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize="small")
    return _save(fig, path)


# ---- the report


@section("Samples", order=45)
def _samples(ctx: ReportContext) -> str | None:
    """FD beside its floor, baseline and ceiling, coverage, confidence and the grids.

    Rendered before "Test results", this section takes the task's figures out of
    ``ctx.captions`` so they are shown here, next to the numbers, and not twice.
    """
    ev = ctx.evaluation
    needed = ("fd", "fd_floor", "fd_gaussian", "fd_noise", "fd_ratio", "confidence")
    # A generator's evaluation: its details say how FD and coverage were measured.
    if ev is None or not {"fd", "coverage", "reference"} <= set(ev.extra.get("details") or {}):
        return None
    if any(k not in ev.metrics for k in needed):
        return None
    m, d = ev.metrics, ev.extra["details"]
    fd, cover, ref = d["fd"], d["coverage"], d["reference"]
    rows = [
        ("real training images (the floor)", m["fd_floor"], f"{fd['n']:,} of the train split"),
        ("a Gaussian fitted to the training pixels (the baseline)", m["fd_gaussian"], ""),
        ("uniform noise (the ceiling)", m["fd_noise"], ""),
        ("this model's samples", m["fd"], f"{m['fd_ratio']:.1%} of the ceiling"),
    ]
    verdict = "below" if m["fd"] < m["fd_gaussian"] else "NOT below"
    parts = [
        f"<p>Fréchet distance in the reference classifier's features, each set of "
        f"{fd['n']:,} images against the {fd['n_vs']:,} images of the {fd['vs_split']} split "
        f"(lower is closer to real images). The model is <strong>{verdict}</strong> the "
        "fitted-Gaussian baseline.</p>",
        table(["candidate", "FD", ""], [(a, f"{b:.3g}", c) for a, b, c in rows]),
    ]
    facts_rows: list[tuple[str, object]] = [
        (
            "class coverage",
            f"{cover['classes_covered']}/{cover['classes']} classes get ≥ "
            f"{cover['threshold']:.0%} of {cover['samples']:,} samples",
        ),
        ("mean confidence of the reference classifier", f"{m['confidence']:.3f}"),
    ]
    if math.isfinite(m.get("conditional_accuracy", math.nan)):
        facts_rows.append(
            ("reference accuracy on the classes asked for", f"{m['conditional_accuracy']:.3f}")
        )
    facts_rows += [
        ("reference classifier sha256", ref["sha256"]),
        (
            "reference classifier",
            f"definition version {ref['version']}; accuracy {ref['accuracy']:.3f} on the "
            f"{ref['checked_on']} split",
        ),
    ]
    parts.append(facts(facts_rows))
    parts.append(
        "<p>FD alone can mislead (a model that copies a few training images, or one class, "
        "can score well): read it with the coverage, the confidence and the grids.</p>"
    )
    for key, caption in FIGURES.items():
        ctx.captions.pop(key, None)
        parts.append(figure(ctx, key, caption))
    return "".join(parts)
