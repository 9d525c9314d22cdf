"""A delimited text file as string columns, parsed by pyarrow's CSV reader, byte-exact.

RFC 4180 quoting: a quoted cell may hold delimiters, doubled quotes and line breaks (kept as
written, ``\\r\\n`` included); U+2028 and U+0085 are ordinary characters. Cells come back
exactly as the file holds them; callers strip where they need to. Blank lines and rows of
blank cells are skipped. Row numbers are the file's line numbers with the header as line 1;
a record whose quoted cell spans lines has the number of its first line.
"""

from __future__ import annotations

import codecs
import csv as csvlib
import re
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from canonml.errors import DataError

if TYPE_CHECKING:
    import pyarrow as pa

DELIMITERS = ",;\t|"
BLOCK = 8 << 20  # pyarrow parses blocks of this many bytes in parallel; a record must fit one


@dataclass
class Table:
    """The data rows of a file, one pyarrow string column per header name."""

    path: Path
    where: str  # the spec path errors name: data.source, input, ...
    header: list[str]  # column names, stripped
    columns: dict[str, pa.ChunkedArray]
    delimiter: str
    rows: np.ndarray | None = None  # after ``filter``: each row's index among the file's rows
    _lines: np.ndarray | None = field(default=None, repr=False)

    def __len__(self) -> int:
        return len(self.columns[self.header[0]])

    def filter(self, keep: np.ndarray) -> Table:
        """The rows where ``keep`` (an ``(N,)`` bool mask) is true."""
        import pyarrow as pa

        mask = pa.array(keep)
        rows = np.flatnonzero(keep) if self.rows is None else self.rows[keep]
        columns = {n: c.filter(mask) for n, c in self.columns.items()}
        return replace(self, columns=columns, rows=rows)

    def lines(self) -> np.ndarray:
        """``(N,)`` line number of every row: one pass with Python's csv module, on demand."""
        if self._lines is None:
            self._lines = _record_lines(self.path, self.delimiter)
        rows = np.arange(len(self)) if self.rows is None else self.rows
        # Both parsers agree on every file tested; clip rather than fail if one day they don't.
        return self._lines[np.minimum(rows, len(self._lines) - 1)] if len(self._lines) else rows + 2

    def error(self, problem: str, row: int | None = None) -> DataError:
        """A ``DataError`` naming the file and the line of row index ``row``."""
        line = None if row is None else int(self.lines()[row])
        return DataError(problem, file=str(self.path), row=line, path=self.where)


def read_columns(path: Path, where: str = "data.source") -> Table:
    """The header and the non-blank data rows of a UTF-8 (BOM allowed) delimited file.

    The delimiter is sniffed (``, ; tab |``); ``where`` is the place errors name.
    """
    raw_header, delimiter, line = _header(path, where)
    names = [h.strip() for h in raw_header]
    if len(set(names)) != len(names) or "" in names:
        raise DataError(
            "header has an empty or repeated column name", file=str(path), row=line, path=where
        )
    parsed = _parse(path, where, raw_header, delimiter)
    table = Table(path, where, names, dict(zip(names, parsed.columns, strict=True)), delimiter)
    table = _without_blank_rows(table)
    if len(table) == 0:
        raise DataError(
            "empty data set: no data rows after the header (one row per example)",
            file=str(path),
            path=where,
        )
    return table


def _header(path: Path, where: str) -> tuple[list[str], str, int]:
    """The header's cells as written, the delimiter and the header's line."""
    try:
        with open(path, encoding="utf-8-sig", newline="") as f:
            delimiter = _delimiter(f.read(8192))
            f.seek(0)
            reader = csvlib.reader(f, delimiter=delimiter)
            header = _first_record(reader)
    except UnicodeDecodeError:
        raise _not_utf8(path, where) from None
    if header is None:
        raise DataError(
            "empty file: expected a header row and data rows", file=str(path), path=where
        )
    return header, delimiter, reader.line_num


def _first_record(reader: Any) -> list[str] | None:
    """The next record that is not an empty line (pyarrow skips those before the header)."""
    return next((cells for cells in reader if cells), None)


