"""``csv:PATH`` — a table with a header row; numeric and categorical feature columns.

Row numbers in messages count the header as row 1, as a spreadsheet shows them. A column is
categorical when listed in ``data.categorical`` or when fewer than half of its filled cells
are numbers; in a numeric column, a cell that is not a number is an error naming its row and
column.
"""

from __future__ import annotations

import csv as csvlib
import math
from pathlib import Path

import numpy as np

from canonml.data.dataset import Dataset
from canonml.data.sources import SOURCES
from canonml.errors import DataError, SpecError
from canonml.registry import did_you_mean
from canonml.spec.data import DataSpec

Rows = list[tuple[int, list[str]]]  # (row number in the file, cells)


@SOURCES.register("csv")
def load_csv(arg: str, spec: DataSpec) -> Dataset:
    path = Path(arg)
    header, rows = _read(path)
    target = str(spec.target)
    if target not in header:
        raise SpecError(
            "data.target",
            f"column '{target}' is not in csv file '{path}'{did_you_mean(target, header)} "
            f"columns: {', '.join(header)}",
        )
    missing = set(spec.missing)
    t = header.index(target)
    rows = [(n, cells) for n, cells in rows if cells[t].strip() not in missing]
    if not rows:
        raise DataError(f"no rows with a value in target column '{target}'", file=str(path))
    features = [c for c in header if c != target]
    categorical = _categorical_columns(path, header, rows, features, spec, missing)
    numeric = [c for c in features if c not in categorical]
    x = np.empty((len(rows), len(numeric)), dtype=np.float64)
    for j, col in enumerate(numeric):
        x[:, j] = _numbers(path, rows, header.index(col), col, missing)
    cats = {
        col: np.array([_cell_or_none(c[header.index(col)], missing) for _, c in rows], dtype=object)
        for col in categorical
    }
    raw_y = [cells[t].strip() for _, cells in rows]
    return Dataset(
        x=x,
        y=np.array(raw_y, dtype=object),
        kind="tabular",
        feature_names=numeric,
        categorical=cats,
    )


def _read(path: Path) -> tuple[list[str], Rows]:
    if not path.is_file():
        raise DataError("csv file not found (check the path in data.source)", file=str(path))
    return read_table(path)


def read_table(path: Path, where: str = "data.source") -> tuple[list[str], Rows]:
    """Header and non-blank rows (with their row numbers) of a UTF-8 csv file.

    The delimiter is sniffed (``, ; tab |``); ``where`` is the place errors name.
    """
    try:
        text = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as e:
        raise DataError(
            f"not UTF-8 text (byte {e.start}); save it as UTF-8", file=str(path), path=where
        ) from None
    try:
        dialect: type[csvlib.Dialect] | csvlib.Dialect = csvlib.Sniffer().sniff(
            text[:8192], delimiters=",;\t|"
        )
    except csvlib.Error:
        dialect = csvlib.excel
    reader = csvlib.reader(text.splitlines(), dialect)
    try:
        header = [h.strip() for h in next(reader)]
    except StopIteration:
        raise DataError(
            "empty file: expected a header row and data rows", file=str(path), path=where
        ) from None
    if len(set(header)) != len(header) or "" in header:
        raise DataError(
            "header has an empty or repeated column name", file=str(path), row=1, path=where
        )
    rows: Rows = []
    for cells in reader:
        if not cells or all(not c.strip() for c in cells):
            continue
        if len(cells) != len(header):
            raise DataError(
                f"has {len(cells)} cells but the header has {len(header)} columns",
                file=str(path),
                row=reader.line_num,
                path=where,
            )
        rows.append((reader.line_num, cells))
    if not rows:
        raise DataError(
            "empty data set: no data rows after the header (one row per example)",
            file=str(path),
            path=where,
        )
    return header, rows


def _categorical_columns(
    path: Path,
    header: list[str],
    rows: Rows,
    features: list[str],
    spec: DataSpec,
    missing: set[str],
) -> list[str]:
    for i, col in enumerate(spec.categorical or []):
        if col not in features:
            raise SpecError(
                f"data.categorical[{i}]",
                f"'{col}' is not a feature column of '{path}'{did_you_mean(col, features)}",
            )
    forced = set(spec.categorical or [])
    found = []
    for col in features:
        if col in forced:
            found.append(col)
            continue
        j = header.index(col)
        filled = [c[j].strip() for _, c in rows if c[j].strip() not in missing]
        if filled and sum(_is_number(v) for v in filled) * 2 < len(filled):
            found.append(col)
    return found


def _numbers(path: Path, rows: Rows, j: int, col: str, missing: set[str]) -> np.ndarray:
    out = np.empty(len(rows), dtype=np.float64)
    for i, (n, cells) in enumerate(rows):
        v = cells[j].strip()
        if v in missing:
            out[i] = math.nan
            continue
        try:
            out[i] = float(v)
        except ValueError:
            raise DataError(
                f"'{v}' is not a number in numeric column '{col}' (fix the cell, add it to "
                "data.missing, or list the column in data.categorical)",
                file=str(path),
                row=n,
            ) from None
        if not math.isfinite(out[i]):
            raise DataError(
                f"'{v}' is not a finite number in column '{col}'", file=str(path), row=n
            )
    if np.isnan(out).all():
        raise DataError(f"column '{col}' has no values at all; remove it", file=str(path))
    return out


def _is_number(v: str) -> bool:
    try:
        float(v)
    except ValueError:
        return False
    return True


def _cell_or_none(v: str, missing: set[str]) -> str | None:
    v = v.strip()
    return None if v in missing else v
