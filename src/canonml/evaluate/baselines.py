"""``evaluate.baselines``: what a fine-tuned text classifier is worth, on the same split.

Three baselines, each scored by test accuracy beside the model:

- ``tfidf``: TF-IDF of character 1–3-grams + logistic regression (scikit-learn) on the
  training texts as written — the honest baseline for short texts;
- ``frozen``: logistic regression on the checkpoint's pooled features, untouched;
- ``scratch``: the same architecture and tokenizer with random weights (``init: random``),
  trained with the same ``train:`` settings for as many epochs as the model trained.

The raw texts come from the same seeded split as the run's (``canonml.data.prepare``); that
they tokenize to the run's test ids is checked, so both sides score the same texts.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from canonml.data.prepare import Loaded, Prepared
from canonml.data.split import split_indices
from canonml.spec.checkpoint import DEFAULT_LENGTH
from canonml.spec.root import Spec
from canonml.tasks.base import Task

if TYPE_CHECKING:
    import torch

LR_ITERATIONS = 2000
REFERENCE_TRAIN = 5000


def run_baselines(
    spec: Spec, task: Task, data: Prepared, loaded: Loaded, accuracy: float, epochs: int
) -> dict[str, Any]:
    """The baselines' test accuracies (``models``: name, accuracy, what) and a verdict on
    the model's ``accuracy`` beside them (``epochs``: how many the model trained)."""
    train_texts, test_texts = raw_texts(spec, task, data, loaded)
    y_train, y_test = data.train.y, data.test.y
    models = [
        {
            "name": "tfidf",
            "accuracy": tfidf_accuracy(train_texts, y_train, test_texts, y_test, spec.seed),
            "what": "TF-IDF of character 1-3-grams + logistic regression",
        },
        {
            "name": "frozen",
            "accuracy": frozen_accuracy(spec, task, data),
            "what": "logistic regression on the checkpoint's frozen pooled features",
        },
        {
            "name": "scratch",
            "accuracy": scratch_accuracy(spec, task, data, epochs),
            "what": "the same architecture from random weights, trained for as many epochs",
        },
    ]
    for value in spec.evaluate.reference_encoders:
        models.append(reference_baseline(value, train_texts, y_train, test_texts, y_test, spec))
    return {"models": models, "verdict": verdict(accuracy, models)}


def reference_baseline(
    value: str,
    train: list[str],
    y_train: np.ndarray,
    test: list[str],
    y_test: np.ndarray,
    spec: Spec,
) -> dict[str, Any]:
    """Logistic regression on another checkpoint's frozen mean-pooled features, each text
    tokenized by that checkpoint's own tokenizer (``evaluate.reference_encoders``). At most
    ``REFERENCE_TRAIN`` training texts (a seeded draw) fit it: an encoder of MiniLM's size
    reads about 100 texts a second on 2 cores, and the test split is always scored whole."""
    import torch

    from canonml.data.text import describe_tokenizer, encode_rows, load_tokenizer
    from canonml.model_io import ModelIO
    from canonml.models import build_model
    from canonml.spec.checkpoint import read_checkpoint
    from canonml.spec.model import PretrainedSpec

    found = read_checkpoint(value)
    tokenizer = load_tokenizer(found.tokenizer, where="evaluate.reference_encoders")
    described = describe_tokenizer(tokenizer, "checkpoint")
    pad = int(described["pad_id"])
    length = min(int(data_length(spec)), _positions(found.encoder))
    rows = np.arange(len(train))
    if len(rows) > REFERENCE_TRAIN:
        rows = np.sort(np.random.default_rng(spec.seed).choice(rows, REFERENCE_TRAIN, False))
    chosen = [train[i] for i in rows]
    encoder = PretrainedSpec(
        checkpoint=str(found.path), encoder=found.encoder, freeze="all", pooling="mean"
    )
    torch.manual_seed(spec.seed)
    classes = int(max(np.max(y_train), np.max(y_test))) + 1
    io = ModelIO((length,), n_outputs=classes, n_classes=classes, pad_id=pad)
    model = build_model(encoder, io)
    accuracy = _frozen_lr(
        model,
        encode_rows(tokenizer, chosen, length, pad),
        y_train[rows],
        encode_rows(tokenizer, test, length, pad),
        y_test,
        pad,
        spec.seed,
    )
    fitted_on = f"{len(rows):,} of {len(train):,} training texts"
    return {
        "name": found.path.name if found.path.name != "model" else found.path.parent.name,
        "accuracy": accuracy,
        "what": f"logistic regression on {value}'s frozen mean-pooled features, its own "
        f"tokenizer (fitted on {fitted_on})",
        "checkpoint": value,
    }


def data_length(spec: Spec) -> int:
    """``data.text.max_length`` (a text source always has the section)."""
    text = spec.data.text
    return text.max_length if text is not None else int(DEFAULT_LENGTH)