def _delimiter(sample: str) -> str:
    first = re.split(r"[\r\n]", sample, maxsplit=1)[0]
    try:
        found = csvlib.Sniffer().sniff(sample, delimiters=DELIMITERS).delimiter
    except csvlib.Error:
        found = ","
    if found not in first:  # quoted text in the sample can mislead the Sniffer
        counts = {d: first.count(d) for d in DELIMITERS}
        best = max(counts, key=lambda d: counts[d])
        found = best if counts[best] else ","
    return found


def _parse(path: Path, where: str, raw_header: list[str], delimiter: str) -> pa.Table:
    import pyarrow as pa
    import pyarrow.csv as pacsv

    ragged: list[int] = []

    def on_invalid(row: Any) -> str:
        if _blank(row.text, delimiter):
            return "skip"
        ragged.append(row.actual_columns)
        return "error"

    try:
        return pacsv.read_csv(
            path,
            read_options=pacsv.ReadOptions(block_size=BLOCK),
            parse_options=pacsv.ParseOptions(
                delimiter=delimiter, newlines_in_values=True, invalid_row_handler=on_invalid
            ),
            convert_options=pacsv.ConvertOptions(
                column_types={h: pa.string() for h in raw_header},
                strings_can_be_null=False,
                quoted_strings_can_be_null=False,
            ),
        )
    except pa.ArrowInvalid as e:
        if ragged:
            raise _ragged(path, where, delimiter, len(raw_header)) from None
        if "UTF8" in str(e):
            raise _not_utf8(path, where) from None
        first = str(e).splitlines()[0]
        raise DataError(f"cannot be read as csv ({first})", file=str(path), path=where) from None


def _blank(text: str, delimiter: str) -> bool:
    try:
        cells = next(csvlib.reader([text], delimiter=delimiter), [])
    except csvlib.Error:
        return False
    return not any(c.strip() for c in cells)


def _without_blank_rows(table: Table) -> Table:
    """Drop rows whose every cell is blank (a row of delimiters, spaces)."""
    import pyarrow.compute as pc

    first = table.columns[table.header[0]]
    candidates = np.flatnonzero(pc.equal(pc.utf8_trim_whitespace(first), "").to_numpy())
    for name in table.header[1:]:
        if not len(candidates):
            break
        cells = table.columns[name].take(candidates)
        candidates = candidates[pc.equal(pc.utf8_trim_whitespace(cells), "").to_numpy()]
    if not len(candidates):
        return table
    keep = np.ones(len(table), dtype=bool)
    keep[candidates] = False
    return replace(table.filter(keep), rows=None)  # the line scan skips blank rows too


def _records(path: Path, delimiter: str) -> Any:
    """(first line, cells) of each non-blank data record, by Python's csv module."""
    with open(path, encoding="utf-8-sig", newline="") as f:
        reader = csvlib.reader(f, delimiter=delimiter)
        _first_record(reader)
        start = reader.line_num + 1
        for cells in reader:
            if any(c.strip() for c in cells):
                yield start, cells
            start = reader.line_num + 1


def _record_lines(path: Path, delimiter: str) -> np.ndarray:
    return np.array([n for n, _ in _records(path, delimiter)], dtype=np.int64)


def _ragged(path: Path, where: str, delimiter: str, width: int) -> DataError:
    line, count = next(
        ((n, len(c)) for n, c in _records(path, delimiter) if len(c) != width), (0, 0)
    )
    return DataError(
        f"has {count} cells but the header has {width} columns",
        file=str(path),
        row=line or None,
        path=where,
    )


def _not_utf8(path: Path, where: str) -> DataError:
    """The first byte that is not UTF-8, with its line, read in blocks."""
    decoder = codecs.getincrementaldecoder("utf-8")()
    offset, line = 0, 1
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            try:
                decoder.decode(block)
            except UnicodeDecodeError as e:
                start = max(e.start - (len(e.object) - len(block)), 0)
                offset, line = offset + start, line + block[:start].count(b"\n")
                break
            offset, line = offset + len(block), line + block.count(b"\n")
    return DataError(
        f"not UTF-8 text (byte {offset}); save it as UTF-8", file=str(path), row=line, path=where
    )
