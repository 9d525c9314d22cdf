"""``data.anonymize``: string columns in, anonymized string columns and a report out.

Steps, in order: drop; pseudonymize (``id_`` + the first 16 hex digits of
HMAC-SHA256(key, cell stripped), key = the UTF-8 bytes of ``$CANON_PSEUDONYM_KEY``);
generalize (numeric: ``[30, 40)`` bins; text: the first N characters then one ``*`` per
character cut); mask (``canonml.data.pii``); then k-anonymity over the quasi-identifiers as
they are after those steps: every row whose combination is shared by fewer than k rows is
removed from every column. A cell is missing when its stripped text is a ``data.missing``
marker; missing cells are left as written, and in a class count as one value.
Each transform works on the distinct cells of a column, so a million rows take seconds
(masking free text, with every cell distinct, about 10-20 µs a cell).
"""

from __future__ import annotations

import hashlib
import hmac
import math
import os
import re
from collections import Counter
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from canonml.data.pii import mask_column
from canonml.errors import SpecError
from canonml.registry import did_you_mean
from canonml.spec.anonymize import PSEUDONYM_KEY_ENV, AnonymizeSpec

if TYPE_CHECKING:
    from canonml.spec.data import DataSpec

PSEUDONYM_PREFIX = "id_"
_CODE = re.compile(r"\s*[+-]?0[0-9]")  # a number with a leading zero: a zip or other code
_PSEUDONYM = re.compile(PSEUDONYM_PREFIX + "[0-9a-f]{16}")
_BIN = re.compile(r"\[[^,\[\]]+, [^,\[\]]+\)")  # "[30, 40)"


@dataclass
class Anonymized:
    """The anonymized columns, the input rows they hold, and what was done (JSON-able)."""

    columns: dict[str, list[str]]
    keep: np.ndarray  # (M,) int64: ascending indices of the input rows kept
    report: dict[str, Any]


def anonymize_columns(
    columns: Mapping[str, Sequence[str]],
    spec: AnonymizeSpec,
    target: str | None,
    missing: set[str],
    where: str = "data.anonymize",
    categorical: Collection[str] = (),
) -> Anonymized:
    """Apply ``spec`` to ``columns`` (equal-length string columns, the target among them).

    ``categorical`` (``data.categorical``) names columns that ``generalize`` must treat as
    text even when their cells are numbers.

    Raises:
        SpecError: a named column is not in ``columns``, the target is dropped or a
            quasi-identifier, k exceeds the rows or leaves none, the pseudonym key is unset,
            or a numeric column to generalize holds a cell that is not a number.
    """
    n = len(next(iter(columns.values()), []))
    _check_names(columns, spec, target, where)
    if spec.k is not None and spec.k > n:
        raise SpecError(f"{where}.k", f"must be at most the number of rows ({n}), got {spec.k}")
    key = pseudonym_key(where) if spec.pseudonymize else b""
    out = {name: list(cells) for name, cells in columns.items() if name not in spec.drop}
    for name in spec.pseudonymize:
        out[name] = pseudonymize(out[name], key, missing)
    rules: dict[str, dict[str, Any]] = {}
    for name, width in spec.generalize.items():
        path = f"{where}.generalize.{name}"
        out[name], rules[name] = generalize(out[name], width, missing, path, name in categorical)
    masks: dict[str, dict[str, int]] = {}
    for name in spec.mask:
        out[name], masks[name] = mask_column(out[name], spec.mask_kinds)
    keep, classes = _k_anonymous(out, spec, target, missing, where, n)
    if len(keep) < n:
        out = {name: [cells[i] for i in keep] for name, cells in out.items()}
    report = {
        "rows_in": n,
        "rows_out": len(keep),
        "rows_suppressed": n - len(keep),
        "columns_dropped": list(spec.drop),
        "columns_pseudonymized": list(spec.pseudonymize),
        "columns_generalized": rules,
        "masks": masks,
        "mask_kinds": list(spec.mask_kinds) if spec.mask else [],
        "k": spec.k,
        "quasi_identifiers": list(spec.quasi_identifiers),
        **classes,
    }
    return Anonymized(out, keep, report)


