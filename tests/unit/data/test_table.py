"""Reading csv files: byte-exact cells (as Python's csv module reads them) and line numbers."""

from __future__ import annotations

import csv
import re
from pathlib import Path

import numpy as np
import pytest

from canonml.data.sources import load_source
from canonml.data.sources.csv import read_table
from canonml.errors import DataError
from canonml.spec.data import DataSpec

# CRLF line ends, CRLF / LF / CR inside quoted cells, U+2028, U+0085, doubled quotes,
# delimiters, CJK, a blank line, a row of empty cells and a BOM.
NASTY = (
    "\ufeffid,note,score,group\r\n"
    '1,"line one\nline two",3.5,a\r\n'
    '2,"a, b ""quoted"" \u2028 x\u0085y",4,b\r\n'
    "\r\n"
    '3,"\u4e2d\u6587\r\n\u65e5\u672c\u8a9e",5,a\r\n'
    '4,"cr\ronly",6,"b"\r\n'
    ",,,\r\n"
    '5,"trailing\n",7,a\r\n'
    '6,"",8,b\r\n'
)


def python_rows(path: Path, delimiter: str = ",") -> list[list[str]]:
    with open(path, encoding="utf-8-sig", newline="") as f:
        return [r for r in csv.reader(f, delimiter=delimiter) if any(c.strip() for c in r)]


@pytest.fixture
def nasty(tmp_path: Path) -> Path:
    path = tmp_path / "nasty.csv"
    path.write_bytes(NASTY.encode("utf-8"))
    return path


def test_every_cell_is_byte_exact_against_pythons_csv_module(nasty: Path) -> None:
    header, rows = read_table(nasty)
    expected = python_rows(nasty)
    assert header == expected[0]
    assert [cells for _, cells in rows] == expected[1:]
    assert rows[1][1][1] == 'a, b "quoted" \u2028 x\u0085y'
    assert rows[2][1][1] == "\u4e2d\u6587\r\n\u65e5\u672c\u8a9e"


def test_row_numbers_are_first_lines_of_multi_line_records(nasty: Path) -> None:
    _, rows = read_table(nasty)
    assert [n for n, _ in rows] == [2, 4, 6, 8, 11, 13]


@pytest.mark.parametrize("delimiter", [";", "\t", "|"])
def test_other_delimiters_are_sniffed_with_quoted_line_breaks(
    tmp_path: Path, delimiter: str
) -> None:
    path = tmp_path / "d.csv"
    lines = ["a,b", '"x\ny",1', "z,2"]
    path.write_text("\n".join(line.replace(",", delimiter) for line in lines) + "\n")
    header, rows = read_table(path)
    assert header == ["a", "b"] and [c for _, c in rows] == python_rows(path, delimiter)[1:]
    assert rows[0][1] == ["x\ny", "1"] and [n for n, _ in rows] == [2, 4]


def test_categorical_cells_keep_line_breaks_and_unicode(nasty: Path) -> None:
    data = load_source(DataSpec(source=f"csv:{nasty}", target="score", categorical=["note"]))
    cells = [r[1] for r in python_rows(nasty)[1:]]  # exactly as Python's csv module reads them
    assert list(data.categorical["note"]) == [c if c.strip() else None for c in cells]
    assert data.categorical["note"][0] == "line one\nline two"
    np.testing.assert_array_equal(data.x[:, 0], [1, 2, 3, 4, 5, 6])  # id


RAGGED = [
    ('a,b,c\n1,"x\ny",3\n4,5\n', "row 4: has 2 cells but the header has 3 columns"),
    ('a,b,c\n1,"x\n\ny",3\n\n4,5,6,7\n', "row 6: has 4 cells but the header has 3 columns"),
    ('a,b,c\n1,"x\ny",3\n4,"p\nq"\n', "row 4: has 2 cells but the header has 3 columns"),
    ('a,b,c\n1,"x\r\ny",3\nabc,5,6\n7,8,9\n', "row 4: 'abc' is not a number in numeric column 'a'"),
    ("a,b,c\n1,2,3\n   \n , ,\n4,5\n", "row 5: has 2 cells but the header has 3 columns"),
]


@pytest.mark.parametrize(("text", "message"), RAGGED)
def test_errors_after_multi_line_cells_name_the_right_line(
    tmp_path: Path, text: str, message: str
) -> None:
    path = tmp_path / "bad.csv"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(DataError, match=re.escape(message)) as info:
        load_source(DataSpec(source=f"csv:{path}", target="c"))
    assert "bad.csv" in str(info.value)


def test_blank_lines_and_rows_of_empty_cells_are_skipped(tmp_path: Path) -> None:
    path = tmp_path / "b.csv"
    path.write_text("\na,b,c\n\n1,2,x\n , ,\n   \n3,4,y\n,,\n", encoding="utf-8")
    header, rows = read_table(path)
    assert header == ["a", "b", "c"] and rows == [(4, ["1", "2", "x"]), (7, ["3", "4", "y"])]


@pytest.mark.parametrize("rows", [1, 5000])  # in the header sample, or found by pyarrow
def test_bad_utf8_names_the_byte_and_line(tmp_path: Path, rows: int) -> None:
    path = tmp_path / "latin.csv"
    body = b"a,b\n" + b"1,x\n" * rows
    path.write_bytes(body + b"2,caf\xe9\n")
    line, byte = rows + 2, len(body) + len(b"2,caf")
    with pytest.raises(DataError, match=rf"row {line}: not UTF-8 text \(byte {byte}\)"):
        read_table(path)


def test_header_cells_may_be_quoted_and_padded(tmp_path: Path) -> None:
    path = tmp_path / "h.csv"
    path.write_text('" a ", b\n1,2\n', encoding="utf-8")
    header, rows = read_table(path)
    assert header == ["a", "b"] and rows == [(2, ["1", "2"])]


def test_cells_with_padding_at_their_edges_stay_as_written(tmp_path: Path) -> None:
    path = tmp_path / "edges.csv"
    cells = ["\u2028lead", "trail\u2028", "\u3000全角", " spaced ", "plain", "plain", " NA "]
    rows = "".join(f'"{c}",{i % 2}\n' for i, c in enumerate(cells))
    path.write_text("note,y\n" + rows, encoding="utf-8")
    data = load_source(DataSpec(source=f"csv:{path}", target="y", categorical=["note"]))
    expected = [c for c in cells[:-1]] + [None]  # " NA " is a missing marker once stripped
    assert list(data.categorical["note"]) == expected
    assert data.categorical["note"].categories == sorted(set(cells[:-1]))
