"""``task: language-modeling`` — predict the next token of a text (GPT pretraining).

The data are packed windows of ``data.text.max_length + 1`` token ids (the corpus's texts
joined with ``<eos>``, cut into non-overlapping windows; ``data.text.pack``); a window's
first ``max_length`` tokens are the input and its last ``max_length`` the targets. Metrics
on the test windows: ``loss`` (nats per token), ``perplexity`` (its exponential),
``bits_per_char`` (the same loss per character of the text the targets spell), beside the
``unigram_bits_per_char`` of a model that knows only the training split's token
frequencies (add-one smoothed) and ``perplexity_init``, the validation perplexity of the
model before training. The report shows samples at initialisation and at the end.

The package's ``model.onnx`` is the decoder with its KV cache as graph inputs and outputs
(``canonml.package.lm_export``), with ``tokenizer.json`` beside it: ``canon generate`` and
``canon serve`` run it with ONNX Runtime and ``tokenizers`` alone.
"""

from __future__ import annotations

import html
import math
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from canonml.data.dataset import Dataset
from canonml.evaluate.report import ReportContext, facts, section, table
from canonml.io import atomic_write
from canonml.model_io import ModelIO
from canonml.spec.task import LanguageModelingTask
from canonml.tasks import TASKS
from canonml.tasks.base import PlotJob, Predictions, Task

if TYPE_CHECKING:
    import torch

    from canonml.data.prepare import Prepared, Split
    from canonml.models.gpt import GPT
    from canonml.package.reader import Package
    from canonml.rundir import RunDir
    from canonml.spec.root import Spec
    from canonml.train.callbacks import Callback
    from canonml.train.steps import Augment, Step

NAME = LanguageModelingTask.model_fields["name"].default
LN2 = math.log(2.0)
PROMPT_TOKENS = 8  # default prompts: the first tokens of test windows
PROMPTS = 3
SAMPLES_FILE = "samples.json"
# canon verify's greedy-decoding prompts (characters outside a vocabulary become <unk>).
VERIFY_PROMPTS = ("", "The ", "今天", "1998年")