def input_rules(report: Mapping[str, Any]) -> dict[str, Any]:
    """What of an anonymization report a model's raw inputs need again at prediction: the
    columns to pseudonymize, the generalization rule of each, the free-text columns masked.
    (Dropped columns are not inputs; k-anonymity removes rows, it does not change them.)"""
    return {
        "pseudonymize": list(report.get("columns_pseudonymized") or []),
        "generalize": dict(report.get("columns_generalized") or {}),
        "mask": list(report.get("masks") or {}),
        "mask_kinds": list(report.get("mask_kinds") or []),
    }


def reapply(
    columns: dict[str, list[str]], rules: Mapping[str, Any], missing: set[str], where: str
) -> dict[str, list[str]]:
    """``columns`` (cells as text) with the rules ``input_rules`` kept applied as in
    training: a raw age 37 becomes its bin ``[30, 40)``, a patient id its pseudonym.

    Raises ``SpecError`` naming ``where`` for a cell a numeric bin cannot take, or a
    pseudonymized column without the key."""
    out = dict(columns)
    wanted = [c for c in rules.get("pseudonymize", []) if c in out]
    for name in wanted:  # cells that are pseudonyms already (a shared table) stay
        raw = [v for v in out[name] if not _PSEUDONYM.fullmatch(v.strip())]
        if raw:
            lut = dict(zip(raw, pseudonymize(raw, pseudonym_key(where), missing), strict=True))
            out[name] = [lut.get(v, v) for v in out[name]]
    for name, rule in (rules.get("generalize") or {}).items():
        if name not in out:
            continue
        cells = out[name]
        if rule["rule"] == "bins":
            width = rule["width"]
            binned = []
            for v in cells:
                if v.strip() in missing or _BIN.fullmatch(v.strip()):  # binned already
                    binned.append(v)
                    continue
                x = _number(v)
                if x is None:
                    raise SpecError(
                        f"{where}.{name}", f"'{v}' is not a number; the model saw it in bins"
                    )
                lo = math.floor(x / width) * width
                binned.append(f"[{lo}, {lo + width})")
            out[name] = binned
        else:
            keep = rule["keep"]
            out[name] = [
                v
                if v.strip() in missing
                else v.strip()[:keep] + "*" * max(len(v.strip()) - keep, 0)
                for v in cells
            ]
    for name in rules.get("mask", []):
        if name in out:
            out[name] = mask_column(out[name], rules["mask_kinds"])[0]
    return out


def pseudonym_key(where: str = "data.anonymize") -> bytes:
    """The HMAC key from the environment; it is never logged, returned in a report or saved."""
    value = os.environ.get(PSEUDONYM_KEY_ENV, "")
    if not value:
        raise SpecError(
            f"{where}.pseudonymize",
            f"needs a secret key, got none (set the environment variable {PSEUDONYM_KEY_ENV} "
            "to a secret; the same secret gives the same pseudonyms, and it is never written)",
        )
    return value.encode("utf-8")


def pseudonym(value: str, key: bytes) -> str:
    """``id_`` + 16 hex digits: HMAC-SHA256 of the stripped value under ``key``."""
    digest = hmac.new(key, value.strip().encode("utf-8"), hashlib.sha256).hexdigest()
    return PSEUDONYM_PREFIX + digest[:16]


def pseudonymize(cells: Sequence[str], key: bytes, missing: set[str]) -> list[str]:
    """Every filled cell as its ``pseudonym``; missing cells as written."""
    keyed = hmac.new(key, digestmod=hashlib.sha256)  # keyed once; a copy per value is 1.6x faster
    lut: dict[str, str] = {}
    for v in dict.fromkeys(cells):
        s = v.strip()
        if s in missing:
            lut[v] = v
            continue
        h = keyed.copy()
        h.update(s.encode("utf-8"))
        lut[v] = PSEUDONYM_PREFIX + h.hexdigest()[:16]
    return [lut[v] for v in cells]


