"""Preprocessing fitted on the train split: impute, one-hot, scale (pure numpy); tokenize.

The fitted state is plain JSON (it goes to the run directory and the package) and every
tabular or image transform is ``(x - shift) / scale`` per output feature or channel, so a
runtime can fold it into the inference graph. Text is tokenized instead: the state names
the tokenizer file (an artefact beside it, ``tokenizer.json``) and its special ids.
"""

from __future__ import annotations

import warnings
from typing import TYPE_CHECKING, Any

import numpy as np

from canonml.data.dataset import Categorical, Dataset
from canonml.errors import CanonWarning, SpecError
from canonml.spec.data import PreprocessSpec, TextSpec

if TYPE_CHECKING:
    from tokenizers import Tokenizer

State = dict[str, Any]
# More unknown tokens than this in the training split: the tokenizer does not fit the text.
UNKNOWN_WARNING = 0.05


def fit_preprocess(train: Dataset, spec: PreprocessSpec) -> State:
    """Learn imputation values, categories and scaling constants from ``train``."""
    if train.kind == "text":
        raise ValueError("text is tokenized: fit_text trains its tokenizer")
    if train.kind == "image":
        return _fit_image(train, spec)
    x = train.x
    if spec.impute == "drop":
        x = x[~np.isnan(x).any(axis=1)] if x.size else x
    fill = _fill_values(x, spec.impute)
    x = np.where(np.isnan(x), fill, x) if x.size else x
    shift, scale = _affine(x, spec.scale, axis=0)
    numeric = [
        {"name": n, "fill": float(f), "shift": float(s), "scale": float(c)}
        for n, f, s, c in zip(train.feature_names, fill, shift, scale, strict=True)
    ]
    categorical = []
    for name, col in train.categorical.items():
        counts = col.counts()
        cats = [c for c, n in zip(col.categories, counts, strict=True) if n]
        # The most frequent category; on a tie the first in sorted order.
        mode = col.categories[int(np.argmax(counts))] if cats else ""
        categorical.append({"name": name, "fill": mode, "categories": cats})
    outputs = [n["name"] for n in numeric] + [
        f"{c['name']}={v}" for c in categorical for v in c["categories"]
    ]
    return {
        "kind": "tabular",
        "impute": spec.impute,
        "method": spec.scale,
        "numeric": numeric,
        "categorical": categorical,
        "output_features": outputs,
    }


