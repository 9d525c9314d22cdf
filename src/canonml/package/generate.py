"""Text generation from an exported decoder with ONNX Runtime, ``tokenizers`` and numpy only.

The graph (``package/lm_export.py``) takes ``input_ids`` and every layer's past keys and
values and returns the logits and the presents, so a step feeds one new token and the cache
it was given back; the first step feeds the whole prompt after an empty cache
(``past_sequence`` = 0, which ONNX Runtime accepts as a zero-length axis).

The context rule: the prompt and the new tokens together fit in ``context`` positions (the
learned position embeddings end there). A prompt of ``context`` tokens or more is refused
with a ``CanonError`` (``count_tokens`` and ``context`` let a server say so up front);
otherwise generation stops when the sequence fills the context, before ``max_new_tokens``
if need be — it does not slide, so cached and uncached decoding stay the same computation.
An empty prompt starts from the end-of-text token, as training documents do.

One ``TextGenerator`` serves concurrent calls: ONNX Runtime's ``run`` is thread-safe and a
call's cache, random generator and decoder state are its own.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from canonml.errors import CanonError

if TYPE_CHECKING:
    from tokenizers import Tokenizer

FACTS_FILE = "generator.json"  # GeneratorFacts as JSON, beside model.onnx and tokenizer.json
HOLD_BACK = 5  # prompt tokens decoded before the first new one (word-boundary context)


@dataclass(frozen=True)
class GeneratorFacts:
    """What generation needs to know about the graph (``lm_signature``'s ``generator``)."""

    context: int
    layers: int
    heads: int
    head_dim: int
    vocab_size: int
    eos_id: int | None = None

    @classmethod
    def from_dict(cls, facts: Mapping[str, Any]) -> GeneratorFacts:
        eos = facts.get("eos_id")
        return cls(
            **{k: int(facts[k]) for k in ("context", "layers", "heads", "head_dim", "vocab_size")},
            eos_id=None if eos is None else int(eos),
        )


class TextGenerator:
    """Stream text from ``model.onnx`` with the KV cache (or without, for comparisons)."""

    def __init__(
        self,
        model: str | os.PathLike[str] | bytes,
        tokenizer: str | os.PathLike[str] | Tokenizer,
        facts: Mapping[str, Any] | GeneratorFacts,
        threads: int = 1,
    ) -> None:
        import onnxruntime as ort
        from tokenizers import Tokenizer

        self.facts = facts if isinstance(facts, GeneratorFacts) else GeneratorFacts.from_dict(facts)
        self.tokenizer = (
            tokenizer if isinstance(tokenizer, Tokenizer) else Tokenizer.from_file(str(tokenizer))
        )
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        graph = model if isinstance(model, bytes) else str(model)
        self.session = ort.InferenceSession(graph, options, providers=["CPUExecutionProvider"])
        self._past, present = cache_names(self.facts.layers)
        self._outputs = ["logits", *present]

    @classmethod
    def from_dir(
        cls,
        directory: str | os.PathLike[str],
        facts: Mapping[str, Any] | None = None,
        threads: int = 1,
    ) -> TextGenerator:
        """The generator of ``directory``'s ``model.onnx`` and ``tokenizer.json``; its facts
        from ``facts``, else ``generator.json``, else ``canon.json``'s
        ``signature.generator``."""
        root = Path(directory)
        if facts is None:
            if (root / FACTS_FILE).is_file():
                facts = json.loads((root / FACTS_FILE).read_text("utf-8"))
            elif (root / "canon.json").is_file():
                facts = json.loads((root / "canon.json").read_text("utf-8"))["signature"].get(
                    "generator"
                )
            if facts is None:
                raise CanonError(f"{root}: neither {FACTS_FILE} nor a generator in canon.json")
        return cls(root / "model.onnx", root / "tokenizer.json", facts, threads)

    @property
    def context(self) -> int:
        """The most tokens (prompt + new) one sequence can hold."""
        return self.facts.context

    def count_tokens(self, prompt: str) -> int:
        """The tokens ``prompt`` takes in the context (an empty one takes the start token)."""
        return len(self.prompt_ids(prompt))

    def prompt_ids(self, prompt: str) -> list[int]:
        """``prompt``'s token ids; [eos] for an empty prompt (where the model has one)."""
        ids = self.tokenizer.encode(prompt, add_special_tokens=False).ids
        if not ids and self.facts.eos_id is not None:
            ids = [self.facts.eos_id]
        return list(ids)

    def generate(
        self,
        prompt: str,
        max_new_tokens: int = 200,
        temperature: float = 0.8,
        top_k: int = 50,
        top_p: float = 0.95,
        seed: int = 0,
        stop_at_eos: bool = True,
    ) -> Iterator[str]:
        """The text after ``prompt``, piece by piece as tokens come. Greedy when
        ``temperature`` is 0; else sampling from the ``top_k`` most likely tokens (0: all)
        within the ``top_p`` probability mass, seeded by ``seed``.

        Raises:
            CanonError: a bad setting, or a prompt that leaves no room in the context.
        """
        ids = self.prompt_ids(prompt)
        settings = (temperature, top_k, top_p, seed, stop_at_eos)
        return stream_text(self.tokenizer, ids, self.tokens(ids, max_new_tokens, *settings))

    def tokens(
        self,
        ids: list[int],
        max_new_tokens: int = 200,
        temperature: float = 0.8,
        top_k: int = 50,
        top_p: float = 0.95,
        seed: int = 0,
        stop_at_eos: bool = True,
    ) -> Iterator[int]:
        """The new token ids after ``ids`` as they come, with ``generate``'s settings and
        checks (a server counts them and decodes them with ``stream_text``)."""
        settings = (temperature, top_k, top_p, seed, stop_at_eos, True)
        return self._tokens(list(ids), max_new_tokens, *settings)

    def complete(self, prompt: str, **settings: Any) -> str:
        """The whole text ``generate`` streams."""
        return "".join(self.generate(prompt, **settings))

    def generate_ids(
        self,
        ids: list[int],
        max_new_tokens: int = 200,
        temperature: float = 0.0,
        top_k: int = 0,
        top_p: float = 1.0,
        seed: int = 0,
        stop_at_eos: bool = False,
        use_cache: bool = True,
    ) -> list[int]:
        """The new token ids after ``ids`` (greedy by default). ``use_cache=False`` runs the
        whole sequence through the graph at each step (the reference the cache must equal)."""
        settings = (temperature, top_k, top_p, seed, stop_at_eos, use_cache)
        return list(self._tokens(list(ids), max_new_tokens, *settings))

    def _tokens(
        self,
        ids: list[int],
        max_new_tokens: int,
        temperature: float,
        top_k: int,
        top_p: float,
        seed: int,
        stop_at_eos: bool,
        use_cache: bool,
    ) -> Iterator[int]:
        _check_settings(max_new_tokens, temperature, top_k, top_p)
        if not ids:
            raise CanonError("prompt: empty, and the model has no end-of-text token to start from")
        if len(ids) >= self.context:
            raise CanonError(
                f"prompt: {len(ids)} tokens leave no room in the model's context of "
                f"{self.context} tokens (shorten it to at most {self.context - 1})"
            )
        settings = (temperature, top_k, top_p, seed, stop_at_eos, use_cache)
        return self._loop(list(ids), max_new_tokens, *settings)

    def _loop(
        self,
        seq: list[int],
        max_new_tokens: int,
        temperature: float,
        top_k: int,
        top_p: float,
        seed: int,
        stop_at_eos: bool,
        use_cache: bool,
    ) -> Iterator[int]:
        rng = np.random.default_rng(seed)
        empty = np.zeros((1, self.facts.heads, 0, self.facts.head_dim), np.float32)
        past: list[np.ndarray] = [empty] * len(self._past)
        step = seq
        for _ in range(min(max_new_tokens, self.context - len(seq))):
            feeds: dict[str, np.ndarray] = {
                "input_ids": np.asarray([step if use_cache else seq], np.int64)
            }
            feeds.update(zip(self._past, past if use_cache else [empty] * len(past), strict=True))
            out = self.session.run(self._outputs, feeds)
            token = pick(out[0][0, -1], temperature, top_k, top_p, rng)
            if stop_at_eos and token == self.facts.eos_id:
                return
            yield token
            seq.append(token)
            past, step = out[1:], [token]


def cache_names(layers: int) -> tuple[list[str], list[str]]:
    """The graph's (past inputs, present outputs), layer by layer, key before value."""
    pairs = [(i, kv) for i in range(layers) for kv in ("key", "value")]
    return [f"past_key_values.{i}.{kv}" for i, kv in pairs], [
        f"present.{i}.{kv}" for i, kv in pairs
    ]


def stream_text(tokenizer: Tokenizer, prompt: list[int], tokens: Iterable[int]) -> Iterator[str]:
    """The text ``tokens`` add after ``prompt``, a piece as soon as it is whole.

    Each step decodes a window that starts a few tokens back and emits what it adds to the
    text before the newest token: the byte-level pieces of one character come out together
    (a trailing U+FFFD means "incomplete": wait), and decoders that drop a leading space
    (Metaspace) see the same start in both texts. O(1) per token, unlike decoding it all.
    """
    ids = prompt[-HOLD_BACK:]
    start, read = 0, len(ids)
    for token in tokens:
        ids.append(token)
        before = tokenizer.decode(ids[start:read], skip_special_tokens=True)
        text = tokenizer.decode(ids[start:], skip_special_tokens=True)
        if len(text) > len(before) and not text.endswith("\ufffd"):
            yield text[len(before) :]
            start, read = read, len(ids)
    if read < len(ids):  # the tokens ended inside a character: flush what there is
        before = tokenizer.decode(ids[start:read], skip_special_tokens=True)
        text = tokenizer.decode(ids[start:], skip_special_tokens=True)
        if len(text) > len(before):
            yield text[len(before) :]


def pick(
    logits: np.ndarray, temperature: float, top_k: int, top_p: float, rng: np.random.Generator
) -> int:
    """The next token from ``logits`` (V,): the argmax at temperature 0, else a draw from
    the softmax of logits / temperature over the ``top_k`` best (0: all), cut to the
    fewest that hold ``top_p`` of the probability."""
    if temperature == 0:
        return int(np.argmax(logits))
    z = logits.astype(np.float64) / temperature
    order = np.argsort(-z, kind="stable")  # best first; ties keep the lower id, as argmax
    if top_k:
        order = order[:top_k]
    p = np.exp(z[order] - z[order[0]])
    cum = np.cumsum(p / p.sum())
    if top_p < 1.0:
        keep = int(np.searchsorted(cum, top_p)) + 1
        order, cum = order[:keep], cum[:keep]
    i = int(np.searchsorted(cum, rng.random() * cum[-1], side="right"))
    return int(order[min(i, len(order) - 1)])


def _check_settings(max_new_tokens: int, temperature: float, top_k: int, top_p: float) -> None:
    for name, ok, allowed, got in (
        ("max_new_tokens", max_new_tokens >= 0, ">= 0", max_new_tokens),
        ("temperature", temperature >= 0, ">= 0 (0: greedy)", temperature),
        ("top_k", top_k >= 0, ">= 0 (0: no limit)", top_k),
        ("top_p", 0 < top_p <= 1, "in (0, 1]", top_p),
    ):
        if not ok:
            raise CanonError(f"{name}: must be {allowed}, got {got}")


def open_generator(path: str | os.PathLike[str], threads: int = 1) -> TextGenerator:
    """The ``TextGenerator`` of a language model's package (a directory or a zip) or of the
    run directory holding it (``package/``); ``PackageError`` for anything else."""
    from tokenizers import Tokenizer

    from canonml.package.reader import MANIFEST, PackageError, open_package

    where = Path(path)
    if where.is_dir() and not (where / MANIFEST).is_file() and (where / "package").is_dir():
        where = where / "package"
    pkg = open_package(where)
    facts = pkg.signature.get("generator")
    if not isinstance(facts, dict):
        raise PackageError(
            f"{pkg.path}: {pkg.task} model '{pkg.name}' does not generate text (its canon.json "
            "has no signature.generator); canon generate takes a language model's package "
            "(task: language-modeling)"
        )
    name = str(facts.get("tokenizer", "tokenizer.json"))
    try:
        tokenizer = Tokenizer.from_str(pkg.read(name).decode("utf-8"))
    except (UnicodeDecodeError, ValueError, Exception) as e:
        if isinstance(e, PackageError):
            raise
        raise PackageError(f"{pkg.path}/{name}: not a tokenizers file ({e})") from None
    return TextGenerator(pkg.read("model.onnx"), tokenizer, facts, threads)
