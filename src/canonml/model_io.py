"""``ModelIO``: what a model builder is told about its data — by the task, never by a spec."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ModelIO:
    """The shapes a model is built for.

    ``input_shape`` is one example without the batch axis: ``(F,)`` for tabular rows,
    ``(C, H, W)`` for images. ``n_outputs`` is the width of a supervised head (K logits, or 1
    regression value). ``n_classes`` is the number of class labels the data has, for models
    that take a label as input (a conditional generator); None when it has none.
    ``pad_id`` is the padding token of text (token ids), for a model that masks it out.
    """

    input_shape: tuple[int, ...]
    n_outputs: int = 1
    n_classes: int | None = None
    pad_id: int | None = None