@TASKS.register(NAME)
class LanguageModeling(Task):
    name = NAME
    spec_class = LanguageModelingTask

    @property
    def facts(self) -> LanguageModelingTask:
        opts = self.options
        return opts if isinstance(opts, LanguageModelingTask) else LanguageModelingTask()

    # ---- data: no target (the text is its own)

    def encode_targets(self, data: Dataset) -> Dataset:
        return Dataset(
            x=data.x,
            y=np.zeros(len(data), dtype=np.int64),
            kind=data.kind,
            feature_names=data.feature_names,
            label_names=None,
            columns=data.columns,
        )

    # ---- models

    def model_io(
        self,
        input_shape: tuple[int, ...],
        labels: list[str] | None,
        state: dict[str, Any] | None = None,
    ) -> ModelIO:
        if not state or "vocab_size" not in state:
            raise ValueError("a language model is built for a tokenizer's vocabulary")
        return ModelIO((int(state["max_length"]),), int(state["vocab_size"]))

    # ---- training

    def tensors(self, split: Split) -> tuple[torch.Tensor, ...]:
        import torch

        return (torch.from_numpy(np.ascontiguousarray(split.x, dtype=np.int64)),)

    def example(
        self, split: Split, model: torch.nn.Module | None = None
    ) -> tuple[torch.Tensor, ...]:
        import torch

        return (torch.from_numpy(np.ascontiguousarray(split.x[:1, :-1], dtype=np.int64)),)

    def make_step(self, spec: Spec, model: torch.nn.Module, augment: Augment | None) -> Step:
        from canonml.tasks.steps import LanguageModelStep

        return LanguageModelStep(model, spec.train)

    def callbacks(
        self, spec: Spec, step: Step, data: Prepared, run_dir: RunDir | None
    ) -> list[Callback]:
        from canonml.tasks.steps import LanguageModelMonitor

        tokenizer = _tokenizer(data)
        prompts = self.facts.prompts or default_prompts(data.test, tokenizer, data.preprocess)
        return [
            LanguageModelMonitor(
                step,
                data,
                chars_per_token(data.val, tokenizer, data.preprocess),
                sampler=lambda model: samples(model, tokenizer, prompts, self.facts, spec.seed),
                out=run_dir.path / SAMPLES_FILE if run_dir is not None else None,
            )
        ]

    # ---- evaluation

    def predict(self, model: torch.nn.Module, split: Split, data: Prepared) -> Predictions:
        nll = window_nll(model, split.x)
        tokens = np.full(len(split), split.x.shape[1] - 1, dtype=np.int64)
        tokenizer = _tokenizer(data)
        chars = window_chars(split.x, tokenizer, data.preprocess)
        # Another source scored with a finished run has no training split to count.
        vocab = int(data.preprocess["vocab_size"])
        unigram = unigram_bits(data.train.x, split.x, vocab) if len(data.train) else None
        lm = data.info.get("language_model") or {}
        return Predictions(
            y_true=nll,
            y_pred=tokens,
            extra={
                "chars": chars,
                "unigram_bits": unigram,
                "details": {
                    "windows": len(split),
                    "window_tokens": int(split.x.shape[1] - 1),
                    "initial": lm.get("initial"),
                    "samples": lm.get("samples"),
                    "tokenizer": {
                        k: data.preprocess.get(k)
                        for k in ("tokenizer_kind", "vocab_size", "unknown_rate")
                    },
                },
            },
        )

    def score(self, names: tuple[str, ...], predicted: Predictions) -> dict[str, float]:
        extra = predicted.extra or {}
        nll, tokens, chars = predicted.y_true, predicted.y_pred, extra["chars"]
        loss = float(nll.sum() / max(int(tokens.sum()), 1))
        values = {
            "loss": loss,
            "perplexity": math.exp(min(loss, 700.0)),
            "bits_per_char": float(nll.sum() / LN2 / max(int(chars.sum()), 1)),
        }
        if extra.get("unigram_bits") is not None:
            bits = float(extra["unigram_bits"].sum())
            values["unigram_bits_per_char"] = bits / max(int(chars.sum()), 1)
        initial = (extra.get("details") or {}).get("initial")
        if initial:
            values["perplexity_init"] = float(initial["perplexity"])
        return {k: v for k, v in values.items() if k in names}

    def interval(
        self, headline: str, predicted: Predictions, resamples: int, seed: int
    ) -> tuple[float, float] | None:
        """A bootstrap over the test windows of the token-weighted perplexity."""
        n = len(predicted.y_true)
        if headline != "perplexity" or resamples <= 0 or n < 2:
            return None
        rng = np.random.default_rng(seed)
        idx = rng.integers(0, n, size=(resamples, n))
        nll, tokens = predicted.y_true[idx].sum(axis=1), predicted.y_pred[idx].sum(axis=1)
        ppl = np.exp(np.minimum(nll / np.maximum(tokens, 1), 700.0))
        low, high = np.percentile(ppl, [2.5, 97.5])
        return float(low), float(high)

    def plots(self, predictions: Any, out: Path) -> list[PlotJob]:
        return []

    # ---- the package

    def signature_for(self, signature: dict[str, Any], spec: dict[str, Any]) -> dict[str, Any]:
        from canonml.package.generate import cache_names

        model, state = spec["model"], signature["preprocessing"]
        layers, heads = int(model["layers"]), int(model["heads"])
        head_dim, vocab = int(model["dim"]) // heads, int(state["vocab_size"])
        past, present = cache_names(layers)
        kv = {"datatype": "FP32", "shape": [-1, heads, -1, head_dim]}
        return {
            **signature,
            "inputs": [
                {"name": "input_ids", "datatype": "INT64", "shape": [-1, -1]},
                *({"name": n, **kv} for n in past),
            ],
            "outputs": [
                {"name": "logits", "datatype": "FP32", "shape": [-1, -1, vocab]},
                *({"name": n, **kv} for n in present),
            ],
            "features": ["input_ids"],
            "generator": {
                "context": int(model["context"]),
                "layers": layers,
                "heads": heads,
                "head_dim": head_dim,
                "vocab_size": vocab,
                "eos_id": state.get("eos_id"),
                "pad_id": state.get("pad_id"),
                "tokenizer": state.get("tokenizer", "tokenizer.json"),
            },
        }

    def outputs_for(self, labels: list[str] | None, input_shape: list[int]) -> list[dict[str, Any]]:
        # The vocabulary and the cache are the tokenizer's and the model's: signature_for.
        return [{"name": "logits", "datatype": "FP32", "shape": [-1, -1, -1]}]

    def graph_module(self, model: torch.nn.Module, signature: dict[str, Any]) -> Any:
        from canonml.models.gpt import CachedDecoder

        return CachedDecoder(_gpt(model)).eval()

    def export_graph(self, model: torch.nn.Module, signature: dict[str, Any]) -> bytes:
        from canonml.package.lm_export import export_decoder

        return export_decoder(_gpt(model))

    def verify_samples(
        self, signature: dict[str, Any], n: int
    ) -> tuple[dict[str, np.ndarray], tuple[np.ndarray, ...]] | None:
        gen = signature["generator"]
        rng = np.random.default_rng(0)
        ids = rng.integers(0, gen["vocab_size"], size=(2, min(n, 8)), dtype=np.int64)
        feeds: dict[str, np.ndarray] = {"input_ids": ids}
        for item in signature["inputs"][1:]:
            feeds[item["name"]] = np.zeros((2, gen["heads"], 0, gen["head_dim"]), np.float32)
        return feeds, (ids,)

    def reference_outputs(
        self, model: torch.nn.Module, inputs: tuple[np.ndarray, ...], signature: dict[str, Any]
    ) -> list[np.ndarray]:
        import torch

        ids, gpt = torch.from_numpy(inputs[0]), _gpt(model)
        gpt.eval()
        with torch.no_grad():
            logits, present = gpt.forward_cached(ids, gpt.empty_past(len(ids)))
        outs = [logits] + [t for kv in present for t in kv]
        return [t.double().numpy() for t in outs]

    def package_problems(self, pkg: Package, model: torch.nn.Module) -> list[str]:
        """Greedy decoding: 100 new tokens the same cached and uncached, in PyTorch and in
        ONNX Runtime, on a few prompts."""
        from tokenizers import Tokenizer

        from canonml.package.lm_export import check_lm

        gen = pkg.signature["generator"]
        tokenizer = Tokenizer.from_str(pkg.read(gen.get("tokenizer", "tokenizer.json")).decode())
        return check_lm(
            pkg.read("model.onnx"),
            tokenizer,
            _gpt(model),
            list(VERIFY_PROMPTS),
            eos_id=gen.get("eos_id"),
        )

    def rows(
        self, refs: list[str], outputs: dict[str, np.ndarray], labels: list[str] | None
    ) -> list[dict[str, Any]]:
        raise ValueError("a language model's rows are text: use canon generate")

    def what_it_does(self, signature: dict[str, Any], target: str | None, inputs: str) -> str:
        gen = signature.get("generator") or {}
        return (
            f"continues a text token by token: a decoder-only transformer (GPT) of "
            f"{gen.get('layers')} layers with a context of {gen.get('context')} tokens and a "
            f"vocabulary of {gen.get('vocab_size')} tokens, trained to predict the next token"
        )

    def pipeline_tag(self, kind: str) -> str:
        return "text-generation"


