"""Load → encode target → de-duplicate → split → fit preprocessing → model-ready arrays."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from canonml.data.dataset import Dataset
from canonml.data.preprocess import (
    apply_preprocess,
    apply_text,
    fit_preprocess,
    fit_text,
    warn_unknown,
)
from canonml.data.sources import load_source
from canonml.data.split import split_indices
from canonml.data.target import Targets
from canonml.errors import DataError, SpecError
from canonml.spec.root import Spec

SPLITS = ("train", "val", "test")


@dataclass
class Split:
    """Model-ready examples: ``x`` float32 ``(N, F)`` or ``(N, C, H, W)``, or int64 token
    ids for text — ``(N, max_length)`` rows, or ``(n, max_length + 1)`` windows when packed;
    ``y`` as encoded (zeros for packed windows)."""

    x: np.ndarray
    y: np.ndarray

    def __len__(self) -> int:
        return int(self.x.shape[0])


@dataclass
class Prepared:
    """The three splits plus everything learned from the data (artefacts, not spec)."""

    train: Split
    val: Split
    test: Split
    kind: str
    input_shape: tuple[int, ...]
    feature_names: list[str]
    label_names: list[str] | None
    preprocess: dict[str, Any]
    fingerprint: str
    info: dict[str, Any] = field(default_factory=dict)
    # Learned artefacts written into the run directory (and the package) beside
    # preprocess.json, by file name: text has "tokenizer.json".
    files: dict[str, bytes] = field(default_factory=dict)

    def describe(self) -> dict[str, Any]:
        """JSON-able description for the run directory (``data.json``)."""
        sizes = {"train": len(self.train), "val": len(self.val), "test": len(self.test)}
        return {
            "kind": self.kind,
            "input_shape": list(self.input_shape),
            "sizes": sizes,
            "feature_names": self.feature_names,
            "label_names": self.label_names,
            "fingerprint": self.fingerprint,
            **self.info,
        }


@dataclass
class Loaded:
    """A source's examples with encoded targets, before any split."""

    raw: Dataset
    official_test: Dataset | None
    info: dict[str, Any]


def load_data(spec: Spec, targets: Targets) -> Loaded:
    """Load ``data.source``, encode the target as the task does and de-duplicate (no split)."""
    raw = targets.encode_targets(load_source(spec.data))
    official_test = targets.encode_targets(raw.test) if raw.test is not None else None
    if official_test is not None and raw.label_names and official_test.label_names:
        _same_labels(raw, official_test)
    if len(raw) == 0:
        raise DataError("empty data set: no examples to train on")
    info: dict[str, Any] = {"source": spec.data.source, "rows": len(raw)}
    if raw.pixel_max is not None:
        info["pixel_max"] = raw.pixel_max
    if raw.columns:
        info["columns"] = raw.columns
    info |= raw.info
    if spec.data.preprocess.dedupe:
        raw, info["duplicates_removed"] = _dedupe(raw)
    return Loaded(raw, official_test, info)


def prepare(spec: Spec, targets: Targets) -> tuple[Prepared, np.ndarray]:
    """Everything between ``data.source`` and tensors the trainer can slice; also the
    train+val row indices (what cross-validation folds)."""
    return split_loaded(spec, load_data(spec, targets), targets)


def split_loaded(spec: Spec, loaded: Loaded, targets: Targets) -> tuple[Prepared, np.ndarray]:
    """The seeded train/val/test split of ``loaded``, preprocessed; and the train+val rows."""
    raw = loaded.raw
    has_test = loaded.official_test is not None
    strata = targets.strata(raw.y) if spec.data.split.stratify else None
    tr, va, te = split_indices(len(raw), strata, spec.data.split, spec.seed, has_test=has_test)
    keep = targets.train_rows(spec, raw.y)
    if keep is not None:
        tr, va = tr[keep[tr]], va[keep[va]]
    test = loaded.official_test if loaded.official_test is not None else raw.take(te)
    data = build_splits(spec, loaded, targets, raw.take(tr), raw.take(va), test)
    return data, np.sort(np.concatenate([tr, va]))


def build_splits(
    spec: Spec,
    loaded: Loaded,
    targets: Targets,
    train_raw: Dataset,
    val_raw: Dataset,
    test_raw: Dataset,
) -> Prepared:
    """Fit preprocessing on ``train_raw`` and turn the three splits into model inputs."""
    parts = (train_raw, val_raw, test_raw)
    if train_raw.kind == "text":
        state, inputs, files, info = _text_inputs(spec, parts)
    else:
        state, files, info = fit_preprocess(train_raw, spec.data.preprocess), {}, {}
        inputs = []
        for part in parts:
            x, keep = apply_preprocess(state, part)
            inputs.append((x, part.y[keep]))
    fitted = targets.fit_target(train_raw.y, spec.data.preprocess)
    if fitted is not None:
        state["target"] = fitted
    splits = [Split(x=x, y=targets.target_array(y, fitted)) for x, y in inputs]
    if len(splits[0]) == 0:
        raise DataError(
            "no training rows left after preprocessing (data.preprocess.impute: "
            "drop removed them all; use mean or median)",
            path="data.preprocess",
        )
    return Prepared(
        train=splits[0],
        val=splits[1],
        test=splits[2],
        kind=loaded.raw.kind,
        input_shape=tuple(splits[0].x.shape[1:]),
        feature_names=list(state.get("output_features", loaded.raw.feature_names)),
        label_names=loaded.raw.label_names,
        preprocess=state,
        fingerprint=fingerprint(train_raw),
        info={**loaded.info, **info},
        files=files,
    )


