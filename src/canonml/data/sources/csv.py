"""``csv:PATH`` — a table with a header row; numeric and categorical feature columns.

Row numbers in messages are the file's line numbers (the header is line 1). ``data.features``
keeps only the columns it lists, ``data.drop`` leaves columns out. A column is categorical
when listed in ``data.categorical`` or when fewer than half of its filled cells are numbers;
in a numeric column, a cell that is not a number is an error naming its row and column. A
text column with more distinct values than half the rows (an order id, a patient number)
would only memorise rows once one-hot encoded: it is left out with a warning unless
``data.features`` or ``data.categorical`` lists it.
"""

from __future__ import annotations

import warnings
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from canonml.data.cells import (
    Distinct,
    Numbers,
    categorical,
    column_text,
    distinct,
    fast_numbers,
    first_nonfinite,
    missing_count,
    n_categories,
    slow_numbers,
)
from canonml.data.dataset import Categorical, Dataset
from canonml.data.sources import SOURCES
from canonml.data.table import Table, read_columns
from canonml.errors import CanonWarning, DataError, SpecError
from canonml.registry import did_you_mean, hint_and_choices
from canonml.spec.data import DataSpec

Rows = list[tuple[int, list[str]]]  # (row number in the file, cells)


@SOURCES.register("csv")
def load_csv(arg: str, spec: DataSpec) -> Dataset:
    import pyarrow as pa

    path = Path(arg)
    if not path.is_file():
        raise DataError("csv file not found (check the path in data.source)", file=str(path))
    try:
        return _load(read_columns(path), spec)
    finally:
        # pyarrow's allocator keeps freed blocks for reuse: about 0.5 GB after a 188 MB file.
        pa.default_memory_pool().release_unused()


def _load(table: Table, spec: DataSpec) -> Dataset:
    target = spec.target  # None: no target column (a task that needs none: every column)
    if target is not None:
        _check_column("data.target", target, table)
    info = {}
    if spec.anonymize is not None:
        table, info["anonymize"] = anonymize_table(table, spec)
    chosen = _chosen_columns(table, spec)
    if target is None:
        y, no_target = np.zeros(len(table)), 0
    else:
        table, y, no_target = _target(table, target, set(spec.missing))
    numeric: dict[str, np.ndarray] = {}
    cats: dict[str, Categorical] = {}
    kinds = {target: ("target", no_target)} if target is not None else {}
    for name in table.header:
        if name == target:
            continue
        kind, gaps, values = _feature(table, name, spec, name in chosen)
        kinds[name] = (kind, gaps)
        if isinstance(values, Categorical):
            cats[name] = values
        elif values is not None:
            numeric[name] = values
    if not numeric and not cats:
        raise DataError(
            f"no feature columns left besides the target '{target}' (check data.features, "
            "data.drop and the warnings above)",
            file=str(table.path),
        )
    # (N, F), filled a column at a time: Fortran order makes each column one contiguous write.
    x = np.empty((len(table), len(numeric)), dtype=np.float64, order="F")
    for j, values in enumerate(numeric.values()):
        x[:, j] = values
    return Dataset(
        x=x,
        y=y,
        kind="tabular",
        feature_names=list(numeric),
        categorical=cats,
        columns=[{"name": n, "kind": kinds[n][0], "missing": kinds[n][1]} for n in table.header],
        info=info,
    )


def anonymize_table(table: Table, spec: DataSpec) -> tuple[Table, dict[str, Any]]:
    """``table`` with ``data.anonymize`` applied to its cells (before any is typed), and the
    report of what changed; the rows k-anonymity suppresses are gone from every column."""
    import pyarrow as pa

    from canonml.data.anonymize import anonymize_columns

    assert spec.anonymize is not None
    cells = {name: table.columns[name].to_pylist() for name in table.header}
    done = anonymize_columns(
        cells, spec.anonymize, spec.target, set(spec.missing), categorical=spec.categorical or ()
    )
    if len(done.keep) < len(table):
        mask = np.zeros(len(table), dtype=bool)
        mask[done.keep] = True
        table = table.filter(mask)
    header = [n for n in table.header if n in done.columns]
    columns = {n: pa.chunked_array([pa.array(done.columns[n], pa.string())]) for n in header}
    return replace(table, header=header, columns=columns), done.report


def _target(table: Table, target: str, missing: set[str]) -> tuple[Table, np.ndarray, int]:
    """The rows that have a target, their (stripped) targets, and how many rows had none."""
    labels = distinct(table.columns[target], missing)
    has_target = ~labels.missing[labels.codes]
    if not has_target.any():
        raise DataError(f"no rows with a value in target column '{target}'", file=str(table.path))
    y = np.array(labels.values, dtype=str)[labels.codes[has_target]]
    if has_target.all():
        return table, y, 0
    return table.filter(has_target), y, int(np.count_nonzero(~has_target))