def generalize(
    cells: Sequence[str], width: int, missing: set[str], path: str, text: bool = False
) -> tuple[list[str], dict[str, Any]]:
    """Numeric cells as ``[lo, lo + width)`` bins, others cut to ``width`` characters + ``*``s.

    A column is numeric when at least half its filled cells are finite numbers, none of them
    written with a leading zero (``02139`` is a code), and ``text`` is false (the column is in
    ``data.categorical``); then every filled cell must be a number. Returns the cells and the
    rule applied (for the report).
    """
    counts = Counter(cells)
    filled = {v: c for v, c in counts.items() if v.strip() not in missing}
    numbers = {v: x for v in filled if (x := _number(v)) is not None}
    numeric = (
        not text
        and bool(filled)
        and 2 * sum(filled[v] for v in numbers) >= sum(filled.values())
        and not any(_CODE.match(v) for v in numbers)
    )
    lut = {v: v for v in counts}  # missing cells stay as written
    if numeric:
        bad = next((v for v in filled if v not in numbers), None)
        if bad is not None:
            shares = f"{sum(filled[v] for v in numbers)} of {sum(filled.values())}"
            raise SpecError(
                path,
                f"column is numeric ({shares} filled cells are numbers) but row "
                f"{list(cells).index(bad) + 1} holds '{bad}', not a number (fix the cell, or "
                "add it to data.missing)",
            )
        for v, x in numbers.items():
            lo = math.floor(x / width) * width
            lut[v] = f"[{lo}, {lo + width})"
        rule: dict[str, Any] = {"rule": "bins", "width": width}
    else:
        for v in filled:
            s = v.strip()
            lut[v] = s[:width] + "*" * max(len(s) - width, 0)
        rule = {"rule": "prefix", "keep": width}
    return [lut[v] for v in cells], rule


def _number(text: str) -> float | None:
    try:
        x = float(text)
    except ValueError:
        return None
    return x if math.isfinite(x) else None


def _check_names(
    columns: Mapping[str, Sequence[str]], spec: AnonymizeSpec, target: str | None, where: str
) -> None:
    names = list(columns)
    for key in ("drop", "pseudonymize", "generalize", "mask", "quasi_identifiers"):
        for name in getattr(spec, key):
            path = f"{where}.{key}" + (f".{name}" if key == "generalize" else "")
            if name not in columns:
                shown = ", ".join(names[:12]) + (", ..." if len(names) > 12 else "")
                raise SpecError(
                    path, f"no column '{name}'{did_you_mean(name, names)} (columns: {shown})"
                )
            if name == target and key in ("drop", "quasi_identifiers"):
                why = "is needed" if key == "drop" else "is the sensitive value ℓ counts"
                raise SpecError(
                    path, f"lists the target column '{name}', which {why} (remove it here)"
                )


def _codes(cells: Sequence[str], missing: set[str], missing_code: int) -> np.ndarray:
    """``(N,)`` int64 code of each cell's distinct value; every missing cell ``missing_code``."""
    lut: dict[str, int] = {}
    for v in dict.fromkeys(cells):  # first-seen order: the codes do not depend on str hashing
        lut[v] = missing_code if v.strip() in missing else len(lut)
    return np.fromiter((lut[v] for v in cells), dtype=np.int64, count=len(cells))


def _k_anonymous(
    out: dict[str, list[str]],
    spec: AnonymizeSpec,
    target: str | None,
    missing: set[str],
    where: str,
    n: int,
) -> tuple[np.ndarray, dict[str, Any]]:
    """The rows kept, and the class sizes before and after suppression (None without k)."""
    stats: dict[str, Any] = dict.fromkeys(
        ("classes", "classes_before", "smallest_class", "smallest_class_before", "l_diversity")
    )
    if spec.k is None:
        return np.arange(n, dtype=np.int64), stats
    ids = np.zeros(n, dtype=np.int64)  # (N,) quasi-identifier class of each row
    for name in spec.quasi_identifiers:
        codes = _codes(out[name], missing, missing_code=-1) + 1
        _, ids = np.unique(ids * (int(codes.max(initial=0)) + 1) + codes, return_inverse=True)
    sizes = np.bincount(ids)  # (C,)
    kept = sizes >= spec.k
    if not kept.any():
        raise SpecError(
            f"{where}.k",
            f"leaves no rows: every combination of {', '.join(spec.quasi_identifiers)} is "
            f"shared by fewer than {spec.k} rows (largest class: {sizes.max()} rows); lower k, "
            "generalize the quasi_identifiers more, or list fewer",
        )
    keep = np.flatnonzero(kept[ids]).astype(np.int64)
    stats.update(
        classes=int(kept.sum()),
        classes_before=len(sizes),
        smallest_class=int(sizes[kept].min()),
        smallest_class_before=int(sizes.min()),
    )
    if target is not None and target in out:
        cells = out[target]
        stats["l_diversity"] = _l_diversity(ids[keep], [cells[i] for i in keep], missing)
    return keep, stats


