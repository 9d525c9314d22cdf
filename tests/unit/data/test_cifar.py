"""``cifar10:`` source: binary batches (1 label byte + 3072 pixel bytes) written to tmp_path."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from canonml.data.sources import load_source
from canonml.data.sources.cifar import NAMES
from canonml.errors import DataError
from canonml.spec.data import DataSpec


def batch(n: int, seed: int) -> tuple[bytes, np.ndarray, np.ndarray]:
    """A binary batch of ``n`` records and the (N, 3, 32, 32) images and labels it holds."""
    rng = np.random.default_rng(seed)
    x = rng.integers(0, 256, (n, 3, 32, 32), dtype=np.uint8)
    y = rng.integers(0, 10, n, dtype=np.uint8)
    records = np.concatenate([y[:, None], x.reshape(n, -1)], axis=1)
    return records.tobytes(), x, y


def write_dir(folder: Path, meta: bool = True, test: bool = True) -> dict[str, np.ndarray]:
    folder.mkdir(parents=True, exist_ok=True)
    b1, x1, y1 = batch(4, seed=1)
    b2, x2, y2 = batch(3, seed=2)
    (folder / "data_batch_1.bin").write_bytes(b1)
    (folder / "data_batch_2.bin").write_bytes(b2)
    out = {"x": np.concatenate([x1, x2]), "y": np.concatenate([y1, y2])}
    if test:
        bt, xt, yt = batch(2, seed=3)
        (folder / "test_batch.bin").write_bytes(bt)
        out |= {"xt": xt, "yt": yt}
    if meta:
        names = "\n".join(f"class{i}" for i in range(10))
        (folder / "batches.meta.txt").write_text(names + "\n\n", encoding="utf-8")
    return out


def load(arg: str):
    return load_source(DataSpec(source=f"cifar10:{arg}"))


@pytest.mark.parametrize("sub", ["", "cifar-10-batches-bin"])
def test_reads_batches_in_order_with_test_split(tmp_path: Path, sub: str) -> None:
    want = write_dir(tmp_path / sub if sub else tmp_path)
    ds = load(str(tmp_path))
    assert ds.kind == "image" and ds.x.dtype == np.float32 and ds.y.dtype == np.int64
    assert ds.x.shape == (7, 3, 32, 32) and ds.pixel_max == 255.0
    np.testing.assert_array_equal(ds.x, want["x"])
    np.testing.assert_array_equal(ds.y, want["y"])
    assert ds.label_names == [f"class{i}" for i in range(10)]
    assert len(ds.feature_names) == 3072
    assert ds.test is not None and ds.test.x.shape == (2, 3, 32, 32)
    np.testing.assert_array_equal(ds.test.x, want["xt"])
    np.testing.assert_array_equal(ds.test.y, want["yt"])


def test_channel_major_layout(tmp_path: Path) -> None:
    record = bytes([7]) + bytes([10]) * 1024 + bytes([20]) * 1024 + bytes([30]) * 1024
    (tmp_path / "data_batch_1.bin").write_bytes(record)
    ds = load(str(tmp_path))
    assert ds.y.tolist() == [7]
    assert ds.x[0, :, 5, 9].tolist() == [10.0, 20.0, 30.0]


def test_default_names_and_no_test_split(tmp_path: Path) -> None:
    write_dir(tmp_path, meta=False, test=False)
    ds = load(str(tmp_path))
    assert ds.label_names == NAMES and ds.label_names[0] == "airplane" and ds.test is None


def test_known_name_uses_the_cache(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("CANON_CACHE", str(tmp_path))
    monkeypatch.setenv("CANON_DATA_MIRROR", "http://127.0.0.1:1")  # would fail if used
    want = write_dir(tmp_path / "cifar10" / "cifar-10-batches-bin")
    np.testing.assert_array_equal(load("cifar10").y, want["y"])


def test_truncated_batch_names_the_file(tmp_path: Path) -> None:
    write_dir(tmp_path)
    bad = tmp_path / "data_batch_2.bin"
    bad.write_bytes(bad.read_bytes()[:-5])
    with pytest.raises(DataError) as err:
        load(str(tmp_path))
    msg = str(err.value)
    assert "truncated CIFAR batch: 9214 bytes is not a multiple of 3073" in msg
    assert f"'{bad}'" in msg


@pytest.mark.parametrize(
    ("damage", "fragment"),
    [
        (lambda d: (d / "test_batch.bin").write_bytes(b""), "0 bytes is not a multiple"),
        (
            lambda d: (d / "data_batch_1.bin").write_bytes(bytes([12]) + bytes(3072)),
            "label 12 in record 0 is not a CIFAR-10 class 0..9",
        ),
        (
            lambda d: (d / "batches.meta.txt").write_text("cat\ndog\n", encoding="utf-8"),
            "expected 10 class names, one a line, got 2",
        ),
    ],
)
def test_bad_contents_name_the_file(tmp_path: Path, damage, fragment: str) -> None:
    write_dir(tmp_path)
    damage(tmp_path)
    with pytest.raises(DataError, match=fragment.replace(".", r"\.")) as err:
        load(str(tmp_path))
    assert str(tmp_path) in str(err.value)


def test_missing_directory_and_no_batches(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="directory not found; put the files data_batch_1.bin"):
        load(str(tmp_path / "missing"))
    with pytest.raises(DataError, match="no CIFAR-10 batches; put the files"):
        load(str(tmp_path))


def test_python_version_is_recognised_and_refused(tmp_path: Path) -> None:
    (tmp_path / "data_batch_1").write_bytes(b"\x80\x02pickle")
    with pytest.raises(DataError, match=r"Python \(pickle\) version, which canonml does not"):
        load(str(tmp_path))
