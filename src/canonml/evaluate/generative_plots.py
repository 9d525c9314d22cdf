"""Figures of a reconstruction run: images beside their reconstructions, a latent
interpolation strip, a VAE's latent map, the anomaly errors per class.

As in ``canonml.evaluate.plots``: ``Figure`` objects rendered by Agg, never pyplot; each
written atomically as one PNG without metadata. Images come in the model's units, ``(N, C,
H, W)`` with values in [0, 1].
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from canonml.evaluate.plots import DPI, _names, _text
from canonml.io import atomic_write

if TYPE_CHECKING:
    from matplotlib.figure import Figure

CELL = 0.8  # inches per image in a grid
TITLE = 0.25  # inches above a grid with titles
PAD = 1  # pixels of white between the images of a grid (at the images' scale)


def mosaic(images: np.ndarray, rows: int, cols: int) -> np.ndarray:
    """``images`` (≤ rows·cols, C, H, W) as one (rows·(H+PAD)-PAD, cols·(W+PAD)-PAD, C) array,
    row by row, on a white (0) background: one imshow draws a whole grid."""
    n, c, h, w = images.shape
    out = np.zeros((rows * (h + PAD) - PAD, cols * (w + PAD) - PAD, c))
    for i in range(min(n, rows * cols)):
        r, k = divmod(i, cols)
        out[r * (h + PAD) : r * (h + PAD) + h, k * (w + PAD) : k * (w + PAD) + w] = images[
            i
        ].transpose(1, 2, 0)
    return out


def _grid(images: np.ndarray, rows: int, cols: int, path: Path, titles: Sequence[str] = ()) -> Path:
    """``images`` (rows·cols, C, H, W) row by row in a grid; ``titles`` over the first row."""
    from matplotlib.figure import Figure

    _, c, h, w = images.shape
    top = TITLE if any(titles) else 0.0
    height = rows * CELL * h / w
    fig = Figure(figsize=(cols * CELL, height + top), dpi=DPI)
    ax = fig.add_axes((0.0, 0.0, 1.0, height / (height + top)))
    tiles = mosaic(images, rows, cols)
    if c == 1:  # grey: ink dark on white, as digits are drawn
        ax.imshow(tiles[:, :, 0], cmap="gray_r", vmin=0.0, vmax=1.0, interpolation="nearest")
    else:
        ax.imshow(np.clip(tiles, 0.0, 1.0), interpolation="nearest")
    ax.set_axis_off()
    for k, title in enumerate(titles[:cols]):
        if title:
            x = (k * (w + PAD) + w / 2) / (cols * (w + PAD) - PAD)
            ax.text(x, 1.0, _text(title), transform=ax.transAxes, ha="center", va="bottom")
    return _save_plain(fig, path)


def _save_plain(fig: Figure, path: Path) -> Path:
    """``fig`` as PNG bytes (no metadata, its own layout) written atomically to ``path``."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=DPI, metadata={"Software": None})
    atomic_write(path, buf.getvalue())
    return Path(path)


def reconstructions(
    originals: np.ndarray, reconstructed: np.ndarray, titles: Sequence[str], path: Path
) -> Path:
    """Test images in the top row, each one's reconstruction below it."""
    n = len(originals)
    return _grid(np.concatenate([originals, reconstructed]), 2, n, path, titles)


def strip(frames: np.ndarray, ends: Sequence[str], path: Path) -> Path:
    """Decoded interpolation frames in one row, the two end images' classes over the ends."""
    titles = [""] * len(frames)
    if len(ends) == 2 and len(frames) >= 2:
        titles[0], titles[-1] = ends[0], ends[1]
    return _grid(frames, 1, len(frames), path, titles)


def latent_map(images: np.ndarray, n: int, path: Path) -> Path:
    """An ``n`` × ``n`` grid of decoded codes (one latent dimension along the columns,
    another along the rows)."""
    return _grid(images, n, n, path)


def error_histograms(
    errors: np.ndarray,
    y_true: np.ndarray,
    label_names: Sequence[str] | None,
    normal: np.ndarray,
    path: Path,
) -> Path:
    """Per-class histograms of per-example reconstruction error on shared bins (log-spaced
    when the errors span more than a factor of 20), normal classes in blue, anomalous ones
    in red, one small panel per class (at most 20); the dashed line is the 95th percentile
    of the normal examples' errors (a threshold that flags 5% of them)."""
    from matplotlib.figure import Figure
    from matplotlib.ticker import NullFormatter

    classes = np.unique(y_true)[:20]
    names = _names(label_names, int(max(classes.max() + 1, len(label_names or []))))
    cols = min(5, len(classes))
    rows = -(-len(classes) // cols)
    positive = errors[errors > 0]
    lo, hi = (float(positive.min()), float(positive.max())) if len(positive) else (1e-6, 1.0)
    log = hi > 20 * lo
    bins = np.geomspace(lo, hi * 1.0001, 25) if log else np.linspace(0.0, hi * 1.0001, 25)
    threshold = float(np.percentile(errors[normal], 95)) if normal.any() else None
    width, height = 1.9 * cols + 0.6, 1.5 * rows + 0.6
    fig = Figure(figsize=(width, height), dpi=DPI)
    axes = fig.subplots(rows, cols, sharex=True, squeeze=False).ravel()
    # Fixed margins (inches): a layout engine would render every label twice.
    fig.subplots_adjust(
        left=0.55 / width,
        right=1 - 0.1 / width,
        bottom=0.55 / height,
        top=1 - 0.3 / height,
        wspace=0.35,
        hspace=0.6,
    )
    for ax, k in zip(axes, classes, strict=False):
        mine = y_true == k
        colour = "tab:blue" if normal[mine].all() else "tab:red"
        ax.hist(np.clip(errors[mine], lo, None), bins=bins, color=colour, alpha=0.8)
        if threshold is not None:
            ax.axvline(threshold, color="grey", linestyle="--", linewidth=1)
        if log:
            ax.set_xscale("log")
            ax.xaxis.set_minor_formatter(NullFormatter())
        ax.set_title(_text(names[int(k)]), fontsize="small", color=colour)
        ax.tick_params(labelsize="x-small")
    for ax in axes[len(classes) :]:
        ax.axis("off")
    scale = ", log scale" if log else ""
    fig.supxlabel(f"reconstruction error (MSE per value{scale})", fontsize="small", y=0.02)
    fig.supylabel("test examples", fontsize="small", x=0.02)
    return _save_plain(fig, path)
