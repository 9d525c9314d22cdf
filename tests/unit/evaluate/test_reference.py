"""The reference classifier: deterministic, cached by fingerprint, never trusting a bad cache."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from canonml.evaluate import reference
from canonml.evaluate.reference import REFERENCE_VERSION, reference_classifier
from canonml.io import sha256_file

FINGERPRINT = "ab" * 32


@pytest.fixture(scope="module")
def small() -> tuple[np.ndarray, np.ndarray]:
    """400 digits: enough for a working classifier in about a second."""
    from sklearn.datasets import load_digits

    data = load_digits()
    x = data.data.reshape(-1, 1, 8, 8).astype(np.float32)
    return x[:400], data.target[:400].astype(np.int64)


def train(small: tuple[np.ndarray, np.ndarray], cache: Path, **kw: Any) -> reference.Reference:
    x, y = small
    return reference_classifier(x, y, FINGERPRINT, pixel_max=16.0, cache_dir=cache, **kw)


@pytest.fixture(scope="module")
def trained(
    small: tuple[np.ndarray, np.ndarray], tmp_path_factory: pytest.TempPathFactory
) -> reference.Reference:
    return train(small, tmp_path_factory.mktemp("ref"))


def no_training(*args: Any) -> None:
    raise AssertionError("retrained although the cache was valid")


def test_same_data_and_seed_give_the_same_file(
    small: tuple[np.ndarray, np.ndarray], trained: reference.Reference, tmp_path: Path
) -> None:
    import torch

    state, threads = torch.random.get_rng_state(), torch.get_num_threads()
    again = train(small, tmp_path)
    assert not again.from_cache and again.sha256 == trained.sha256
    assert again.sha256 == sha256_file(again.path)
    # the caller's global RNG and thread count are left as they were
    assert torch.equal(torch.random.get_rng_state(), state)
    assert torch.get_num_threads() == threads


def test_file_name_and_metadata(trained: reference.Reference) -> None:
    assert trained.path.name == f"{FINGERPRINT}-v{REFERENCE_VERSION}-s0.safetensors"
    blob = trained.path.read_bytes()
    meta = json.loads(blob[8 : 8 + int.from_bytes(blob[:8], "little")])["__metadata__"]
    assert meta["reference_version"] == str(REFERENCE_VERSION)
    assert meta["fingerprint"] == FINGERPRINT
    shapes = (meta["n_classes"], meta["input_shape"], meta["pixel_max"])
    assert shapes == ("10", "[1, 8, 8]", "16.0")
    assert meta["checked_on"] == "train" and float(meta["accuracy"]) == trained.accuracy > 0.9
    assert list(meta) == sorted(meta)


def test_outputs(trained: reference.Reference, small: tuple[np.ndarray, np.ndarray]) -> None:
    x, y = small
    feats = trained.features(x[:50])
    assert feats.shape == (50, 128) and feats.dtype == np.float64 and feats.min() >= 0.0
    proba = trained.proba(x[:50].reshape(50, 64))  # flattened rows work too
    assert proba.shape == (50, 10) and np.allclose(proba.sum(axis=1), 1.0)
    assert np.array_equal(trained.predict(x[:50]), proba.argmax(axis=1))
    assert np.mean(trained.predict(x) == y) == pytest.approx(trained.accuracy)
    with pytest.raises(ValueError, match=r"expects images of shape \[1, 8, 8\]"):
        trained.features(np.zeros((3, 1, 7, 7)))
    with pytest.raises(ValueError, match="NaN"):
        trained.features(np.full((3, 1, 8, 8), np.nan))


def test_cache_hit_does_not_retrain(
    small: tuple[np.ndarray, np.ndarray],
    trained: reference.Reference,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(reference, "_train", no_training)
    hit = train(small, trained.path.parent)
    assert hit.from_cache and hit.sha256 == trained.sha256
    x, _ = small
    assert np.array_equal(hit.features(x[:20]), trained.features(x[:20]))
    checked = train(small, trained.path.parent, x_check=x[:100], y_check=small[1][:100])
    assert checked.checked_on == "held-out" and checked.from_cache


def test_cache_dir_defaults_to_canon_cache(
    small: tuple[np.ndarray, np.ndarray],
    trained: reference.Reference,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    target = tmp_path / "reference" / trained.path.name
    target.parent.mkdir()
    target.write_bytes(trained.path.read_bytes())
    monkeypatch.setenv("CANON_CACHE", str(tmp_path))
    monkeypatch.setattr(reference, "_train", no_training)
    x, y = small
    assert reference_classifier(x, y, FINGERPRINT, pixel_max=16.0).path == target


def flip_tensor_byte(blob: bytes) -> bytes:
    at = len(blob) - 10  # inside the last tensor's data
    return blob[:at] + bytes([blob[at] ^ 0x01]) + blob[at + 1 :]


def set_meta(blob: bytes, **changes: str) -> bytes:
    n = int.from_bytes(blob[:8], "little")
    header = json.loads(blob[8 : 8 + n])
    header["__metadata__"].update(changes)
    text = json.dumps(header).encode()
    text += b" " * (-len(text) % 8)
    return len(text).to_bytes(8, "little") + text + blob[8 + n :]


@pytest.mark.parametrize(
    "corrupt",
    [
        lambda blob: b"not a safetensors file",
        lambda blob: blob[: len(blob) // 2],
        flip_tensor_byte,
        lambda blob: set_meta(blob, reference_version="0"),
        lambda blob: set_meta(blob, fingerprint="cd" * 32),
        lambda blob: set_meta(blob, accuracy="nan"),
    ],
    ids=["garbage", "truncated", "bit-flip", "old-version", "other-data", "bad-accuracy"],
)
def test_corrupt_cache_is_retrained_and_replaced(
    corrupt: Any,
    small: tuple[np.ndarray, np.ndarray],
    trained: reference.Reference,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    path = tmp_path / trained.path.name
    path.write_bytes(corrupt(trained.path.read_bytes()))
    calls: list[int] = []

    def retrain(*args: Any) -> Any:
        # Retraining gives the same bits (the determinism test shows it); hand back the
        # known-good module to keep this test short.
        calls.append(1)
        return trained.module

    monkeypatch.setattr(reference, "_train", retrain)
    fresh = train(small, tmp_path)
    assert calls == [1] and not fresh.from_cache
    assert fresh.sha256 == trained.sha256 == sha256_file(path)


def test_images_must_be_large_enough() -> None:
    with pytest.raises(ValueError, match="4×4"):
        reference.build_reference((1, 3, 3), 10)


def test_unwritable_cache_still_gives_the_classifier(
    small: tuple[np.ndarray, np.ndarray],
    trained: reference.Reference,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    blocked = tmp_path / "a-file"
    blocked.write_text("not a folder")
    monkeypatch.setattr(reference, "_train", lambda *a: trained.module)
    ref = train(small, blocked)
    assert ref.sha256 == trained.sha256 and not ref.path.exists()
