"""Inputs for ``canon predict``: CSV rows, ``.npy`` arrays, JSON and image files — no torch.

Everything becomes the graph's raw input ``(N, *shape)`` float32 plus one reference per row
(``rows.csv row 2``, ``x.npy[0]``, ``digit.png``) for the output table.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from canonml.data.dataset import Categorical
from canonml.errors import DataError
from canonml.package.reader import Package, PackageError
from canonml.package.signature import raw_columns, to_graph_input
from canonml.spec.data import DataSpec

IMAGES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp")
TABLES = (".csv", ".tsv", ".txt")
DEFAULT_MISSING = DataSpec.model_fields["missing"].get_default(call_default_factory=True)
Batch = tuple[np.ndarray, list[str]]


def read_inputs(pkg: Package, paths: list[str]) -> Batch:
    """All of ``paths`` as one batch for the package's graph, with a reference per row."""
    if not paths:
        raise DataError(
            "give at least one input file (.csv, .npy, .json or an image)", path="input"
        )
    sig, missing = pkg.signature, missing_markers(pkg)
    parts, refs = [], []
    for p in paths:
        x, names = _read_one(sig, Path(p), missing)
        parts.append(x)
        refs += names
    return np.concatenate(parts).astype(np.float32), refs


def missing_markers(pkg: Package) -> set[str]:
    """The cell values the run read as missing (``data.missing`` of its spec)."""
    try:
        spec = yaml.safe_load(pkg.read("spec.yaml"))
        markers = spec["data"]["missing"]
    except (PackageError, yaml.YAMLError, KeyError, TypeError):
        markers = None
    return {str(m) for m in markers} if isinstance(markers, list) else set(DEFAULT_MISSING)


def _read_one(sig: dict[str, Any], path: Path, missing: set[str]) -> Batch:
    suffix = path.suffix.lower()
    if not path.is_file():
        raise DataError("input file not found", file=str(path), path="input")
    if suffix in IMAGES:
        return _image(sig, path)
    if suffix == ".npy":
        return _npy(sig, path)
    if suffix == ".json":
        return _json(sig, path, missing)
    if suffix in TABLES:
        return _csv(sig, path, missing)
    raise DataError(
        f"unsupported input type '{suffix}'; give .csv, .npy, .json or an image "
        f"({', '.join(IMAGES)})",
        file=str(path),
        path="input",
    )


def _csv(sig: dict[str, Any], path: Path, missing: set[str]) -> Batch:
    from canonml.data.sources.csv import read_table

    try:
        header, table = read_table(path, where="input")
    except OSError as e:
        raise DataError(f"cannot read it ({e})", file=str(path), path="input") from None
    rows = [dict(zip(header, cells, strict=True)) for _, cells in table]
    numbers = [n for n, _ in table]
    x = _table(sig, rows, path, missing, numbers)
    return x, [f"{path.name} row {n}" for n in numbers]


def _json(sig: dict[str, Any], path: Path, missing: set[str]) -> Batch:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as e:
        raise DataError(f"not valid JSON ({e})", file=str(path), path="input") from None
    rows = data.get("inputs") if isinstance(data, dict) else data
    if isinstance(rows, list) and rows and all(isinstance(r, dict) and "data" in r for r in rows):
        rows = next((r["data"] for r in rows if r.get("name") == "input"), rows[0]["data"])
    if not isinstance(rows, list) or not rows:
        raise DataError(
            'expected a list of rows or {"inputs": [...]}', file=str(path), path="input"
        )
    if all(isinstance(r, dict) for r in rows):
        x = _table(sig, rows, path, missing, list(range(len(rows))))
    else:
        x = _as_batch(sig, _numbers_array(rows, path), path)
    return x, [f"{path.name}[{i}]" for i in range(len(x))]


def _npy(sig: dict[str, Any], path: Path) -> Batch:
    try:
        arr = np.load(path, allow_pickle=False)
    except (OSError, ValueError) as e:
        raise DataError(f"not a readable .npy array ({e})", file=str(path), path="input") from None
    if arr.dtype.kind not in "biuf":
        raise DataError(f"holds {arr.dtype} values; give numbers", file=str(path), path="input")
    x = _as_batch(sig, arr.astype(np.float32), path)
    return x, [f"{path.name}[{i}]" for i in range(len(x))]


def _image(sig: dict[str, Any], path: Path) -> Batch:
    from PIL import Image, UnidentifiedImageError

    if sig["kind"] != "image":
        raise DataError("an image, but this model takes table rows", file=str(path), path="input")
    c, h, w = sig["image_shape"]
    if c not in (1, 3):
        raise DataError(
            f"the model takes {c}-channel images; give .npy", file=str(path), path="input"
        )
    try:
        with Image.open(path) as opened:
            image = opened.convert("L" if c == 1 else "RGB")
            if image.size != (w, h):
                image = image.resize((w, h), Image.Resampling.BILINEAR)
            pixels = np.array(image, dtype=np.float32)  # (H, W) or (H, W, 3), 0..255
    except (UnidentifiedImageError, OSError, ValueError) as e:
        raise DataError(f"cannot read the image ({e})", file=str(path), path="input") from None
    pixels = pixels.reshape(h, w, c).transpose(2, 0, 1)  # (C, H, W)
    # Map 8-bit pixels to the range the model trained on (e.g. 0..16 for sklearn:digits).
    return pixels[None] * (float(sig["pixel_max"] or 255.0) / 255.0), [path.name]


