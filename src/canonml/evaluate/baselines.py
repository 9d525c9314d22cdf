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
from canonml.spec.root import Spec
from canonml.tasks.base import Task

if TYPE_CHECKING:
    import torch

LR_ITERATIONS = 2000


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
    return {"models": models, "verdict": verdict(accuracy, models)}


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
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import StandardScaler

    from canonml.tasks.text_classification import features

    pretrained = spec.model.model_copy(update={"init": "pretrained", "adapter": None})
    model = _build(spec, task, data, pretrained)
    pad = int(data.preprocess["pad_id"])
    scaler = StandardScaler().fit(features(model, data.train.x, pad))
    train = scaler.transform(features(model, data.train.x, pad))
    test = scaler.transform(features(model, data.test.x, pad))
    fitted = LogisticRegression(max_iter=LR_ITERATIONS, random_state=spec.seed)
    fitted.fit(train, data.train.y)
    return float(np.mean(fitted.predict(test) == data.test.y))


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
