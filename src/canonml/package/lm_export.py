"""The language model's ``model.onnx``: the GPT decoder with its KV cache as inputs/outputs.

Inputs ``input_ids`` INT64 [batch, sequence] and, per layer i, ``past_key_values.{i}.key``
and ``.value`` FP32 [batch, heads, past_sequence, head_dim]; outputs ``logits`` FP32
[batch, sequence, vocab] and ``present.{i}.key`` / ``.value`` [batch, heads,
past_sequence + sequence, head_dim] — Hugging Face Optimum's decoder-with-past names and
axes, so its tools and users' ONNX Runtime loops recognise them (Optimum's decoders also
take an ``attention_mask``; this one decodes unpadded sequences and takes none). The first
step feeds zero-length pasts (ONNX Runtime handles the empty axis; the tests check it), so
one graph serves the prompt, every cached step and the uncached reference.

Exported with the TorchScript-based exporter as ``package/export.py`` does (opset 17, ~0.4 s
for the news-gpt size): it traces ``scaled_dot_product_attention`` with the mask
``forward_cached`` builds from the runtime shapes, so one trace serves every past length.
"""

from __future__ import annotations

import io
import os
import warnings
from typing import TYPE_CHECKING, Any

import numpy as np

from canonml.package.export import OPSET
from canonml.package.generate import cache_names

if TYPE_CHECKING:
    from tokenizers import Tokenizer

    from canonml.models.gpt import GPT

TIE = 1e-4  # logits closer than this are a tie float32 may order either way


def lm_signature(model: GPT, eos_id: int | None = None) -> dict[str, Any]:
    """The graph's inputs and outputs (OIP datatypes, -1 for dynamic axes) and the facts
    ``TextGenerator`` needs (``generator``); ``eos_id`` is the tokenizer's end of text."""
    kv = [-1, model.heads, -1, model.head_dim]
    past, present = cache_names(model.layers)
    return {
        "inputs": [{"name": "input_ids", "datatype": "INT64", "shape": [-1, -1]}]
        + [{"name": n, "datatype": "FP32", "shape": kv} for n in past],
        "outputs": [{"name": "logits", "datatype": "FP32", "shape": [-1, -1, model.vocab_size]}]
        + [{"name": n, "datatype": "FP32", "shape": kv} for n in present],
        "generator": {
            "context": model.context,
            "layers": model.layers,
            "heads": model.heads,
            "head_dim": model.head_dim,
            "vocab_size": model.vocab_size,
            "eos_id": eos_id,
        },
    }


def export_decoder(model: GPT) -> bytes:
    """The ONNX bytes of ``CachedDecoder(model)``, every cache axis dynamic."""
    import torch

    from canonml.models.gpt import CachedDecoder

    past_in, present_out = cache_names(model.layers)
    inputs, outputs = ["input_ids", *past_in], ["logits", *present_out]
    axes: dict[str, dict[int, str]] = {
        "input_ids": {0: "batch", 1: "sequence"},
        "logits": {0: "batch", 1: "sequence"},
    }
    axes |= {n: {0: "batch", 2: "past_sequence"} for n in inputs[1:]}
    axes |= {n: {0: "batch", 2: "past_sequence + sequence"} for n in outputs[1:]}
    # Trace with sizes that are neither 0 nor 1 (nor equal), so no axis is specialised.
    ids = torch.zeros(2, 3, dtype=torch.long)
    past = [torch.zeros(2, model.heads, 4, model.head_dim) for _ in inputs[1:]]
    buf = io.BytesIO()
    was_training = model.training
    with warnings.catch_warnings(), torch.no_grad():
        warnings.filterwarnings(
            "ignore", "You are using the legacy TorchScript-based ONNX export", DeprecationWarning
        )
        warnings.filterwarnings("ignore", "The feature will be removed", DeprecationWarning)
        torch.onnx.export(
            CachedDecoder(model).eval(),
            (ids, *past),
            buf,  # type: ignore[arg-type]  # the TorchScript exporter writes to file objects
            input_names=inputs,
            output_names=outputs,
            dynamic_axes=axes,
            opset_version=OPSET,
            dynamo=False,
        )
    model.train(was_training)
    return buf.getvalue()


def check_lm(
    onnx_path: str | os.PathLike[str] | bytes,
    tokenizer: str | os.PathLike[str] | Tokenizer,
    model: GPT,
    prompts: list[str],
    n: int = 100,
    eos_id: int | None = None,
) -> list[str]:
    """Problems of greedy decoding ``n`` tokens after each prompt: ONNX Runtime with and
    without the cache and PyTorch without it must give PyTorch-with-cache's tokens; [] = OK.

    Where two sequences part at a near-tie (the two tokens' logits within ``TIE``), float32
    may order them either way, so that is no problem and the rest of that prompt is skipped.
    """
    import torch

    from canonml.models.gpt import greedy
    from canonml.package.generate import TextGenerator

    gen = TextGenerator(onnx_path, tokenizer, lm_signature(model, eos_id)["generator"])
    model.eval()
    problems = []
    for k, prompt in enumerate(prompts, 1):
        ids = gen.prompt_ids(prompt)
        want = greedy(model, ids, n, use_cache=True)
        for name, got in (
            ("PyTorch without the cache", greedy(model, ids, n, use_cache=False)),
            ("ONNX Runtime with the cache", gen.generate_ids(ids, n, use_cache=True)),
            ("ONNX Runtime without the cache", gen.generate_ids(ids, n, use_cache=False)),
        ):
            t = next((i for i, (a, b) in enumerate(zip(want, got, strict=False)) if a != b), None)
            if t is None:
                if len(got) != len(want):
                    problems.append(
                        f"model.onnx: after prompt {k} ({prompt[:30]!r}) {name} gives "
                        f"{len(got)} new tokens, PyTorch with the cache {len(want)}"
                    )
                continue
            with torch.no_grad():
                logits = model(torch.tensor([ids + want[:t]]))[0, -1].numpy()
            if abs(float(logits[want[t]] - logits[got[t]])) >= TIE:
                problems.append(
                    f"model.onnx: after prompt {k} ({prompt[:30]!r}) {name} gives token "
                    f"{got[t]} as new token {t + 1}, PyTorch with the cache {want[t]}"
                )
    return problems


def empty_past(model: GPT, batch: int = 1) -> dict[str, np.ndarray]:
    """Zero-length past feeds for the graph's first step."""
    z = np.zeros((batch, model.heads, 0, model.head_dim), np.float32)
    return dict.fromkeys(cache_names(model.layers)[0], z)
