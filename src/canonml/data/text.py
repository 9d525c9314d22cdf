"""Tokenizers (the ``tokenizers`` library, no torch): train or load one, turn text into ids.

Three kinds, each a ``tokenizers.Tokenizer`` saved as one ``tokenizer.json`` artefact:

- ``char``: one token per character (spaces and newlines included) seen at least
  ``min_frequency`` times in the training split, after ``<pad>`` (0), ``<unk>`` (1) and
  ``<eos>`` (2); ``decode(encode(s)) == s`` for text of known characters.
- ``bpe``: byte-level BPE trained on the training split, same specials; nothing is unknown.
- ``checkpoint``: a checkpoint's own ``tokenizer.json``, with its own specials.

Training and inference encode through the same two functions, ``encode_rows`` (one padded
row per example) and ``pack`` (windows of a token stream), so ``tokenizers`` alone
reproduces the training-time ids.
"""

from __future__ import annotations

import contextlib
import itertools
import json
from collections import Counter
from collections.abc import Collection, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from canonml.errors import SpecError

if TYPE_CHECKING:
    from tokenizers import Tokenizer

    from canonml.spec.data import TokenizerSpec

PAD, UNK, EOS = "<pad>", "<unk>", "<eos>"
SPECIALS = (PAD, UNK, EOS)  # ids 0, 1, 2 in the tokenizers canonml trains
TOKENIZER_FILE = "tokenizer.json"
# Names checkpoints give their special tokens, per role (BERT, GPT-2, T5, Llama, ...).
_ROLES = {
    "pad": ("[PAD]", "<pad>", "<|pad|>", "<|padding|>"),
    "unk": ("[UNK]", "<unk>", "<|unk|>"),
    "eos": ("<eos>", "</s>", "<|endoftext|>", "<|end_of_text|>", "<|eos|>"),
    "bos": ("<bos>", "<s>", "<|begin_of_text|>", "<|bos|>"),
    "cls": ("[CLS]", "<cls>"),
    "sep": ("[SEP]", "<sep>"),
    "mask": ("[MASK]", "<mask>"),
}


def train_tokenizer(texts: Sequence[str], spec: TokenizerSpec) -> Tokenizer:
    """A ``char`` or ``bpe`` tokenizer learned from ``texts`` (the training split), or the
    checkpoint's own for ``kind: checkpoint``."""
    if spec.kind == "checkpoint":
        tokenizer = load_tokenizer(str(spec.path))
        # The artefact keeps no length settings of its own: encode_rows and pack set them.
        tokenizer.no_truncation()
        tokenizer.no_padding()
        return tokenizer
    if spec.kind == "char":
        return _char_tokenizer(texts, spec.min_frequency or 2)
    return _bpe_tokenizer(texts, spec.vocab_size or 8000)


def _char_tokenizer(texts: Sequence[str], min_frequency: int) -> Tokenizer:
    from tokenizers import Tokenizer, decoders, models

    counts: Counter[str] = Counter()
    for text in texts:
        counts.update(text)
    # Most frequent first, ties by code point: the same texts give the same ids.
    kept = sorted(
        (c for c, n in counts.items() if n >= min_frequency), key=lambda c: (-counts[c], c)
    )
    vocab = {token: i for i, token in enumerate([*SPECIALS, *kept])}
    # A BPE model with no merges and no pre-tokenizer maps each character to its token (or
    # <unk>): the same ids as WordLevel over a split into single characters, 3x faster.
    tokenizer = Tokenizer(models.BPE(vocab, [], unk_token=UNK))
    tokenizer.decoder = decoders.Fuse()  # join the pieces with nothing between them
    tokenizer.add_special_tokens(list(SPECIALS))
    return tokenizer


def _bpe_tokenizer(texts: Sequence[str], vocab_size: int) -> Tokenizer:
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    tokenizer = Tokenizer(models.BPE(unk_token=UNK))
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=list(SPECIALS),
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),  # all 256 bytes: no unknowns
        show_progress=False,
    )
    tokenizer.train_from_iterator(texts, trainer=trainer, length=len(texts))
    return tokenizer


def load_tokenizer(path: str | Path, where: str = "data.text.tokenizer.path") -> Tokenizer:
    """The tokenizer in ``path``: a ``tokenizer.json`` or a folder holding one (a Hugging
    Face model directory). ``where`` is the place an error names."""
    from tokenizers import Tokenizer

    given = Path(path)
    file = given / TOKENIZER_FILE if given.is_dir() else given
    if not file.is_file():
        looked = f"'{file}'" if file == given else f"'{given}' (looked for '{file}')"
        raise SpecError(
            where, f"no tokenizer file at {looked}; give a tokenizer.json or the folder holding it"
        )
    try:
        return Tokenizer.from_file(str(file))
    except Exception as e:  # the library raises a bare Exception for a malformed file
        problem = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise SpecError(where, f"'{file}' is not a tokenizers file ({problem})") from None