def apply_preprocess(
    state: State, data: Dataset, tokenizer: Tokenizer | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Transform ``data`` to a float32 model input (int64 token ids for text, which needs
    the ``tokenizer`` the state names); returns (x, kept-row mask). Packed text changes
    the number of rows: use ``apply_text`` for it."""
    if state["kind"] == "text":
        if tokenizer is None or state["pack"]:
            raise ValueError("packed text, or text without its tokenizer: use apply_text")
        x, _, _ = apply_text(state, tokenizer, data)
        return x, np.ones(len(data), dtype=bool)
    if state["kind"] == "image":
        shift = np.array(state["shift"], dtype=np.float32).reshape(1, -1, 1, 1)
        scale = np.array(state["scale"], dtype=np.float32).reshape(1, -1, 1, 1)
        x = ((data.x - shift) / scale).astype(np.float32, copy=False)
        return x, np.ones(len(data), dtype=bool)
    codes = [_codes(c, data.categorical[c["name"]]) for c in state["categorical"]]
    keep = np.ones(len(data), dtype=bool)
    if state["impute"] == "drop":
        keep &= ~np.isnan(data.x).any(axis=1) if data.x.size else keep
        for col in data.categorical.values():
            keep &= col.codes >= 0
    rows = None if keep.all() else np.flatnonzero(keep)  # no copies when every row stays
    width = len(state["numeric"]) + sum(len(c["categories"]) for c in state["categorical"])
    offset = len(state["numeric"])
    # np.empty then zeros, not np.zeros: numpy asks for huge pages only on this path, and
    # first-touching 1 GB in 4 KiB pages costs seconds.
    x = np.empty((len(data) if rows is None else len(rows), width), dtype=np.float32)
    x[:, offset:] = 0.0
    if state["numeric"]:
        _numeric_into(x, state["numeric"], data.x if rows is None else data.x[rows])
    for c, index in zip(state["categorical"], codes, strict=True):
        index = index if rows is None else index[rows]
        hot = np.flatnonzero(index >= 0)  # unknown categories (unseen in training) stay zeros
        x[hot, offset + index[hot]] = 1.0
        offset += len(c["categories"])
    return x, keep


def fit_text(train: Dataset, spec: TextSpec) -> tuple[State, Tokenizer]:
    """Train (or load, for ``kind: checkpoint``) the tokenizer on the training texts.

    The state: ``kind`` "text", ``tokenizer`` (the artefact's file name), ``tokenizer_kind``,
    ``vocab_size``, ``pad_id``, ``unk_id``, ``eos_id`` (None without one), ``specials``
    (role → id), ``max_length``, ``pack`` and ``unknown_rate`` (per split, filled as each
    split is encoded).
    """
    from canonml.data.text import TOKENIZER_FILE, describe_tokenizer, train_tokenizer

    tokenizer = train_tokenizer(train.x.tolist(), spec.tokenizer)
    described = describe_tokenizer(tokenizer, spec.tokenizer.kind)
    if spec.pack and described["eos_id"] is None:
        raise SpecError(
            "data.text.pack",
            "the tokenizer has no end-of-text token to join the examples with; use "
            "tokenizer kind: char or bpe, or pack: false",
        )
    state = {
        "kind": "text",
        "tokenizer": TOKENIZER_FILE,
        **described,
        "max_length": spec.max_length,
        "pack": spec.pack,
        "unknown_rate": {},
    }
    return state, tokenizer


def apply_text(
    state: State, tokenizer: Tokenizer, data: Dataset
) -> tuple[np.ndarray, np.ndarray, dict[str, Any]]:
    """Token ids of ``data``'s texts, their targets, and facts for ``data.json``.

    Not packed: ``(N, max_length)`` int64 rows (truncated, padded) and ``data.y``; facts
    ``truncated``. Packed: ``(n, max_length + 1)`` int64 windows of the joined stream and
    ``n`` zeros; facts ``windows``. Both: ``unknown_rate`` (of the text tokens).
    """
    from canonml.data.text import encode_counted, pack, unknown_rate

    texts = data.x.tolist()
    facts: dict[str, Any]
    if state["pack"]:
        x = pack(tokenizer, texts, state["max_length"] + 1, state["eos_id"])
        y, facts = np.zeros(len(x), dtype=np.int64), {"windows": len(x)}
    else:
        x, truncated = encode_counted(tokenizer, texts, state["max_length"], state["pad_id"])
        y, facts = data.y, {"truncated": truncated}
    others = [i for role, i in state["specials"].items() if role != "unk"]
    facts["unknown_rate"] = unknown_rate(x, state["unk_id"], state["pad_id"], others)
    return x, y, facts


def warn_unknown(state: State, tokenizer: Tokenizer, rate: float) -> None:
    """Warn when a checkpoint's tokenizer maps much of the training text to unknown."""
    if state["tokenizer_kind"] != "checkpoint" or rate <= UNKNOWN_WARNING:
        return
    unk = tokenizer.id_to_token(state["unk_id"]) if state["unk_id"] is not None else "unknown"
    warnings.warn(
        f"data.text.tokenizer: the checkpoint's tokenizer maps {rate:.0%} of the training "
        f"tokens to {unk} (a vocabulary learned from other text); the model cannot read "
        "those characters: pretrain on text like this with a tokenizer of its own (kind: char "
        "or bpe)",
        CanonWarning,
        stacklevel=2,
    )


def _codes(fitted: dict[str, Any], col: Categorical) -> np.ndarray:
    """``(N,)`` index of each cell in the fitted categories; the fill for missing, -1 unknown."""
    index = {v: i for i, v in enumerate(fitted["categories"])}
    # The last entry is read for code -1 (a missing cell): the fitted fill value.
    lut = [index.get(v, -1) for v in col.categories] + [index.get(fitted["fill"], -1)]
    return np.array(lut, dtype=np.int64)[col.codes]


def _numeric_into(out: np.ndarray, fitted: list[dict[str, Any]], x: np.ndarray) -> None:
    """Impute and scale ``x`` into the first columns of ``out``, a block of rows at a time."""
    fill = np.array([c["fill"] for c in fitted])
    shift = np.array([c["shift"] for c in fitted])
    scale = np.array([c["scale"] for c in fitted])
    step = 1 << 16  # bounds the float64 temporaries of a large table
    for start in range(0, len(x), step):
        block = x[start : start + step]
        out[start : start + step, : len(fitted)] = (
            np.where(np.isnan(block), fill, block) - shift
        ) / scale


def _fit_image(train: Dataset, spec: PreprocessSpec) -> State:
    # Per-channel constants over all train pixels: (N, C, H, W) → (C,).
    x = train.x.transpose(1, 0, 2, 3).reshape(train.x.shape[1], -1).T
    shift, scale = _affine(x, spec.scale, axis=0)
    return {
        "kind": "image",
        "method": spec.scale,
        "shape": list(train.x.shape[1:]),
        "shift": [float(v) for v in shift],
        "scale": [float(v) for v in scale],
    }


def _fill_values(x: np.ndarray, how: str) -> np.ndarray:
    if x.shape[1] == 0:
        return np.zeros(0)
    if x.shape[0] == 0 or how == "drop":
        return np.zeros(x.shape[1])
    with np.errstate(all="ignore"):
        fill = np.nanmedian(x, axis=0) if how == "median" else np.nanmean(x, axis=0)
    return np.nan_to_num(fill, nan=0.0)


def _affine(x: np.ndarray, how: str, axis: int) -> tuple[np.ndarray, np.ndarray]:
    """(shift, scale) per column so that ``(x - shift) / scale`` is standardised / in [0, 1]."""
    width = x.shape[1]
    if how == "none" or x.shape[0] == 0:
        return np.zeros(width), np.ones(width)
    if how == "standard":
        shift, scale = x.mean(axis=axis), x.std(axis=axis)
    else:
        shift, scale = x.min(axis=axis), x.max(axis=axis) - x.min(axis=axis)
    # A constant column would divide by zero; leave it centred but unscaled.
    return shift, np.where(scale > 1e-12, scale, 1.0)