# ---- pieces the task and its step share (numpy, or torch imported inside)


def _gpt(model: Any) -> GPT:
    """``model`` as the GPT it is (the task trains only ``model.arch: gpt``)."""
    from canonml.models.gpt import GPT

    if not isinstance(model, GPT):
        raise TypeError(f"task language-modeling needs a GPT, got {type(model).__name__}")
    return model


def _tokenizer(data: Prepared) -> Any:
    from tokenizers import Tokenizer

    return Tokenizer.from_str(data.files["tokenizer.json"].decode("utf-8"))


def window_chars(windows: np.ndarray, tokenizer: Any, state: dict[str, Any]) -> np.ndarray:
    """Characters of the text each window's targets spell: the decoded text, plus one for
    every special token the decoder leaves out (an ``<eos>`` stands for a line break, an
    ``<unk>`` for the character it replaced)."""
    specials = np.array([i for i in (state.get("eos_id"), state.get("unk_id")) if i is not None])
    targets = windows[:, 1:]
    texts = tokenizer.decode_batch(targets.tolist(), skip_special_tokens=True)
    extra = np.isin(targets, specials).sum(axis=1) if specials.size else 0
    return np.array([len(t) for t in texts], dtype=np.int64) + extra


def chars_per_token(split: Split, tokenizer: Any, state: dict[str, Any]) -> float:
    if len(split) == 0:
        return 1.0
    return float(window_chars(split.x, tokenizer, state).sum() / (split.x[:, 1:].size))


def unigram_bits(train: np.ndarray, windows: np.ndarray, vocab: int) -> np.ndarray:
    """Per window, the bits of its targets under the training targets' token frequencies
    (add-one smoothed): what a model that knows only the corpus's unigram entropy pays."""
    counts = np.bincount(train[:, 1:].ravel(), minlength=vocab).astype(np.float64) + 1.0
    bits = -np.log2(counts / counts.sum())
    return np.asarray(bits[windows[:, 1:]].sum(axis=1))


def window_nll(model: torch.nn.Module, windows: np.ndarray, batch: int = 64) -> np.ndarray:
    """The summed negative log-likelihood (nats, float64) of each window's targets."""
    import torch
    import torch.nn.functional as F

    model.eval()
    out = []
    with torch.no_grad():
        for lo in range(0, len(windows), batch):
            w = torch.from_numpy(np.ascontiguousarray(windows[lo : lo + batch], dtype=np.int64))
            logits = model(w[:, :-1]).double()
            nll = F.cross_entropy(logits.transpose(1, 2), w[:, 1:], reduction="none")
            out.append(nll.sum(dim=1).numpy())
    return np.concatenate(out) if out else np.zeros(0)