def _text_inputs(
    spec: Spec, parts: tuple[Dataset, Dataset, Dataset]
) -> tuple[dict[str, Any], list[tuple[np.ndarray, np.ndarray]], dict[str, bytes], dict[str, Any]]:
    """Tokenizer, token ids of each split, the tokenizer file and the facts for data.json."""
    text = spec.data.text
    if text is None:  # the spec fills data.text in for every text source
        raise ValueError("a text source without data.text")
    state, tokenizer = fit_text(parts[0], text)
    inputs, facts = [], {}
    for name, part in zip(SPLITS, parts, strict=True):
        x, y, facts[name] = apply_text(state, tokenizer, part)
        if state["pack"] and len(part) and not len(x):
            raise SpecError(
                "data.text.max_length",
                f"the {name} split has fewer tokens than one window of max_length + 1 = "
                f"{text.max_length + 1}; lower it or give more text",
            )
        inputs.append((x, y))
    warn_unknown(state, tokenizer, facts["train"]["unknown_rate"])
    state["unknown_rate"] = {n: f["unknown_rate"] for n, f in facts.items()}
    keys = ("tokenizer_kind", "vocab_size", "max_length", "pack", "unknown_rate")
    info = {k: state[k] for k in keys}
    for key in ("truncated", "windows"):
        if key in facts["train"]:
            info[key] = {n: f[key] for n, f in facts.items()}
    return state, inputs, {state["tokenizer"]: tokenizer.to_str().encode("utf-8")}, {"text": info}


def fingerprint(data: Dataset) -> str:
    """sha256 over the raw training examples (features, categorical cells, targets).

    Categorical cells count by value: codes are renumbered over the categories present, so
    categories seen only in other splits do not change it.
    """
    y = np.asarray(data.y)
    chunks: list[bytes | memoryview] = [
        *(_text_chunks(data.x) if data.kind == "text" else [_contiguous(data.x)]),
        _contiguous(y if y.dtype.kind in "biuf" else y.astype(str)),
    ]
    for name in sorted(data.categorical):
        col = data.categorical[name]
        present = col.counts() > 0
        renumber = np.append(np.cumsum(present) - 1, -1).astype(np.int32)
        names = [c for c, p in zip(col.categories, present, strict=True) if p]
        chunks += [name.encode(), "\x1f".join(names).encode(), _contiguous(renumber[col.codes])]
    digest = hashlib.sha256()
    for chunk in chunks:  # memoryviews: a 1 GB table is hashed without a copy
        digest.update(chunk)
    return digest.hexdigest()


def _contiguous(a: np.ndarray) -> memoryview:
    if a.size == 0:  # (N, 0): a table whose every feature is categorical
        return memoryview(b"")
    return np.ascontiguousarray(a).data.cast("B")


def _text_chunks(texts: np.ndarray) -> list[bytes | memoryview]:
    """Texts by their UTF-8 bytes (an object array's own buffer holds pointers): the
    lengths, so that the joined bytes split one way only, then the bytes."""
    encoded = [t.encode("utf-8") for t in texts.tolist()]
    return [_contiguous(np.array([len(b) for b in encoded], dtype=np.int64)), b"".join(encoded)]


def _dedupe(raw: Dataset) -> tuple[Dataset, int]:
    """Keep the first of each set of identical examples (same bytes, same target)."""
    n = len(raw)
    if raw.kind == "text":
        seen: dict[tuple[str, Any], int] = {}  # (text, target) → its first row
        for i, key in enumerate(zip(raw.x.tolist(), np.asarray(raw.y).tolist(), strict=True)):
            seen.setdefault(key, i)
        rows_kept = np.fromiter(seen.values(), dtype=np.int64, count=len(seen))
        return raw.take(rows_kept), n - len(rows_kept)
    parts = [raw.x.reshape(n, int(np.prod(raw.x.shape[1:]))), np.asarray(raw.y).reshape(n, 1)]
    parts += [col.codes.reshape(n, 1) for col in raw.categorical.values()]
    rows = np.hstack([np.ascontiguousarray(p).view(np.uint8).reshape(n, -1) for p in parts])
    keys = np.ascontiguousarray(rows).view(np.dtype((np.void, rows.shape[1]))).ravel()
    _, first = np.unique(keys, return_index=True)
    keep = np.sort(first)
    return raw.take(keep), n - len(keep)


def _same_labels(train: Dataset, test: Dataset) -> None:
    if train.label_names != test.label_names:
        raise DataError(
            f"test split labels {test.label_names} differ from training labels {train.label_names}"
        )
