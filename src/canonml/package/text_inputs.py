"""``canon predict`` on a text classifier: texts → token ids → ONNX Runtime (no torch).

A ``.txt`` file is one text per non-empty line; a ``.csv``, ``.tsv`` or ``.jsonl`` file
gives its text column (the training spec's ``data.text.column``, else ``text``). Texts are
tokenized by ``canonml.data.text.encode_rows`` with the package's ``tokenizer.json`` — the
function training used — and the mask is 1 where a token is not padding.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from canonml.errors import DataError
from canonml.package.reader import Package, PackageError

SUFFIXES = (".txt", ".csv", ".tsv", ".jsonl")


def read_texts(pkg: Package, paths: list[str]) -> tuple[list[str], list[str]]:
    """The texts of ``paths`` and a reference per text (``reviews.txt line 3``)."""
    if not paths:
        raise DataError(f"give at least one text file ({', '.join(SUFFIXES)})", path="input")
    column = pkg.signature["text"].get("column") or "text"
    texts: list[str] = []
    refs: list[str] = []
    for p in map(Path, paths):
        found = _read_one(p, column)
        if not found:
            raise DataError("no text in the file", file=str(p), path="input")
        texts += [t for _, t in found]
        refs += [f"{p.name} line {n}" for n, _ in found]
    return masked_like_training(pkg.signature, texts), refs


def masked_like_training(sig: dict[str, Any], texts: list[str]) -> list[str]:
    """``texts`` with the identifiers masked when training masked its texts
    (``data.anonymize.mask``): the model learned the placeholders, not the raw values."""
    rules = sig.get("anonymize") or {}
    if not rules.get("mask"):
        return texts
    from canonml.data.pii import mask_column

    return mask_column(texts, rules["mask_kinds"])[0]


def _read_one(path: Path, column: str) -> list[tuple[int, str]]:
    from canonml.data.sources import text as sources

    suffix = path.suffix.lower()
    if suffix not in SUFFIXES:
        raise DataError(
            f"unsupported input type '{suffix}' for a text model; give {', '.join(SUFFIXES)}",
            file=str(path),
            path="input",
        )
    if not path.is_file():
        raise DataError("input file not found", file=str(path), path="input")
    content = sources.read_utf8(path)
    if suffix == ".txt":
        lines = content.split("\n")
        return [(i, s.removesuffix("\r")) for i, s in enumerate(lines, 1) if s.strip()]
    readers = {
        ".csv": sources._csv_records,
        ".tsv": sources._tsv_records,
        ".jsonl": sources._jsonl_records,
    }
    records = readers[suffix](path, content, (column, column))
    return [(n, sources._field(fields, column, path, n)) for n, fields in records]


def text_feeds(pkg: Package, texts: list[str]) -> dict[str, np.ndarray]:
    """``input_ids`` and ``attention_mask`` of ``texts``, trimmed to the longest."""
    from tokenizers import Tokenizer

    text = pkg.signature["text"]
    try:
        tokenizer = Tokenizer.from_str(pkg.read(text["tokenizer"]).decode("utf-8"))
    except Exception as e:  # tokenizers raises a bare Exception for a malformed file
        if isinstance(e, PackageError):
            raise
        raise PackageError(f"{text['tokenizer']}: not a tokenizers file ({e})") from None
    return encode_texts(tokenizer, texts, int(text["max_length"]), int(text["pad_id"]))


def encode_texts(
    tokenizer: Any, texts: list[str], max_length: int, pad_id: int
) -> dict[str, np.ndarray]:
    """The graph's ``input_ids`` and ``attention_mask`` (N, S) int64 of ``texts``, S the
    longest text's tokens: training's ``encode_rows``, then trimmed (canon predict and canon
    serve both call this)."""
    from canonml.data.text import encode_rows

    ids = encode_rows(tokenizer, texts, max_length, pad_id)
    mask = (ids != pad_id).astype(np.int64)  # (N, S), 1 = token
    width = max(int(mask.sum(axis=1).max()), 1)
    return {"input_ids": ids[:, :width], "attention_mask": mask[:, :width]}


def run_texts(pkg: Package, texts: list[str], threads: int = 1) -> dict[str, Any]:
    """The graph's outputs by name for ``texts``."""
    session = pkg.session(threads)
    names = [o.name for o in session.get_outputs()]
    try:
        values = session.run(names, text_feeds(pkg, texts))
    except Exception as e:  # onnxruntime's own error types
        raise PackageError(f"model.onnx: ONNX Runtime failed ({str(e).splitlines()[0]})") from None
    return dict(zip(names, values, strict=True))