def default_prompts(split: Split, tokenizer: Any, state: dict[str, Any]) -> list[str]:
    """The first few tokens of the first test windows, decoded."""
    heads = split.x[:PROMPTS, :PROMPT_TOKENS].tolist()
    texts = tokenizer.decode_batch(heads, skip_special_tokens=True)
    return [t for t in texts if t.strip()] or ["\n"]


def samples(
    model: torch.nn.Module,
    tokenizer: Any,
    prompts: list[str],
    opts: LanguageModelingTask,
    seed: int,
) -> list[dict[str, str]]:
    """One continuation per prompt, sampled with the task's settings (seeded)."""
    out = []
    for i, prompt in enumerate(prompts):
        ids = tokenizer.encode(prompt).ids or [0]
        new = sample_tokens(
            model,
            ids,
            opts.sample_tokens,
            temperature=opts.temperature,
            top_k=opts.top_k,
            seed=seed + i,
        )
        out.append({"prompt": prompt, "text": tokenizer.decode(new)})
    return out


def sample_tokens(
    model: Any, ids: list[int], n: int, temperature: float, top_k: int, seed: int
) -> list[int]:
    """``n`` new token ids after ``ids`` from ``model`` (a GPT) with its KV cache: seeded
    sampling at ``temperature`` among the ``top_k`` likeliest (greedy at temperature 0);
    stops at the context's end."""
    import torch

    gen = torch.Generator().manual_seed(seed)  # on the CPU, so samples match across devices
    ids = ids[-model.context :]
    dev = model.tok.weight.device
    new: list[int] = []
    with torch.no_grad():
        logits, past = model.forward_cached(torch.tensor([ids], device=dev), model.empty_past(1))
        for _ in range(min(n, model.context - len(ids))):
            last = logits[0, -1].double().cpu()
            if temperature <= 0:
                token = int(last.argmax())
            else:
                if 0 < top_k < last.numel():
                    floor = torch.topk(last, top_k).values[-1]
                    last = torch.where(last < floor, torch.tensor(-math.inf), last)
                probs = torch.softmax(last / temperature, dim=0)
                token = int(torch.multinomial(probs, 1, generator=gen))
            new.append(token)
            logits, past = model.forward_cached(torch.tensor([[token]], device=dev), past)
    return new


# ---- the report


@section("Language model", order=44)
def _language_model(ctx: ReportContext) -> str | None:
    ev = ctx.evaluation
    details = (ev.extra.get("details") if ev is not None else None) or {}
    if ev is None or "perplexity" not in ev.metrics or "window_tokens" not in details:
        return None
    m = ev.metrics
    rows: list[tuple[str, str, str]] = []
    initial = details.get("initial") or {}
    if initial:
        rows.append(
            ("perplexity at initialisation (validation)", f"{initial['perplexity']:.4g}", "")
        )
        share = m["perplexity"] / initial["perplexity"] if initial["perplexity"] else math.nan
        rows.append(("perplexity after training (test)", f"{m['perplexity']:.4g}", f"{share:.1%}"))
    else:
        rows.append(("perplexity after training (test)", f"{m['perplexity']:.4g}", ""))
    rows.append(("bits per character (test)", f"{m['bits_per_char']:.3f}", ""))
    if "unigram_bits_per_char" in m:
        verdict = "below" if m["bits_per_char"] < m["unigram_bits_per_char"] else "NOT below"
        rows.append(
            (
                "unigram baseline: the training split's token frequencies",
                f"{m['unigram_bits_per_char']:.3f}",
                f"the model is {verdict} it",
            )
        )
    tok = details.get("tokenizer") or {}
    parts = [
        f"<p>Next-token prediction on {details['windows']:,} test windows of "
        f"{details['window_tokens']} tokens. Bits per character below the unigram baseline is "
        "what the model learned beyond character frequencies.</p>",
        table(["", "value", ""], rows),
        facts(
            [
                ("tokenizer", str(tok.get("tokenizer_kind"))),
                ("vocabulary", f"{tok.get('vocab_size')} tokens"),
                ("unknown tokens", _rates(tok.get("unknown_rate"))),
            ]
        ),
    ]
    for when, title in (("initial", "At initialisation"), ("final", "After training")):
        shown = (details.get("samples") or {}).get(when) or []
        if shown:
            parts.append(f"<h3>{title}</h3>")
            parts += [
                f'<pre class="sample"><strong>{html.escape(s["prompt"])}</strong>'
                f"{html.escape(s['text'])}</pre>"
                for s in shown
            ]
    return "".join(parts)


def _rates(rates: Any) -> str:
    if not isinstance(rates, dict):
        return "n/a"
    return ", ".join(f"{k} {float(v):.2%}" for k, v in rates.items())


def write_samples(path: Path, samples_: dict[str, Any]) -> None:
    import json

    atomic_write(path, json.dumps(samples_, ensure_ascii=False, indent=2) + "\n")
