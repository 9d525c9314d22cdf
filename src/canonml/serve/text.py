"""A text classifier's raw-text input: texts → ``input_ids`` and ``attention_mask``.

Clients send one BYTES tensor ``text`` of shape ``[-1]``; the server tokenizes it as
``canon predict`` does (``canonml.data.text.encode_rows`` with the package's
``tokenizer.json`` and its signature's ``text`` entry), so the ids, and so the
probabilities, are the same. Each request is trimmed to its longest text; the micro-batcher
pads the requests of one batch to the longest of them (``pad``), which the attention mask
makes invisible to the model.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from canonml.errors import CanonError, MissingExtraError

if TYPE_CHECKING:
    from canonml.serve.model import PackageLike, TensorSpec

INPUT = "text"  # the one input a text classifier takes over OIP v2
GRAPH_INPUTS = ("input_ids", "attention_mask")


class TextInput:
    """The package's tokenizer and how its signature says to use it."""

    def __init__(
        self, package: PackageLike, entry: dict[str, Any], graph_inputs: list[TensorSpec]
    ) -> None:
        if sorted(t.name for t in graph_inputs) != sorted(GRAPH_INPUTS):
            takes = ", ".join(t.name for t in graph_inputs)
            raise CanonError(
                f"{package.name}: a text classifier's model.onnx takes "
                f"{', '.join(GRAPH_INPUTS)}; this one takes {takes}"
            )
        try:
            from tokenizers import Tokenizer
        except ImportError:
            raise MissingExtraError("tokenizers", "serve") from None
        name = str(entry.get("tokenizer") or "tokenizer.json")
        try:
            self.max_length = int(entry["max_length"])
            self.pad_id = int(entry["pad_id"])
        except (KeyError, TypeError, ValueError):
            raise CanonError(
                f"{package.name}: signature.text needs integer max_length and pad_id, "
                f"got {entry!r:.120}"
            ) from None
        try:
            self.tokenizer = Tokenizer.from_str(package.read(name).decode("utf-8"))
        except CanonError:
            raise
        except Exception as e:  # tokenizers raises a bare Exception for a malformed file
            raise CanonError(f"{package.name}: {name} is not a tokenizers file ({e})") from None
        # What the batcher pads each graph input with when requests differ in length.
        self.pad = {"input_ids": self.pad_id, "attention_mask": 0}
        self.signature = package.signature  # data.anonymize's masks apply to requests too

    def encode(self, texts: list[str]) -> dict[str, np.ndarray]:
        """``input_ids`` and ``attention_mask`` (N, S) int64, S the longest text's tokens."""
        from canonml.package.text_inputs import encode_texts, masked_like_training

        texts = masked_like_training(self.signature, texts)
        return encode_texts(self.tokenizer, texts, self.max_length, self.pad_id)

    def example(self) -> dict[str, np.ndarray]:
        """One sample as long as a request can make (every position a token): the warm-up,
        and the timed call that decides where the batcher runs the model."""
        ids = np.full((1, self.max_length), self.pad_id, dtype=np.int64)
        return {"input_ids": ids, "attention_mask": np.ones_like(ids)}
