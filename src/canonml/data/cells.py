"""String cells of a ``Table`` column as numbers or category codes, vectorised.

A cell is missing when its stripped text is one of ``data.missing``. Numbers are parsed by
pyarrow's cast (and, where it refuses a cell, once per distinct value by Python's ``float``,
so the accepted syntax stays Python's); categories are the distinct cells exactly as the file
holds them (as Python's ``csv`` module reads them: `` a`` and ``a`` are two categories),
found by dictionary encoding, so Python sees each distinct value once instead of every cell.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from canonml.data.dataset import Categorical

if TYPE_CHECKING:
    import pyarrow as pa

    from canonml.data.table import Table


@dataclass
class Distinct:
    """A column as codes into its distinct cells: ``values[codes]`` is the column."""

    codes: np.ndarray  # (N,) int32
    values: list[str]  # the distinct cells as written
    missing: np.ndarray  # (len(values),) bool: the cell, stripped, is a missing marker


def distinct(cells: pa.ChunkedArray, missing: set[str]) -> Distinct:
    """Dictionary-encode ``cells``; each distinct cell is stripped once to test for a marker."""
    import pyarrow as pa

    encoded = cells.dictionary_encode()
    chunks = encoded.chunks
    raw = chunks[0].dictionary.to_pylist() if chunks else []
    codes = pa.chunked_array([c.indices for c in chunks], pa.int32()).to_numpy()
    flags = np.array([v.strip() in missing for v in raw], dtype=bool)
    return Distinct(codes.astype(np.int32, copy=False), raw, flags)


def missing_count(cells: pa.ChunkedArray, missing: set[str]) -> int:
    d = distinct(cells, missing)
    return int(np.count_nonzero(d.missing[d.codes])) if len(d.values) else 0


def categorical(d: Distinct) -> Categorical:
    """Codes into the sorted distinct filled values; -1 for a missing cell."""
    categories = sorted({v for v, m in zip(d.values, d.missing, strict=True) if not m})
    index = {c: i for i, c in enumerate(categories)}
    lut = np.array([-1 if m else index[v] for v, m in zip(d.values, d.missing, strict=True)])
    return Categorical(lut.astype(np.int32)[d.codes] if len(lut) else d.codes, categories)


def n_categories(d: Distinct) -> int:
    return len({v for v, m in zip(d.values, d.missing, strict=True) if not m})


@dataclass
class Numbers:
    """A column read as numbers: ``values`` ``(N,)`` float64 with NaN where ``missing``."""

    values: np.ndarray
    missing: np.ndarray  # (N,) bool
    bad: int | None = None  # index of the first cell that is neither a number nor missing
    numbers: int = 0  # filled cells that are numbers (only counted by ``slow_numbers``)
    filled: int = 0  # cells that are not missing (idem)

    @property
    def mostly_text(self) -> bool:
        """Fewer than half of the filled cells are numbers: a categorical column."""
        return self.numbers * 2 < self.filled


def fast_numbers(cells: pa.ChunkedArray, missing: pa.Array) -> Numbers | None:
    """pyarrow's cast of the (stripped) cells; None when it refuses one of them."""
    import pyarrow as pa
    import pyarrow.compute as pc

    # Cells as written first: stripping costs a copy, and most files hold no padding.
    for text in (cells, None):
        text = pc.utf8_trim_whitespace(cells) if text is None else text
        gaps = pc.is_in(text, value_set=missing)
        filled = pc.if_else(gaps, None, text) if pc.any(gaps).as_py() else text
        try:
            values = pc.cast(filled, pa.float64())
        except pa.ArrowInvalid:
            continue
        return Numbers(values.to_numpy(), gaps.to_numpy())
    return None


def slow_numbers(d: Distinct) -> Numbers:
    """Python's ``float`` once per distinct value; the cells that are not numbers are counted."""
    parsed = [_number(v) for v in d.values]
    is_number = np.array([p is not None for p in parsed], dtype=bool)
    lut = np.array(
        [math.nan if p is None or m else p for p, m in zip(parsed, d.missing, strict=True)]
    )
    counts = np.bincount(d.codes, minlength=len(lut))
    bad = np.flatnonzero((~is_number & ~d.missing)[d.codes])
    return Numbers(
        lut[d.codes],
        d.missing[d.codes],
        bad=int(bad[0]) if len(bad) else None,
        numbers=int(counts[is_number & ~d.missing].sum()),
        filled=int(counts[~d.missing].sum()),
    )


def _number(text: str) -> float | None:
    try:
        return float(text)
    except ValueError:
        return None


def first_nonfinite(numbers: Numbers) -> int | None:
    """Index of the first filled cell that is inf or NaN (those are not usable values)."""
    bad = ~np.isfinite(numbers.values) & ~numbers.missing
    rows = np.flatnonzero(bad)
    return int(rows[0]) if len(rows) else None


def column_text(table: Table, name: str, row: int) -> str:
    """The stripped cell of ``name`` in row ``row`` (for messages)."""
    return str(table.columns[name][row].as_py()).strip()
