"""``idx:`` source: real IDX files (raw and gzipped) written into tmp_path."""

from __future__ import annotations

import gzip
import struct
from pathlib import Path

import numpy as np
import pytest

from canonml.data.sources import load_source
from canonml.data.sources.idx import FASHION, read_idx
from canonml.errors import DataError
from canonml.spec.data import DataSpec

CODES = {np.dtype(np.uint8): 0x08, np.dtype(np.int8): 0x09, np.dtype(np.int16): 0x0B}


def idx_bytes(arr: np.ndarray) -> bytes:
    """Serialise ``arr`` as an IDX file: magic, big-endian dims, big-endian data."""
    head = bytes([0, 0, CODES[arr.dtype], arr.ndim]) + struct.pack(f">{arr.ndim}I", *arr.shape)
    return head + arr.astype(arr.dtype.newbyteorder(">")).tobytes()


def write(path: Path, arr: np.ndarray) -> Path:
    data = idx_bytes(arr)
    path.write_bytes(gzip.compress(data) if path.suffix == ".gz" else data)
    return path


def fake_split(n: int, seed: int, classes: int = 10) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, (n, 28, 28), dtype=np.uint8), rng.integers(
        0, classes, n, dtype=np.uint8
    )


def write_dir(root: Path, gz: bool = True, test: bool = True) -> dict[str, np.ndarray]:
    root.mkdir(parents=True, exist_ok=True)
    sfx = ".gz" if gz else ""
    x, y = fake_split(20, seed=0)
    write(root / f"train-images-idx3-ubyte{sfx}", x)
    write(root / f"train-labels-idx1-ubyte{sfx}", y)
    out = {"x": x, "y": y}
    if test:
        xt, yt = fake_split(5, seed=1)
        # The test split raw when train is gzipped, to cover both in one directory.
        write(root / f"t10k-images-idx3-ubyte{'' if gz else '.gz'}", xt)
        write(root / f"t10k-labels-idx1-ubyte{'' if gz else '.gz'}", yt)
        out |= {"xt": xt, "yt": yt}
    return out


def load(arg: str):
    return load_source(DataSpec(source=f"idx:{arg}"))


@pytest.mark.parametrize("gz", [True, False])
def test_reads_train_and_test_split(tmp_path: Path, gz: bool) -> None:
    want = write_dir(tmp_path / "d", gz=gz)
    ds = load(str(tmp_path / "d"))
    assert ds.kind == "image" and ds.x.dtype == np.float32 and ds.y.dtype == np.int64
    assert ds.x.shape == (20, 1, 28, 28)
    np.testing.assert_array_equal(ds.x[:, 0], want["x"].astype(np.float32))
    np.testing.assert_array_equal(ds.y, want["y"])
    assert ds.pixel_max == 255.0
    assert len(ds.feature_names) == 784 and ds.feature_names[0] == "pixel_0"
    top = max(want["y"].max(), want["yt"].max())
    assert ds.label_names == [str(i) for i in range(top + 1)]
    assert ds.test is not None and ds.test.x.shape == (5, 1, 28, 28)
    np.testing.assert_array_equal(ds.test.x[:, 0], want["xt"])
    np.testing.assert_array_equal(ds.test.y, want["yt"])
    assert ds.test.label_names == ds.label_names and ds.test.test is None


def test_without_t10k_files_has_no_test_split(tmp_path: Path) -> None:
    want = write_dir(tmp_path, test=False)
    ds = load(str(tmp_path))
    assert ds.test is None and len(ds) == 20
    np.testing.assert_array_equal(ds.y, want["y"])


def test_dotted_file_names_are_accepted(tmp_path: Path) -> None:
    x, y = fake_split(3, seed=2)
    write(tmp_path / "train-images.idx3-ubyte", x)
    write(tmp_path / "train-labels.idx1-ubyte", y)
    np.testing.assert_array_equal(load(str(tmp_path)).x[:, 0], x)