def _feature(
    table: Table, name: str, spec: DataSpec, chosen: bool
) -> tuple[str, int, np.ndarray | Categorical | None]:
    """(kind, missing cells, values) of one column; values are None for a column left out."""
    missing = set(spec.missing)
    if not chosen:
        return "dropped", missing_count(table.columns[name], missing), None
    column = _read_column(table, name, name in (spec.categorical or []), missing)
    if isinstance(column, Numbers):
        return "numeric", int(np.count_nonzero(column.missing)), column.values
    gaps = int(np.count_nonzero(column.missing[column.codes]))
    if _is_identifier(table, name, column, spec):
        return "identifier", gaps, None
    return "categorical", gaps, categorical(column)


def read_table(path: Path, where: str = "data.source") -> tuple[list[str], Rows]:
    """Header and non-blank rows (with their row numbers) of a UTF-8 csv file.

    Every cell is as the file holds it (byte-exact); the header names are stripped. The
    delimiter is sniffed (``, ; tab |``); ``where`` is the place errors name.
    """
    table = read_columns(path, where)
    cells = zip(*(table.columns[h].to_pylist() for h in table.header), strict=True)
    return table.header, [(int(n), list(c)) for n, c in zip(table.lines(), cells, strict=True)]


def _check_column(key: str, name: str, table: Table) -> None:
    if name not in table.header:
        raise SpecError(
            key,
            f"column '{name}' is not in csv file '{table.path}'"
            + hint_and_choices(name, table.header, "columns"),
        )


def _chosen_columns(table: Table, spec: DataSpec) -> list[str]:
    """The feature columns ``data.features`` / ``data.drop`` leave, in the file's order."""
    for key in ("features", "drop"):
        for i, name in enumerate(getattr(spec, key) or []):
            _check_column(f"data.{key}[{i}]", name, table)
    keep = set(spec.features or table.header) - set(spec.drop or []) - {spec.target}
    chosen = [c for c in table.header if c in keep]
    for i, col in enumerate(spec.categorical or []):
        if col in (spec.drop or []) or (spec.features and col not in spec.features):
            key = "data.drop" if col in (spec.drop or []) else "data.features"
            raise SpecError(
                f"data.categorical[{i}]",
                f"'{col}' is left out by {key}; keep it there or drop it from data.categorical",
            )
        if col not in chosen:
            raise SpecError(
                f"data.categorical[{i}]",
                f"'{col}' is not a feature column of '{table.path}'{did_you_mean(col, chosen)}",
            )
    return chosen


def _read_column(table: Table, name: str, forced: bool, missing: set[str]) -> Numbers | Distinct:
    """Numbers, or (when forced or mostly text) the distinct values of a categorical column."""
    import pyarrow as pa

    cells = table.columns[name]
    if not forced:
        numbers = fast_numbers(cells, pa.array(sorted(missing), pa.string()))
        if numbers is not None:
            return _checked(table, name, numbers)
    values = distinct(cells, missing)
    if not forced:
        numbers = slow_numbers(values)
        if not numbers.mostly_text:
            return _checked(table, name, numbers)
    return values


def _checked(table: Table, name: str, numbers: Numbers) -> Numbers:
    """``numbers``, or the error for its first cell that is not a finite number."""
    nonfinite = first_nonfinite(numbers)
    if numbers.bad is not None and (nonfinite is None or numbers.bad <= nonfinite):
        raise table.error(
            f"'{column_text(table, name, numbers.bad)}' is not a number in numeric column "
            f"'{name}' (fix the cell, add it to data.missing, or list the column in "
            "data.categorical)",
            row=numbers.bad,
        )
    if nonfinite is not None:
        text = column_text(table, name, nonfinite)
        raise table.error(f"'{text}' is not a finite number in column '{name}'", row=nonfinite)
    if numbers.missing.all():
        raise DataError(
            f"column '{name}' has no values at all; remove it or list it in data.drop",
            file=str(table.path),
        )
    return numbers


def _is_identifier(table: Table, name: str, column: Distinct, spec: DataSpec) -> bool:
    """Warn about, and leave out, a text column that one-hot encoding would turn into row ids."""
    listed = name in (spec.features or []) or name in (spec.categorical or [])
    count = n_categories(column)
    if listed or count * 2 <= len(table):
        return False
    warnings.warn(
        f"data.source: column '{name}' looks like an identifier ({count:,} distinct values in "
        f"{len(table):,} rows) and is left out; list it in data.features to keep it",
        CanonWarning,
        stacklevel=2,
    )
    return True
