"""How close generated images are to real ones, in the reference classifier's eyes.

- ``frechet_distance``: the Fréchet distance between Gaussians fitted to two feature sets,
  ``|μa − μb|² + tr(Σa + Σb − 2 (Σa Σb)^½)`` (FID's formula, on canonml's own features).
- ``fd_baselines``: three fixed points to read a model's FD against, each vs the test split:
  the floor (real training images), the "no model" baseline (a full-covariance Gaussian
  fitted to the training pixels) and the ceiling (uniform noise).
- ``fd_of``, ``coverage``, ``conditional_accuracy``: a model's samples.

Sample sizes, decided once: every candidate set (training images, Gaussian, noise, a model's
samples) has the same size N = min(len(train), ``MAX_N``) and is compared with the whole test
split. FD is biased upwards by roughly tr(Σ)/N on each side, so equal N keeps the numbers
comparable; taking all of the training split (1,257 images on digits) makes the floor a fixed
number rather than a draw, with a smaller bias than a test-sized subset's (on digits 1.9
rather than 5.1). Pass the record's ``n`` to ``fd_of`` so a model is measured with the same N.
"""

from __future__ import annotations

import warnings
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from canonml.evaluate.reference import Reference

MAX_N = 10_000  # candidates per FD; MNIST-sized training splits are subsampled to this
EPS = 1e-6  # added to both covariances' diagonals when (Σa Σb)^½ fails, as pytorch-fid does


def frechet_distance(a: np.ndarray, b: np.ndarray, *, eps: float = EPS) -> float:
    """FD between the Gaussians fitted (mean, full covariance) to features ``a`` and ``b``.

    Args:
        a, b: ``(Na, D)`` and ``(Nb, D)`` feature sets, each with at least 2 rows.
    """
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if a.ndim != 2 or b.ndim != 2 or a.shape[1] != b.shape[1] or min(len(a), len(b)) < 2:
        raise ValueError(
            f"frechet_distance: needs two (N, D) feature sets with the same D and N ≥ 2, "
            f"got {a.shape} and {b.shape}"
        )
    mu_a, mu_b = a.mean(axis=0), b.mean(axis=0)
    cov_a, cov_b = np.atleast_2d(np.cov(a, rowvar=False)), np.atleast_2d(np.cov(b, rowvar=False))
    diff = mu_a - mu_b
    value = diff @ diff + np.trace(cov_a) + np.trace(cov_b) - 2.0 * _trace_sqrt(cov_a, cov_b, eps)
    return float(max(value, 0.0))  # rounding can leave -1e-12 for identical sets


def _trace_sqrt(cov_a: np.ndarray, cov_b: np.ndarray, eps: float) -> float:
    """tr((Σa Σb)^½), retried with eps·I on both when the product is singular."""
    from scipy import linalg

    with warnings.catch_warnings():
        warnings.simplefilter("error", linalg.LinAlgWarning)
        try:
            root = linalg.sqrtm(cov_a @ cov_b)
            failed = not np.isfinite(root).all()
        except linalg.LinAlgWarning:  # "matrix is singular": dead ReLU units do this
            failed = True
    if failed:
        offset = np.eye(len(cov_a)) * eps
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", linalg.LinAlgWarning)
            root = linalg.sqrtm((cov_a + offset) @ (cov_b + offset))
    if np.iscomplexobj(root):
        # Σa Σb has real eigenvalues ≥ 0; an imaginary part is rounding, unless it is large.
        if not np.allclose(np.diagonal(root).imag, 0.0, atol=1e-3):
            worst = float(np.max(np.abs(np.diagonal(root).imag)))
            raise ValueError(f"frechet_distance: (Σa Σb)^½ has imaginary part {worst:.3g}")
        root = root.real
    return float(np.trace(root))


