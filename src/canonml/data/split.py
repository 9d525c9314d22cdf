"""Seeded, optionally stratified train/val/test split (pure: indices in, indices out)."""

from __future__ import annotations

import numpy as np

from canonml.errors import DataError
from canonml.spec.data import SplitSpec


def split_indices(
    n: int, y: np.ndarray | None, spec: SplitSpec, seed: int, has_test: bool
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Return (train, val, test) row indices of ``n`` examples.

    ``y`` (class indices) enables stratification; with ``has_test`` the source brought its
    own test split, so only val is cut (its fraction then relative to the training data).
    """
    from sklearn.model_selection import train_test_split

    idx = np.arange(n)
    test_frac = 0.0 if has_test else spec.test
    val_frac = spec.val if has_test else spec.val
    strata = y if (spec.stratify and y is not None) else None
    _check_sizes(n, test_frac, val_frac, strata)
    try:
        if test_frac > 0:
            rest, test = train_test_split(
                idx, test_size=test_frac, random_state=seed, stratify=strata
            )
        else:
            rest, test = idx, idx[:0]
        if val_frac > 0:
            rel = val_frac / (1.0 - test_frac)
            train, val = train_test_split(
                rest,
                test_size=rel,
                random_state=seed + 1,
                stratify=None if strata is None else strata[rest],
            )
        else:
            train, val = rest, rest[:0]
    except ValueError as e:
        raise DataError(
            f"cannot split {n} examples as data.split asks ({e}); use more data, smaller "
            "fractions, or data.split.stratify: false",
            path="data.split",
        ) from None
    return np.sort(train), np.sort(val), np.sort(test)


def _check_sizes(n: int, test: float, val: float, strata: np.ndarray | None) -> None:
    if n == 0:
        raise DataError("empty data set: no examples to train on", path="data.source")
    for name, frac in (("test", test), ("val", val)):
        if frac > 0 and round(n * frac) < 1:
            raise DataError(
                f"{name} fraction {frac:g} of {n} examples is less than one example",
                path=f"data.split.{name}",
            )
    if strata is not None:
        values, counts = np.unique(strata, return_counts=True)
        if counts.min() < 3 and (test > 0 or val > 0):
            rare = values[counts.argmin()].item()
            raise DataError(
                f"class {rare!r} has {counts.min()} example(s); a stratified split needs at "
                "least 3 per class (add data or set data.split.stratify: false)",
                path="data.split.stratify",
            )
