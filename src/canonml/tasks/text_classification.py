"""Classification of text: what differs from rows and images (``Classification`` calls it
when the data are text).

The model reads token ids and an attention mask; the package's ``model.onnx`` takes
``input_ids`` and ``attention_mask`` (INT64, dynamic batch and sequence axes) and gives
``probabilities`` and ``label`` as every classifier does. Tokenizing stays outside the
graph: ``canonml.data.text.encode_rows`` with the package's ``tokenizer.json`` (its
signature's ``text`` entry), the function training used. The report gets the fine-tuning
facts, the most confidently wrong test texts and the baselines (``canonml.evaluate.baselines``).
"""

from __future__ import annotations

import html
from typing import TYPE_CHECKING, Any

import numpy as np

from canonml.evaluate.report import ReportContext, facts, section, table
from canonml.spec.model import PretrainedSpec
from canonml.tasks.base import Predictions, softmax

if TYPE_CHECKING:
    import torch

    from canonml.data.prepare import Prepared, Split
    from canonml.rundir import RunDir
    from canonml.spec.root import Spec
    from canonml.train.callbacks import Callback
    from canonml.train.steps import Step

WRONG_SHOWN = 10  # test texts the report lists as the most confidently wrong
PREDICT_BATCH = 64


def make_step(spec: Spec, model: torch.nn.Module) -> Step:
    from canonml.tasks.text_steps import TextClassificationStep

    return TextClassificationStep(model, spec.train, getattr(spec.model, "encoder_lr", None))


def callbacks(
    step: Step, data: Prepared, run_dir: RunDir | None, seed: int, probe: bool
) -> list[Callback]:
    from canonml.tasks.text_steps import ADAPTER_FILE, FineTuneMonitor, ProbeHead

    out = run_dir.path / ADAPTER_FILE if run_dir is not None else None
    found: list[Callback] = [FineTuneMonitor(step.model, data, out)]
    if probe:
        found.insert(0, ProbeHead(step.model, data, seed))
    return found


def logits(model: Any, ids: np.ndarray, pad_id: int, batch: int = PREDICT_BATCH) -> np.ndarray:
    """``model``'s class logits (N, K) float64 for right-padded ids (N, S), in eval mode,
    batched by length and trimmed to each batch's longest row."""
    import torch

    from canonml.tasks.text_steps import by_length, trimmed

    model.eval()
    dev = next(model.parameters()).device
    x = torch.from_numpy(np.ascontiguousarray(ids, dtype=np.int64))
    order = by_length(x, pad_id)
    out = torch.zeros((len(x), int(model.head[-1].out_features)), dtype=torch.float64)
    with torch.no_grad():
        for lo in range(0, len(x), batch):
            rows = order[lo : lo + batch]
            out[rows] = model(*(t.to(dev) for t in trimmed(x[rows], pad_id))).double().cpu()
    return out.numpy()


def features(model: Any, ids: np.ndarray, pad_id: int, batch: int = PREDICT_BATCH) -> np.ndarray:
    """The pooled encoder features (N, C) float64 the head reads."""
    import torch

    from canonml.tasks.text_steps import by_length, trimmed

    model.eval()
    dev = next(model.parameters()).device
    x = torch.from_numpy(np.ascontiguousarray(ids, dtype=np.int64))
    order, parts = by_length(x, pad_id), []
    with torch.no_grad():
        for lo in range(0, len(x), batch):
            parts.append(
                (
                    order[lo : lo + batch],
                    model.features(
                        *(t.to(dev) for t in trimmed(x[order[lo : lo + batch]], pad_id))
                    ).cpu(),
                )
            )
    width = parts[0][1].shape[1] if parts else 1
    out = torch.zeros((len(x), width), dtype=torch.float64)
    for rows, f in parts:
        out[rows] = f.double()
    return out.numpy()


def predict(model: torch.nn.Module, split: Split, data: Prepared) -> Predictions:
    state = data.preprocess
    proba = softmax(logits(model, split.x, int(state["pad_id"])))  # (N, K)
    pred = proba.argmax(axis=1)
    details = {
        "fine_tune": data.info.get("fine_tune"),
        "tokenizer": {k: state.get(k) for k in ("tokenizer_kind", "vocab_size", "unknown_rate")},
        "max_length": state.get("max_length"),
        "most_confidently_wrong": confidently_wrong(split, proba, pred, data),
    }
    return Predictions(split.y, pred, proba, extra={"details": details})


def confidently_wrong(
    split: Split, proba: np.ndarray, pred: np.ndarray, data: Prepared
) -> list[dict[str, Any]]:
    """The wrong predictions with the highest probability, as the model saw the texts
    (decoded ids: truncated to max_length, unknown characters as the unknown token)."""
    from tokenizers import Tokenizer

    wrong = np.flatnonzero(pred != split.y)
    if not len(wrong) or "tokenizer.json" not in data.files:
        return []
    top = wrong[np.argsort(-proba[wrong, pred[wrong]], kind="stable")][:WRONG_SHOWN]
    tokenizer = Tokenizer.from_str(data.files["tokenizer.json"].decode("utf-8"))
    pad = int(data.preprocess["pad_id"])
    texts = tokenizer.decode_batch(
        [[t for t in split.x[i].tolist() if t != pad] for i in top], skip_special_tokens=False
    )
    names = data.label_names or [str(k) for k in range(proba.shape[1])]
    return [
        {
            "text": text,
            "true": names[int(split.y[i])],
            "predicted": names[int(pred[i])],
            "probability": float(proba[i, pred[i]]),
        }
        for i, text in zip(top, texts, strict=True)
    ]