def fd_baselines(
    ref: Reference,
    x_train: np.ndarray,
    x_test: np.ndarray,
    *,
    n: int | None = None,
    seed: int = 0,
) -> dict[str, Any]:
    """FD of the floor, the fitted-Gaussian baseline and the noise ceiling vs ``x_test``.

    Args:
        ref: the reference classifier of this data set.
        x_train, x_test: raw training and test images.
        n: images per candidate set, at most len(x_train) (default min(len(x_train),
            MAX_N)); the floor is the whole training split when n = len(x_train), else a
            seeded subset of n.

    Returns:
        ``floor``, ``gaussian``, ``noise`` (floats) and what reproduces them: ``n``,
        ``n_test``, ``seed``, ``floor_split`` ("train"), ``vs_split`` ("test"),
        ``reference_sha256``, ``reference_version``.
    """
    from canonml.evaluate.reference import REFERENCE_VERSION

    x_train = np.asarray(x_train, dtype=np.float64)
    n = min(len(x_train), MAX_N) if n is None else int(n)
    if not 2 <= n <= len(x_train):
        raise ValueError(
            f"fd_baselines: n must be in [2, len(x_train) = {len(x_train)}] so that every set "
            f"has n images, got {n}"
        )
    rng = np.random.default_rng(seed)
    test = ref.features(x_test)
    real = x_train if n == len(x_train) else x_train[rng.choice(len(x_train), n, replace=False)]
    shape = (n, *ref.input_shape)
    return {
        "floor": frechet_distance(ref.features(real), test),
        "gaussian": frechet_distance(ref.features(fitted_gaussian(x_train, n, rng, ref)), test),
        "noise": frechet_distance(ref.features(rng.uniform(0.0, ref.pixel_max, shape)), test),
        "n": n,
        "n_test": int(len(test)),
        "seed": seed,
        "floor_split": "train",
        "vs_split": "test",
        "reference_sha256": ref.sha256,
        "reference_version": REFERENCE_VERSION,
    }


def fitted_gaussian(
    x_train: np.ndarray, n: int, rng: np.random.Generator, ref: Reference
) -> np.ndarray:
    """``n`` images drawn from N(mean, full covariance) of the flattened training pixels.

    Clipped to [0, pixel_max]: the baseline a model must beat knows the pixel range.
    """
    flat = np.asarray(x_train, dtype=np.float64).reshape(len(x_train), -1)  # (N, C·H·W)
    draws = rng.multivariate_normal(flat.mean(axis=0), np.cov(flat, rowvar=False), size=n)
    return np.clip(draws, 0.0, ref.pixel_max).reshape(n, *ref.input_shape)


def fd_of(
    ref: Reference,
    generated: np.ndarray,
    x_test: np.ndarray,
    *,
    n: int | None = None,
    seed: int = 0,
) -> float:
    """FD of a model's raw-unit samples vs the test split.

    ``n`` (the baselines' ``n``) takes a seeded subset of that many samples, so the number
    compares with ``fd_baselines``; None uses them all. Samples are not clipped: values
    outside the pixel range count against the model.
    """
    generated = np.asarray(generated)
    if n is not None and n < len(generated):
        generated = generated[np.random.default_rng(seed).choice(len(generated), n, replace=False)]
    elif n is not None and n > len(generated):
        raise ValueError(f"fd_of: asked for n={n} samples, got {len(generated)}")
    return frechet_distance(ref.features(generated), ref.features(x_test))


def coverage(ref: Reference, generated: np.ndarray, *, threshold: float = 0.02) -> dict[str, float]:
    """Which classes the reference classifier sees in the samples (mode collapse shows here).

    Returns:
        ``classes_covered``: the fraction of the K classes assigned to ≥ ``threshold`` of the
        samples; ``mean_confidence``: the mean top-class probability.
    """
    proba = ref.proba(generated)  # (N, K)
    if len(proba) == 0:
        raise ValueError("coverage: no samples")
    share = np.bincount(proba.argmax(axis=1), minlength=ref.n_classes) / len(proba)
    return {
        "classes_covered": float(np.mean(share >= threshold)),
        "mean_confidence": float(proba.max(axis=1).mean()),
    }


def conditional_accuracy(
    ref: Reference, generated: np.ndarray, requested_labels: np.ndarray
) -> float:
    """The fraction of samples the reference classifier assigns to the class they were asked for."""
    labels = np.asarray(requested_labels).reshape(-1)
    if len(labels) != len(generated) or len(labels) == 0:
        raise ValueError(
            f"conditional_accuracy: needs one requested label per sample, got {len(labels)} "
            f"labels for {len(generated)} samples"
        )
    return float(np.mean(ref.predict(generated) == labels))