def _positions(encoder: dict[str, Any]) -> int:
    """The longest input the encoder's positions allow."""
    config = encoder.get("config") or {}
    value = encoder.get("context") or config.get("max_position_embeddings") or 512
    return int(value)


def _frozen_lr(
    model: Any,
    x_train: np.ndarray,
    y_train: np.ndarray,
    x_test: np.ndarray,
    y_test: np.ndarray,
    pad: int,
    seed: int,
) -> float:
    """Test accuracy of logistic regression on ``model``'s standardised pooled features."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import StandardScaler

    from canonml.tasks.text_classification import features

    train = features(model, x_train, pad)
    scaler = StandardScaler().fit(train)
    fitted = LogisticRegression(max_iter=LR_ITERATIONS, random_state=seed)
    fitted.fit(scaler.transform(train), y_train)
    test = scaler.transform(features(model, x_test, pad))
    return float(np.mean(fitted.predict(test) == y_test))


def verdict(accuracy: float, models: list[dict[str, Any]]) -> str:
    """One sentence: which baselines the model beats."""
    beaten = [m["name"] for m in models if accuracy > m["accuracy"]]
    missed = [m["name"] for m in models if accuracy <= m["accuracy"]]
    if not missed:
        return "The model beats every baseline."
    if not beaten:
        return f"The model beats no baseline ({', '.join(missed)} do as well or better)."
    return f"The model beats {', '.join(beaten)}, not {', '.join(missed)}."


def raw_texts(
    spec: Spec, task: Task, data: Prepared, loaded: Loaded
) -> tuple[list[str], list[str]]:
    """The run's training and test texts as written: the split ``split_loaded`` made."""
    from tokenizers import Tokenizer

    from canonml.data.text import encode_rows

    raw = loaded.raw
    strata = task.strata(raw.y) if spec.data.split.stratify else None
    has_test = loaded.official_test is not None
    tr, _, te = split_indices(len(raw), strata, spec.data.split, spec.seed, has_test=has_test)
    keep = task.train_rows(spec, raw.y)
    if keep is not None:
        tr = tr[keep[tr]]
    test = loaded.official_test if loaded.official_test is not None else raw.take(te)
    train_texts, test_texts = raw.x[tr].tolist(), test.x.tolist()
    tokenizer = Tokenizer.from_str(data.files["tokenizer.json"].decode("utf-8"))
    state = data.preprocess
    ids = encode_rows(tokenizer, test_texts, int(state["max_length"]), int(state["pad_id"]))
    if ids.shape != data.test.x.shape or not np.array_equal(ids, data.test.x):
        raise RuntimeError("baselines: the re-derived test texts do not give the run's ids")
    return train_texts, test_texts


def tfidf_accuracy(
    train: list[str], y_train: np.ndarray, test: list[str], y_test: np.ndarray, seed: int
) -> float:
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression

    vectorizer = TfidfVectorizer(analyzer="char", ngram_range=(1, 3), sublinear_tf=True)
    features = vectorizer.fit_transform(train)
    model = LogisticRegression(max_iter=LR_ITERATIONS, random_state=seed).fit(features, y_train)
    return float(np.mean(model.predict(vectorizer.transform(test)) == y_test))


def frozen_accuracy(spec: Spec, task: Task, data: Prepared) -> float:
    """Logistic regression on the pooled features of the checkpoint as it is."""
    pretrained = spec.model.model_copy(update={"init": "pretrained", "adapter": None})
    model = _build(spec, task, data, pretrained)
    pad = int(data.preprocess["pad_id"])
    return _frozen_lr(model, data.train.x, data.train.y, data.test.x, data.test.y, pad, spec.seed)


def scratch_accuracy(spec: Spec, task: Task, data: Prepared, epochs: int) -> float:
    """The same architecture from random weights, trained as ``spec.train`` says for the
    ``epochs`` the model itself trained: the same number of steps, whatever a time budget
    (``train.max_minutes``) would allow on a machine that is busier or idler by then."""
    from canonml.train.session import train_model

    fresh = spec.model.model_copy(update={"init": "random", "adapter": None, "freeze": "none"})
    budget = spec.train.model_copy(update={"epochs": max(1, epochs), "max_minutes": None})
    scratch = spec.model_copy(update={"model": fresh, "train": budget})
    model = _build(scratch, task, data, fresh)
    info = dict(data.info)  # the task's callbacks record the model they train there
    try:
        train_model(scratch, task, model, data, None)
    finally:
        data.info.clear()
        data.info.update(info)
    predicted = task.predict(model, data.test, data)
    return float(np.mean(predicted.y_pred == data.test.y))


def _build(spec: Spec, task: Task, data: Prepared, model_spec: Any) -> torch.nn.Module:
    import torch

    from canonml.models import build_model

    torch.manual_seed(spec.seed)
    io = task.model_io(data.input_shape, data.label_names, data.preprocess)
    return build_model(model_spec, io)