def specials(tokenizer: Tokenizer) -> dict[str, int]:
    """The ids of the special tokens the tokenizer has, by role (pad, unk, eos, bos, cls,
    sep, mask); a role it lacks is absent."""
    vocab = tokenizer.get_vocab(with_added_tokens=True)
    found = {}
    for role, names in _ROLES.items():
        token = next((t for t in names if t in vocab), None)
        if token is not None:
            found[role] = vocab[token]
    unk = json.loads(tokenizer.to_str()).get("model", {}).get("unk_token")
    if unk in vocab:  # the model's own unknown token wins over a name that looks like one
        found["unk"] = vocab[unk]
    return found


def describe_tokenizer(tokenizer: Tokenizer, kind: str) -> dict[str, Any]:
    """What a run records of a tokenizer: kind, vocabulary size and special ids.

    ``eos_id`` is the token that ends each example in a packed stream: ``<eos>``, or a
    checkpoint's own end-of-text (else its ``[SEP]``); None when it has neither. A
    tokenizer without a padding token pads with that one.
    """
    ids = specials(tokenizer)
    eos = ids.get("eos", ids.get("sep"))
    pad = ids.get("pad", eos)
    if pad is None:
        raise SpecError(
            "data.text.tokenizer",
            "the tokenizer has no padding or end-of-text token to pad with; use kind: char or bpe",
        )
    return {
        "tokenizer_kind": kind,
        "vocab_size": tokenizer.get_vocab_size(with_added_tokens=True),
        "pad_id": pad,
        "unk_id": ids.get("unk"),
        "eos_id": eos,
        "specials": ids,
    }


def encode_rows(
    tokenizer: Tokenizer, texts: Sequence[str], max_length: int, pad_id: int
) -> np.ndarray:
    """``(N, max_length)`` int64 ids, one row per text: truncated, then padded with ``pad_id``.

    A checkpoint's tokenizer adds its own specials (``[CLS] ... [SEP]``) inside the length.
    """
    return encode_counted(tokenizer, texts, max_length, pad_id)[0]


def encode_counted(
    tokenizer: Tokenizer, texts: Sequence[str], max_length: int, pad_id: int
) -> tuple[np.ndarray, int]:
    """``encode_rows`` and how many of the texts were truncated."""
    pad_token = tokenizer.id_to_token(pad_id)
    with _settings(tokenizer):
        tokenizer.enable_truncation(max_length)
        tokenizer.enable_padding(pad_id=pad_id, pad_token=pad_token or PAD, length=max_length)
        encodings = tokenizer.encode_batch(list(texts))
    ids = np.array([e.ids for e in encodings], dtype=np.int64).reshape(len(encodings), max_length)
    return ids, sum(1 for e in encodings if e.overflowing)


def pack(tokenizer: Tokenizer, texts: Sequence[str], window: int, eos_id: int) -> np.ndarray:
    """``(n, window)`` int64: every text's ids followed by ``eos_id``, joined into one
    stream and cut into non-overlapping windows; the last partial window is dropped."""
    with _settings(tokenizer):
        encodings = tokenizer.encode_batch(list(texts), add_special_tokens=False)
    stream = np.fromiter(
        itertools.chain.from_iterable([*e.ids, eos_id] for e in encodings), dtype=np.int64
    )
    n = len(stream) // window
    return stream[: n * window].reshape(n, window)


def unknown_rate(
    ids: np.ndarray, unk_id: int | None, pad_id: int | None, ignore: Collection[int] = ()
) -> float:
    """Share of the tokens in ``ids`` that are ``unk_id``, padding and ``ignore`` (the other
    specials: ``[CLS]``, ``[SEP]``, ``<eos>``) left out; 0.0 when nothing can be unknown."""
    skip = [i for i in (pad_id, *ignore) if i is not None and i != unk_id]
    tokens = ids[~np.isin(ids, skip)] if skip else ids.ravel()
    if unk_id is None or tokens.size == 0:
        return 0.0
    return float(np.count_nonzero(tokens == unk_id) / tokens.size)


@contextlib.contextmanager
def _settings(tokenizer: Tokenizer) -> Iterator[None]:
    """No truncation or padding inside (a checkpoint may ship its own); restored after."""
    truncation, padding = tokenizer.truncation, tokenizer.padding
    tokenizer.no_truncation()
    tokenizer.no_padding()
    try:
        yield
    finally:
        tokenizer.no_truncation()
        tokenizer.no_padding()
        if truncation is not None:
            tokenizer.enable_truncation(**truncation)
        if padding is not None:
            tokenizer.enable_padding(**padding)
