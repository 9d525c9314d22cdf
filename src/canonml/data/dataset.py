"""``Dataset``: examples as a source delivers them, before split and preprocessing."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np


@dataclass(frozen=True)
class Categorical:
    """A categorical column as integer codes: no Python object per cell.

    ``codes`` is ``(N,)`` int32 into ``categories`` (sorted, distinct); -1 marks a missing
    cell. Indexing and iterating give the cell values (``None`` when missing).
    """

    codes: np.ndarray
    categories: list[str]

    @classmethod
    def from_values(cls, values: Iterable[str | None]) -> Categorical:
        cells = list(values)
        categories = sorted({v for v in cells if v is not None})
        index = {c: i for i, c in enumerate(categories)}
        codes = [-1 if v is None else index[v] for v in cells]
        return cls(np.array(codes, dtype=np.int32), categories)

    def __len__(self) -> int:
        return len(self.codes)

    def __getitem__(self, i: int) -> str | None:
        code = int(self.codes[i])
        return None if code < 0 else self.categories[code]

    def __iter__(self) -> Iterator[str | None]:
        return (None if c < 0 else self.categories[c] for c in self.codes.tolist())

    def take(self, idx: np.ndarray) -> Categorical:
        return Categorical(self.codes[idx], self.categories)

    def counts(self) -> np.ndarray:
        """Cells per category, ``(len(categories),)`` int64."""
        return np.bincount(self.codes[self.codes >= 0], minlength=len(self.categories))


@dataclass
class Dataset:
    """Raw examples from one source.

    ``x`` is ``(N, F)`` float64 for tabular data (NaN marks a missing cell) or
    ``(N, C, H, W)`` float32 raw pixel values for images, or ``(N,)`` an object array of
    ``str`` for text (one example each; tokenized by preprocessing). ``y`` is ``(N,)`` int64
    class indices (classification; text sources with labels set ``label_names``) or
    ``(N,)`` float64 targets (regression); a corpus has int64 zeros and no label names.
    """

    x: np.ndarray
    y: np.ndarray
    kind: Literal["tabular", "image", "text"]
    feature_names: list[str]
    label_names: list[str] | None = None
    # Tabular only: the categorical columns by name.
    categorical: dict[str, Categorical] = field(default_factory=dict)
    # An official test split shipped with the data (MNIST, CIFAR-10); else split from x.
    test: Dataset | None = None
    # Raw pixel range for images (e.g. 255.0), used by min-max scaling.
    pixel_max: float | None = None
    # csv only: every column of the file, {"name", "kind", "missing"} (for data.json).
    columns: list[dict[str, Any]] = field(default_factory=list)
    # What a source did to its file that data.json shows (text: repeats and conflicts dropped).
    info: dict[str, Any] = field(default_factory=dict)

    def __len__(self) -> int:
        return int(self.x.shape[0])

    def take(self, idx: np.ndarray) -> Dataset:
        """The rows ``idx`` (no official test split attached)."""
        return Dataset(
            x=self.x[idx],
            y=self.y[idx],
            kind=self.kind,
            feature_names=self.feature_names,
            label_names=self.label_names,
            categorical={k: v.take(idx) for k, v in self.categorical.items()},
            pixel_max=self.pixel_max,
            columns=self.columns,
            info=self.info,
        )

    @property
    def image_shape(self) -> tuple[int, int, int] | None:
        return tuple(self.x.shape[1:]) if self.kind == "image" else None