# ---- the package


def signature_for(signature: dict[str, Any], spec: dict[str, Any]) -> dict[str, Any]:
    """``input_ids`` and ``attention_mask`` in, and how to make them from text (``text``)."""
    state = signature["preprocessing"]
    ids = {"datatype": "INT64", "shape": [-1, -1]}
    return {
        **signature,
        "inputs": [{"name": "input_ids", **ids}, {"name": "attention_mask", **ids}],
        "text": {
            "tokenizer": state.get("tokenizer", "tokenizer.json"),
            "max_length": int(state["max_length"]),
            "pad_id": int(state["pad_id"]),
            "column": ((spec.get("data") or {}).get("text") or {}).get("column") or "text",
        },
    }


def graph_module(model: torch.nn.Module) -> Any:
    """(input_ids, attention_mask) → (probabilities (B, K), label (B,))."""
    import torch
    from torch import nn

    class TextGraph(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.model = model

        def forward(self, ids: torch.Tensor, mask: torch.Tensor) -> Any:
            out = self.model(ids, mask)  # (B, K)
            return torch.softmax(out, dim=1), torch.argmax(out, dim=1)

    return TextGraph().eval()


def export_graph(model: torch.nn.Module, signature: dict[str, Any]) -> bytes:
    from canonml.package.text_export import export_text_graph

    names = [o["name"] for o in signature["outputs"]]
    return export_text_graph(graph_module(model), names)


def verify_samples(
    signature: dict[str, Any], n: int
) -> tuple[dict[str, np.ndarray], tuple[np.ndarray, ...]]:
    """``n`` seeded rows of random token ids of random lengths, right-padded."""
    text, vocab = signature["text"], int(signature["preprocessing"]["vocab_size"])
    rng = np.random.default_rng(0)
    width = min(int(text["max_length"]), 24)
    ids = rng.integers(0, vocab, size=(n, width), dtype=np.int64)
    lengths = rng.integers(1, width + 1, size=n)
    mask = (np.arange(width)[None, :] < lengths[:, None]).astype(np.int64)
    ids = np.where(mask == 1, ids, np.int64(text["pad_id"]))
    return {"input_ids": ids, "attention_mask": mask}, (ids, mask)


# ---- the report


@section("Fine-tuning", order=43)
def _fine_tuning(ctx: ReportContext) -> str | None:
    ev = ctx.evaluation
    details = (ev.extra.get("details") if ev is not None else None) or {}
    if ev is None or "most_confidently_wrong" not in details:
        return None
    model = ctx.spec.model
    if not isinstance(model, PretrainedSpec):
        return None
    tuned = details.get("fine_tune") or {}
    tok = details.get("tokenizer") or {}
    rates = tok.get("unknown_rate") or {}
    lora = model.adapter.lora if model.adapter is not None else None
    rows: list[tuple[str, object]] = [
        ("checkpoint", model.checkpoint),
        ("weights", model.init),
        ("pooling", model.pooling),
        ("frozen", str(model.freeze)),
        ("adapter", f"LoRA r={lora.r}, alpha={lora.alpha:g}" if lora else "none"),
        (
            "tokenizer",
            f"{tok.get('tokenizer_kind')}, {tok.get('vocab_size')} tokens, "
            f"at most {details.get('max_length')} per text",
        ),
        ("unknown tokens", ", ".join(f"{k} {float(v):.2%}" for k, v in rates.items()) or "n/a"),
    ]
    if tuned:
        share = tuned["trainable"] / max(tuned["total"], 1)
        rows.append(
            ("trainable parameters", f"{tuned['trainable']:,} of {tuned['total']:,} ({share:.2%})")
        )
    parts = [facts(rows)]
    wrong = details["most_confidently_wrong"]
    if wrong:
        parts.append("<h3>Most confidently wrong test texts</h3>")
        parts.append(
            table(
                ["text (as the model saw it)", "true", "predicted", "probability"],
                [(w["text"], w["true"], w["predicted"], f"{w['probability']:.3f}") for w in wrong],
            )
        )
    baselines = details.get("baselines")
    if baselines:
        parts.append(_baselines(ev.metrics.get("accuracy"), baselines))
    return "".join(parts)


def _baselines(accuracy: float | None, baselines: dict[str, Any]) -> str:
    rows = [("this model", f"{accuracy:.4f}" if accuracy is not None else "n/a", "")]
    for b in baselines.get("models", []):
        rows.append((b["name"], f"{b['accuracy']:.4f}", b["what"]))
    return (
        "<h3>Baselines (test accuracy, same split)</h3>"
        + table(["model", "accuracy", "what it is"], rows)
        + f"<p>{html.escape(str(baselines.get('verdict', '')))}</p>"
    )