def test_known_name_reads_the_cache_without_downloading(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("CANON_CACHE", str(tmp_path))
    monkeypatch.setenv("CANON_DATA_MIRROR", "http://127.0.0.1:1")  # would fail if used
    want = write_dir(tmp_path / "fashion-mnist")
    ds = load("fashion-mnist")
    assert ds.label_names == FASHION and ds.label_names[9] == "Ankle boot"
    assert ds.test is not None and ds.test.label_names == FASHION
    np.testing.assert_array_equal(ds.y, want["y"])


def test_mnist_names_are_the_ten_digits(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("CANON_CACHE", str(tmp_path))
    root = tmp_path / "mnist"
    write_dir(root)
    write(root / "train-labels-idx1-ubyte.gz", np.zeros(20, np.uint8))  # only class 0 seen
    assert load("mnist").label_names == [str(d) for d in range(10)]


def test_other_idx_types_keep_their_values(tmp_path: Path) -> None:
    x = np.arange(2 * 3 * 4, dtype=np.int16).reshape(2, 3, 4) * 100 - 500
    p = write(tmp_path / "a.idx", x)
    got = read_idx(p, ndim=3, what="images")
    assert got.dtype == np.int16 and got.flags.writeable
    np.testing.assert_array_equal(got, x)
    write(tmp_path / "train-images-idx3-ubyte", x)
    write(tmp_path / "train-labels-idx1-ubyte", np.array([0, 1], np.uint8))
    ds = load(str(tmp_path))
    assert ds.x.shape == (2, 1, 3, 4) and ds.pixel_max == float(np.abs(x).max())


def corrupt(root: Path, name: str, data: bytes) -> None:
    (root / name).write_bytes(data)


IMG = "train-images-idx3-ubyte"
LBL = "train-labels-idx1-ubyte"


def _wrong_magic(root: Path) -> str:
    (root / f"{IMG}.gz").unlink()
    corrupt(root, IMG, idx_bytes(np.zeros(20, np.uint8)))  # a labels file in its place
    return "magic number 0x00000801 (expected 0x00000803 for images)"


def _truncated(root: Path) -> str:
    (root / f"{IMG}.gz").unlink()
    corrupt(root, IMG, idx_bytes(np.zeros((20, 28, 28), np.uint8))[:-100])
    return "truncated IDX file"


def _count_mismatch(root: Path) -> str:
    write(root / f"{LBL}.gz", np.zeros(19, np.uint8))
    return "19 labels but 20 images"


def _negative_label(root: Path) -> str:
    write(root / f"{LBL}.gz", np.full(20, -1, np.int8))
    return "label -1 at item 0 is out of range"


def _bad_gzip(root: Path) -> str:
    corrupt(root, f"{LBL}.gz", gzip.compress(b"\0\0\x08\x01" + b"\0" * 30)[:-9])
    return "cannot read"


def _not_idx(root: Path) -> str:
    (root / f"{LBL}.gz").unlink()
    corrupt(root, LBL, b"PK\x03\x04 a zip file")
    return "not an IDX labels file: magic number 0x504b0304"


@pytest.mark.parametrize(
    ("damage", "bad_file"),
    [
        (_wrong_magic, IMG),
        (_truncated, IMG),
        (_count_mismatch, f"{LBL}.gz"),
        (_negative_label, f"{LBL}.gz"),
        (_bad_gzip, f"{LBL}.gz"),
        (_not_idx, LBL),
    ],
)
def test_bad_files_name_the_file(tmp_path: Path, damage, bad_file: str) -> None:
    write_dir(tmp_path, test=False)
    fragment = damage(tmp_path)
    with pytest.raises(DataError) as err:
        load(str(tmp_path))
    msg = str(err.value)
    assert fragment in msg and f"'{tmp_path / bad_file}'" in msg and msg.startswith("data.source")


def test_test_split_label_out_of_known_range(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("CANON_CACHE", str(tmp_path))
    write_dir(tmp_path / "mnist")
    write(tmp_path / "mnist" / "t10k-labels-idx1-ubyte", np.array([1, 2, 10, 3, 4], np.uint8))
    with pytest.raises(DataError, match=r"label 10 at item 2 is out of range 0\.\.9"):
        load("mnist")


def test_missing_directory_says_which_files_to_put_where(tmp_path: Path) -> None:
    with pytest.raises(DataError) as err:
        load(str(tmp_path / "nope"))
    assert "put the files train-images-idx3-ubyte(.gz)" in str(err.value)
    assert str(tmp_path / "nope") in str(err.value)


def test_empty_directory_and_missing_labels(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="no IDX files found; put the files train-images"):
        load(str(tmp_path))
    write(tmp_path / "train-images-idx3-ubyte", np.zeros((2, 28, 28), np.uint8))
    with pytest.raises(DataError, match=r"train-labels-idx1-ubyte\(\.gz\) not found"):
        load(str(tmp_path))


def test_zero_images_are_refused(tmp_path: Path) -> None:
    write(tmp_path / "train-images-idx3-ubyte", np.zeros((0, 28, 28), np.uint8))
    write(tmp_path / "train-labels-idx1-ubyte", np.zeros(0, np.uint8))
    with pytest.raises(DataError, match="holds 0 images"):
        load(str(tmp_path))


def test_test_images_of_another_size_are_refused(tmp_path: Path) -> None:
    write_dir(tmp_path)
    write(tmp_path / "t10k-images-idx3-ubyte", np.zeros((5, 32, 32), np.uint8))
    with pytest.raises(DataError, match="test images are 32x32 but train images are 28x28"):
        load(str(tmp_path))
