"""Fréchet distance against closed forms; baselines, coverage and conditional accuracy."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from canonml.evaluate.fidelity import (
    conditional_accuracy,
    coverage,
    fd_baselines,
    fd_of,
    frechet_distance,
)
from canonml.evaluate.reference import REFERENCE_VERSION, Reference, reference_classifier


def gaussian(mean: np.ndarray, cov: np.ndarray, n: int, seed: int) -> np.ndarray:
    """Samples whose sample mean and covariance are exactly ``mean`` and ``cov``."""
    z = np.random.default_rng(seed).standard_normal((n, len(mean)))
    z -= z.mean(axis=0)
    z = z @ np.linalg.inv(np.linalg.cholesky(np.cov(z, rowvar=False))).T  # whiten exactly
    return mean + z @ np.linalg.cholesky(cov).T


def test_same_set_is_zero() -> None:
    a = np.random.default_rng(0).normal(size=(500, 8))
    assert frechet_distance(a, a) == pytest.approx(0.0, abs=1e-8)


def test_shifted_gaussians_give_squared_mean_distance() -> None:
    cov = np.diag([1.0, 2.0, 0.5, 3.0])
    a = gaussian(np.zeros(4), cov, 400, 0)
    b = gaussian(np.array([1.0, -2.0, 0.0, 0.5]), cov, 300, 1)
    assert frechet_distance(a, b) == pytest.approx(1.0 + 4.0 + 0.25, rel=1e-8)


def test_scaled_isotropic_gaussians_closed_form() -> None:
    # N(0, s²I) vs N(0, t²I) in D dims: D (s − t)².
    a = gaussian(np.zeros(5), 4.0 * np.eye(5), 400, 2)
    b = gaussian(np.zeros(5), 0.25 * np.eye(5), 400, 3)
    assert frechet_distance(a, b) == pytest.approx(5 * (2.0 - 0.5) ** 2, rel=1e-8)


def test_full_covariances_match_the_eigen_formula() -> None:
    rng = np.random.default_rng(4)
    m_a, m_b = rng.normal(size=(2, 6, 6))
    cov_a, cov_b = m_a @ m_a.T + 0.1 * np.eye(6), m_b @ m_b.T + 0.1 * np.eye(6)
    mu = rng.normal(size=6)
    a, b = gaussian(np.zeros(6), cov_a, 300, 5), gaussian(mu, cov_b, 300, 6)
    # tr((Σa Σb)^½) = Σ √λ of the symmetric Σa^½ Σb Σa^½
    w, v = np.linalg.eigh(cov_a)
    half = v @ np.diag(np.sqrt(w)) @ v.T
    cross = np.sqrt(np.clip(np.linalg.eigvalsh(half @ cov_b @ half), 0, None)).sum()
    expected = mu @ mu + np.trace(cov_a) + np.trace(cov_b) - 2 * cross
    assert frechet_distance(a, b) == pytest.approx(expected, rel=1e-7)
    assert frechet_distance(a, b) == pytest.approx(frechet_distance(b, a), rel=1e-9)


def test_singular_covariances_are_guarded() -> None:
    # Dead units (constant 0 in both sets), as post-ReLU features have: no warning, no NaN.
    rng = np.random.default_rng(7)
    a, b = rng.normal(size=(200, 6)), rng.normal(1.0, 1.0, size=(200, 6))
    a[:, :3] = b[:, :3] = 0.0
    value = frechet_distance(a, b)
    assert np.isfinite(value)
    assert value == pytest.approx(frechet_distance(a[:, 3:], b[:, 3:]), abs=1e-4)


@pytest.mark.parametrize(
    ("a", "b"),
    [((10, 3), (10, 4)), ((1, 3), (10, 3)), ((10,), (10,))],
)
def test_bad_feature_sets_are_refused(a: tuple[int, ...], b: tuple[int, ...]) -> None:
    with pytest.raises(ValueError, match="frechet_distance"):
        frechet_distance(np.zeros(a), np.zeros(b))


class FixedReference(Reference):
    """A stand-in whose probabilities are given: coverage needs no trained network."""

    def proba(self, x: np.ndarray) -> np.ndarray:
        return np.asarray(x, dtype=np.float64).reshape(len(x), -1)


def fixed(n_classes: int = 10) -> FixedReference:
    return FixedReference(None, "", Path("x"), n_classes, (n_classes,), 1.0, 1.0, "train", False)


def onehot(labels: list[int], k: int = 10, p: float = 1.0) -> np.ndarray:
    out = np.full((len(labels), k), (1.0 - p) / (k - 1))
    out[np.arange(len(labels)), labels] = p
    return out


def test_one_class_covers_a_tenth() -> None:
    result = coverage(fixed(), onehot([3] * 500, p=0.8))
    assert result == {"classes_covered": 0.1, "mean_confidence": pytest.approx(0.8)}


def test_coverage_threshold_counts_classes_with_two_percent() -> None:
    # 8 classes with 12% each, class 8 with 2% (counts), class 9 with 2% − 1 sample (does not).
    labels = [c for c in range(8) for _ in range(120)] + [8] * 20 + [9] * 19 + [0]
    assert len(labels) == 1000
    assert coverage(fixed(), onehot(labels))["classes_covered"] == pytest.approx(0.9)
    assert coverage(fixed(), onehot(list(range(10)) * 100))["classes_covered"] == 1.0


def test_conditional_accuracy_counts_requested_classes() -> None:
    asked = np.array([0, 1, 2, 3])
    assert conditional_accuracy(fixed(), onehot([0, 1, 2, 9]), asked) == 0.75
    with pytest.raises(ValueError, match="one requested label per sample"):
        conditional_accuracy(fixed(), onehot([0, 1]), asked)


@pytest.fixture(scope="module")
def digits(tmp_path_factory: pytest.TempPathFactory) -> tuple[Reference, dict[str, np.ndarray]]:
    from sklearn.datasets import load_digits

    from canonml.data.split import split_indices
    from canonml.spec.data import SplitSpec

    data = load_digits()
    x = data.data.reshape(-1, 1, 8, 8).astype(np.float32)
    y = data.target.astype(np.int64)
    train, _, test = split_indices(len(x), y, SplitSpec(), 0, has_test=False)
    arrays = {"x_train": x[train], "y_train": y[train], "x_test": x[test], "y_test": y[test]}
    ref = reference_classifier(
        x[train],
        y[train],
        "digits-seed0",
        pixel_max=16.0,
        x_check=x[test],
        y_check=y[test],
        cache_dir=tmp_path_factory.mktemp("reference"),
    )
    return ref, arrays


def test_digits_baselines_are_ordered_and_recorded(
    digits: tuple[Reference, dict[str, np.ndarray]],
) -> None:
    ref, d = digits
    assert ref.accuracy > 0.95 and ref.checked_on == "held-out"
    result = fd_baselines(ref, d["x_train"], d["x_test"], seed=0)
    assert 0 < result["floor"] < result["gaussian"] < result["noise"]
    assert result["gaussian"] > 5 * result["floor"] and result["noise"] > 2 * result["gaussian"]
    assert result["n"] == len(d["x_train"]) and result["n_test"] == len(d["x_test"]) == 360
    assert result["reference_sha256"] == ref.sha256
    assert result["reference_version"] == REFERENCE_VERSION
    assert (result["floor_split"], result["vs_split"]) == ("train", "test")
    # The floor uses the whole training split: it is fd_of on the training images.
    assert fd_of(ref, d["x_train"], d["x_test"]) == pytest.approx(result["floor"])
    assert fd_baselines(ref, d["x_train"], d["x_test"], seed=0) == result  # reproducible


def test_baselines_on_a_subset(digits: tuple[Reference, dict[str, np.ndarray]]) -> None:
    ref, d = digits
    small = fd_baselines(ref, d["x_train"], d["x_test"], n=300, seed=1)
    assert small["n"] == 300 and small["floor"] < small["gaussian"] < small["noise"]
    with pytest.raises(ValueError, match="every set has n images"):
        fd_baselines(ref, d["x_train"], d["x_test"], n=len(d["x_train"]) + 1)


def test_digits_real_images_cover_every_class(
    digits: tuple[Reference, dict[str, np.ndarray]],
) -> None:
    ref, d = digits
    result = coverage(ref, d["x_test"])
    assert result["classes_covered"] == 1.0 and result["mean_confidence"] > 0.9
    assert conditional_accuracy(ref, d["x_test"], d["y_test"]) == pytest.approx(ref.accuracy)
    ones = d["x_test"][d["y_test"] == 1]
    assert coverage(ref, ones)["classes_covered"] <= 0.2  # mode collapse shows
    # fd_of subsamples to the baselines' n, seeded
    assert fd_of(ref, d["x_train"], d["x_test"], n=200, seed=1) == pytest.approx(
        fd_of(ref, d["x_train"], d["x_test"], n=200, seed=1)
    )
    with pytest.raises(ValueError, match="n=5000"):
        fd_of(ref, d["x_test"], d["x_test"], n=5000)
