"""``Dataset``: examples as a source delivers them, before split and preprocessing."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import numpy as np


@dataclass
class Dataset:
    """Raw examples from one source.

    ``x`` is ``(N, F)`` float64 for tabular data (NaN marks a missing cell) or
    ``(N, C, H, W)`` float32 raw pixel values for images. ``y`` is ``(N,)`` int64 class
    indices (classification) or ``(N,)`` float64 targets (regression).
    """

    x: np.ndarray
    y: np.ndarray
    kind: Literal["tabular", "image"]
    feature_names: list[str]
    label_names: list[str] | None = None
    # Tabular only: categorical columns, name -> (N,) object array of str (None = missing).
    categorical: dict[str, np.ndarray] = field(default_factory=dict)
    # An official test split shipped with the data (MNIST, CIFAR-10); else split from x.
    test: Dataset | None = None
    # Raw pixel range for images (e.g. 255.0), used by min-max scaling.
    pixel_max: float | None = None

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
            categorical={k: v[idx] for k, v in self.categorical.items()},
            pixel_max=self.pixel_max,
        )

    @property
    def image_shape(self) -> tuple[int, int, int] | None:
        return tuple(self.x.shape[1:]) if self.kind == "image" else None