def _l_diversity(ids: np.ndarray, target: list[str], missing: set[str]) -> int:
    """The fewest distinct filled target values in any class; ``ids`` ``(M,)`` and ``target``
    are the kept rows'."""
    values = _codes(target, missing, missing_code=-1)  # (M,)
    _, classes = np.unique(ids, return_inverse=True)  # renumber the kept classes 0..C'-1
    filled = values >= 0
    base = int(values.max(initial=0)) + 1
    pairs = np.unique(classes[filled] * base + values[filled])  # distinct (class, value)
    return int(np.bincount(pairs // base, minlength=int(classes.max()) + 1).min())


def mask_texts(
    texts: np.ndarray, names: Sequence[str], spec: AnonymizeSpec, where: str = "data.anonymize"
) -> tuple[np.ndarray, dict[str, Any]]:
    """A text source's ``(N,)`` texts with ``spec.mask`` applied, and the report. ``names``
    holds the source's one text column (``data.text.column``; ``text`` by default)."""
    column = names[0] if names else "text"
    if spec.mask != [column]:
        raise SpecError(
            f"{where}.mask",
            f"a text source has one text column, '{column}': write mask: [{column}]",
        )
    masked, counts = mask_column([str(t) for t in texts], spec.mask_kinds)
    out = np.empty(len(masked), dtype=object)
    out[:] = masked
    report = {
        "rows_in": len(texts),
        "rows_out": len(texts),
        "rows_suppressed": 0,
        "columns_dropped": [],
        "columns_pseudonymized": [],
        "columns_generalized": {},
        "masks": {column: counts},
        "mask_kinds": list(spec.mask_kinds),
        "k": None,
        "quasi_identifiers": [],
    }
    return out, report


def write_anonymized(data: DataSpec, out: str | os.PathLike[str]) -> dict[str, Any]:
    """Apply ``data.anonymize`` to ``data.source`` and write the result to ``out`` as CSV (a
    text source: its text and label columns), atomically; returns the report. Nothing is
    trained, so a user can inspect the table before sharing it."""
    import csv
    import io
    from pathlib import Path

    from canonml.io import atomic_write

    if data.anonymize is None:
        raise SpecError("data.anonymize", "is not set: there is nothing to anonymize")
    scheme, _, arg = data.source.partition(":")
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    if scheme == "csv":
        from canonml.data.sources.csv import anonymize_table
        from canonml.data.table import read_columns
        from canonml.errors import DataError

        if not Path(arg).is_file():
            raise DataError("csv file not found (check the path in data.source)", file=arg)
        table, report = anonymize_table(read_columns(Path(arg)), data)
        writer.writerow(table.header)
        writer.writerows(zip(*(table.columns[n].to_pylist() for n in table.header), strict=True))
    else:
        from canonml.data.sources import load_source

        loaded = load_source(data)
        report = loaded.info["anonymize"]
        names = loaded.label_names
        column = loaded.feature_names[0] if loaded.feature_names else "text"
        writer.writerow([column, "label"] if names else [column])
        for text, y in zip(loaded.x, loaded.y, strict=True):
            writer.writerow([text, names[int(y)]] if names else [text])
    atomic_write(Path(out), buf.getvalue())
    return report
