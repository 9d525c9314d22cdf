"""``canon sample``: images from a package's sampler graph — ONNX Runtime and numpy, no torch.

A package that can generate says how in its signature's ``sampler`` entry::

    "sampler": {"file": "model.onnx", "input": "noise", "inputs": {"noise": "noise",
                "label": "label"}, "output": "images", "latent": 100, "prior": "normal",
                "conditional": true, "classes": 10}

``file`` is the graph (a GAN's ``model.onnx``, a VAE's ``decoder.onnx``); the noise input is
``inputs.noise`` (or ``input``), the class input ``inputs.label`` when ``conditional``;
``output`` (default: the graph's first) gives images ``(N, C, H, W)`` in the data's raw
units. Noise is ``latent`` standard normal numbers per image (``prior: normal``), drawn from
``numpy.random.default_rng(seed)``, so one seed gives the same images on any machine.

Grids are PNGs written with Pillow (no matplotlib: the serve-only install lacks it); a
pixel's grey level is its value over the data's range (0..``pixel_max``).
"""

from __future__ import annotations

import io
import math
import os
from pathlib import Path
from typing import Any

import numpy as np

from canonml.errors import CanonError, PackageError
from canonml.io import atomic_write
from canonml.package.reader import MANIFEST, Package, open_package

GAP = 1  # pixels between two cells of a grid (at the cell scale)
CELL_PIXELS = 28  # small images are scaled up to about this many pixels a side


def open_sampler(path: str | os.PathLike[str]) -> Package:
    """The package at ``path`` (a package, or a run directory holding ``package/``)."""
    where = Path(path)
    if where.is_dir() and not (where / MANIFEST).is_file() and (where / "package").is_dir():
        where = where / "package"
    pkg = open_package(where)
    if not isinstance(pkg.signature.get("sampler"), dict):
        raise PackageError(
            f"{pkg.path}: {pkg.task} model '{pkg.name}' cannot generate (its canon.json has no "
            "signature.sampler); canon sample takes a generator's package (task: generation, "
            "or a VAE's)"
        )
    return pkg


def class_index(pkg: Package, class_: str | int | None) -> int | None:
    """``--class`` as a class index of ``pkg``'s sampler (an index or a label name)."""
    sampler = pkg.signature["sampler"]
    if class_ is None:
        return None
    if not sampler.get("conditional"):
        raise CanonError(
            f"--class: model '{pkg.name}' is unconditional (it takes no class); leave --class out"
        )
    k = int(sampler.get("classes") or 0)
    labels = [str(n) for n in pkg.signature.get("labels") or []]
    text = str(class_).strip()
    if text in labels:
        return labels.index(text)
    try:
        index = int(text)
    except ValueError:
        shown = ", ".join(labels[:12]) + (", …" if len(labels) > 12 else "")
        raise CanonError(
            f"--class: '{text}' is not a class of this model; known: {shown}"
        ) from None
    if not 0 <= index < k:
        raise CanonError(
            f"--class: {index} is out of range: model '{pkg.name}' has {k} classes (0–{k - 1})"
        )
    return index


def sample_package(
    path: str | os.PathLike[str],
    n: int = 64,
    class_: str | int | None = None,
    seed: int = 0,
    threads: int = 1,
) -> np.ndarray:
    """``n`` generated images ``(n, C, H, W)`` float32 in raw units (see the module docstring).

    A conditional model makes ``class_`` (an index or a label name) or, without it, every
    class in turn (0, 1, ..., K-1, 0, ...). Raises ``CanonError`` naming ``--class`` or
    ``-n`` for a bad request, ``PackageError`` for a package that cannot generate.
    """
    return sample_images(open_sampler(path), n, class_, seed, threads)[0]


def sample_images(
    pkg: Package, n: int, class_: str | int | None = None, seed: int = 0, threads: int = 1
) -> tuple[np.ndarray, np.ndarray | None]:
    """(images, the class of each or None) from an opened package's sampler."""
    if n < 1:
        raise CanonError(f"-n: must be at least 1, got {n}")
    sampler = pkg.signature["sampler"]
    index = class_index(pkg, class_)
    names = sampler.get("inputs") or {}
    noise_name = names.get("noise") or sampler.get("input") or "noise"
    feeds = {noise_name: _noise(n, int(sampler["latent"]), seed)}
    labels = None
    if sampler.get("conditional"):
        k = int(sampler["classes"])
        labels = np.full(n, index, dtype=np.int64) if index is not None else np.arange(n) % k
        feeds[names.get("label", "label")] = labels.astype(np.int64)
    session = _session(pkg, str(sampler.get("file") or "model.onnx"), threads)
    output = sampler.get("output") or session.get_outputs()[0].name
    try:
        (images,) = session.run([output], feeds)
    except Exception as e:  # onnxruntime's own error types
        raise PackageError(
            f"{sampler.get('file')}: ONNX Runtime failed ({str(e).splitlines()[0]})"
        ) from None
    return np.asarray(images, dtype=np.float32), labels


def _noise(n: int, latent: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal((n, latent)).astype(np.float32)


def _session(pkg: Package, file: str, threads: int) -> Any:
    if file == "model.onnx":
        return pkg.session(threads)
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads, options.inter_op_num_threads = threads, 1
    try:
        return ort.InferenceSession(pkg.read(file), options, providers=["CPUExecutionProvider"])
    except PackageError:
        raise
    except Exception as e:  # onnxruntime's own error types
        raise PackageError(
            f"{file}: ONNX Runtime cannot load it ({str(e).splitlines()[0]})"
        ) from None


# ---- grids (Pillow)


def grid_png(
    images: np.ndarray, pixel_max: float | None, rows: int | None = None, cols: int | None = None
) -> bytes:
    """PNG bytes of ``images`` (N, C, H, W) in raw units, row by row in a ``rows × cols``
    grid (default: near-square), small images scaled up, 1- or 3-channel."""
    from PIL import Image

    n, c, h, w = images.shape
    cols = cols or max(1, math.ceil(math.sqrt(n)))
    rows = rows or max(1, math.ceil(n / cols))
    top = float(pixel_max) if pixel_max else float(np.max(images) or 1.0)
    grey = np.clip(np.asarray(images, dtype=np.float64) / top, 0.0, 1.0)
    cells = np.round(grey * 255).astype(np.uint8).transpose(0, 2, 3, 1)  # (N, H, W, C)
    canvas = np.full((rows * (h + GAP) + GAP, cols * (w + GAP) + GAP, c), 128, np.uint8)
    for i, cell in enumerate(cells[: rows * cols]):
        r, q = divmod(i, cols)
        y, x = GAP + r * (h + GAP), GAP + q * (w + GAP)
        canvas[y : y + h, x : x + w] = cell
    picture = Image.fromarray(canvas[:, :, 0] if c == 1 else canvas[:, :, :3])
    zoom = max(1, CELL_PIXELS // max(h, w))
    if zoom > 1:
        size = (picture.width * zoom, picture.height * zoom)
        picture = picture.resize(size, Image.Resampling.NEAREST)
    buf = io.BytesIO()
    picture.save(buf, format="PNG")
    return buf.getvalue()


def write_grid(
    path: str | os.PathLike[str],
    images: np.ndarray,
    pixel_max: float | None,
    rows: int | None = None,
    cols: int | None = None,
) -> Path:
    """``grid_png`` written atomically to ``path``."""
    atomic_write(Path(path), grid_png(images, pixel_max, rows, cols))
    return Path(path)


def pixel_max(pkg: Package) -> float | None:
    value = pkg.signature.get("pixel_max")
    return float(value) if value else None