def _table(
    sig: dict[str, Any], rows: list[dict[str, Any]], path: Path, missing: set[str], numbers: Any
) -> np.ndarray:
    """Rows keyed by column: the graph's own columns, or (tabular) the raw columns."""
    have = set().union(*rows)
    features = sig["features"]
    if set(features) <= have:
        x = _numeric(rows, features, path, missing, numbers)
        return _as_batch(sig, x, path)
    if sig["kind"] == "image":
        absent = [f for f in features if f not in have]
        raise DataError(f"missing pixel columns {absent[:5]}...", file=str(path), path="input")
    state = sig["preprocessing"]
    numeric, categorical = raw_columns(state)
    absent = [c for c in numeric + categorical if c not in have]
    if absent:
        raise DataError(
            f"missing columns {absent}; the model needs {numeric + categorical}",
            file=str(path),
            path="input",
        )
    if sig.get("anonymize"):
        rows = _anonymized(rows, sig["anonymize"], numeric + categorical, path, missing)
    x = _numeric(rows, numeric, path, missing, numbers)
    cats = {
        c: Categorical.from_values(_category(r.get(c), missing) for r in rows) for c in categorical
    }
    return to_graph_input(state, x, cats)


def _anonymized(
    rows: list[dict[str, Any]],
    rules: dict[str, Any],
    columns: list[str],
    path: Path,
    missing: set[str],
) -> list[dict[str, Any]]:
    """Raw rows with ``data.anonymize``'s rules applied to the model's columns, as training
    applied them: a raw age becomes its bin, an identifier its pseudonym."""
    from canonml.data.anonymize import reapply
    from canonml.errors import SpecError

    touched = set(rules.get("pseudonymize", [])) | set(rules.get("generalize", {}))
    touched |= set(rules.get("mask", []))
    names = [c for c in columns if c in touched]
    if not names:
        return rows
    cells = {c: ["" if r.get(c) is None else str(r.get(c)) for r in rows] for c in names}
    try:
        done = reapply(cells, rules, missing, "input")
    except SpecError as e:
        raise DataError(str(e), file=str(path), path="input") from None
    return [{**r, **{c: done[c][i] for c in names}} for i, r in enumerate(rows)]


def _numeric(
    rows: list[dict[str, Any]], columns: list[str], path: Path, missing: set[str], numbers: Any
) -> np.ndarray:
    x = np.empty((len(rows), len(columns)), dtype=np.float64)
    for i, row in enumerate(rows):
        for j, col in enumerate(columns):
            try:
                x[i, j] = _number(row.get(col), missing)
            except (TypeError, ValueError):
                raise DataError(
                    f"'{row.get(col)}' is not a number",
                    file=str(path),
                    row=numbers[i],
                    column=col,
                    path="input",
                ) from None
    return x


def _number(cell: Any, missing: set[str]) -> float:
    if cell is None or (isinstance(cell, str) and cell.strip() in missing):
        return math.nan
    if isinstance(cell, bool):
        raise TypeError(cell)
    value = float(cell.strip() if isinstance(cell, str) else cell)
    if math.isinf(value):
        raise ValueError(cell)
    return value


def _category(cell: Any, missing: set[str]) -> str | None:
    if cell is None:
        return None
    text = str(cell).strip()
    return None if text in missing else text


def _numbers_array(rows: list[Any], path: Path) -> np.ndarray:
    try:
        return np.array(rows, dtype=np.float64)  # JSON null → nan
    except (TypeError, ValueError):
        raise DataError(
            "rows must be lists of numbers (or objects keyed by column)",
            file=str(path),
            path="input",
        ) from None


def _as_batch(sig: dict[str, Any], arr: np.ndarray, path: Path) -> np.ndarray:
    """``arr`` as ``(N, *shape)``: one input, a batch, flattened rows or a grey (H, W) image."""
    shape = tuple(sig["inputs"][0]["shape"][1:])
    size = math.prod(shape)
    if arr.shape == shape:
        return arr[None]
    if arr.shape[1:] == shape:
        return arr
    if arr.ndim == 2 and arr.shape[1] == size and arr.shape[0] > 0:
        return arr.reshape(-1, *shape)
    if arr.ndim == 1 and arr.size == size or len(shape) == 3 and arr.shape == shape[1:]:
        return arr.reshape(1, *shape)
    raise DataError(
        f"an array of shape {list(arr.shape)} does not fit the model input {list(shape)}; "
        f"give one input {list(shape)} or a batch [N, {', '.join(map(str, shape))}]",
        file=str(path),
        path="input",
    )
