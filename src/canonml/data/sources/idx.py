"""``idx:DIR`` — MNIST-style IDX files; ``idx:mnist`` / ``idx:fashion-mnist`` download them.

DIR holds ``train-images-idx3-ubyte`` and ``train-labels-idx1-ubyte`` (raw or ``.gz``) and,
optionally, the ``t10k-*`` pair, which becomes the official test split. A known name reads
the cache directory instead (write ``./mnist`` for a local folder of that name).
"""

from __future__ import annotations

import gzip
import struct
import zlib
from pathlib import Path

import numpy as np

from canonml.data import download
from canonml.data.dataset import Dataset
from canonml.data.sources import SOURCES
from canonml.errors import DataError
from canonml.spec.data import DataSpec

# IDX type code (third magic byte) → big-endian numpy dtype.
IDX_DTYPES = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}
FASHION = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat"]
FASHION += ["Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"]
KNOWN_LABELS = {"mnist": [str(d) for d in range(10)], "fashion-mnist": FASHION}
WANTED = (
    "train-images-idx3-ubyte(.gz), train-labels-idx1-ubyte(.gz) "
    "and optionally t10k-images-idx3-ubyte(.gz), t10k-labels-idx1-ubyte(.gz)"
)


@SOURCES.register("idx")
def load_idx(arg: str, spec: DataSpec) -> Dataset:
    """Load the train split (and the ``t10k`` test split when present) of an IDX directory."""
    root = Path(arg)
    if arg in KNOWN_LABELS:
        root = download.cache_dir() / arg
        parts = [(p, k) for p in ("train", "t10k") for k in ("images", "labels")]
        if not all(_find(root, p, k) for p, k in parts):
            root = download.ensure(arg)
    if not root.is_dir():
        raise DataError(f"directory not found; put the files {WANTED} in {root}", file=str(root))
    train, test = _read_split(root, "train"), _read_split(root, "t10k")
    if train is None:
        raise DataError(f"no IDX files found; put the files {WANTED} in {root}", file=str(root))
    x, y = train
    if test is not None and test[0].shape[1:] != x.shape[1:]:
        raise DataError(
            f"test images are {_hw(test[0])} but train images are {_hw(x)}; "
            "use files from one data set",
            file=str(_find(root, "t10k", "images")),
        )
    names = list(KNOWN_LABELS.get(arg, [])) or _label_names(y, None if test is None else test[1])
    _check_labels(root, "train", y, len(names))
    pixel_max = 255.0 if x.dtype == np.uint8 else float(np.abs(x).max() or 1.0)
    test_ds = None
    if test is not None:
        _check_labels(root, "t10k", test[1], len(names))
        test_ds = _dataset(*test, names, pixel_max)
    return _dataset(x, y, names, pixel_max, test=test_ds)


def _dataset(
    x: np.ndarray, y: np.ndarray, names: list[str], pixel_max: float, test: Dataset | None = None
) -> Dataset:
    """Images ``(N, H, W)`` and labels as a ``Dataset`` of ``(N, 1, H, W)`` float32."""
    n, h, w = x.shape
    return Dataset(
        x=x.reshape(n, 1, h, w).astype(np.float32),
        y=y.astype(np.int64),
        kind="image",
        feature_names=[f"pixel_{i}" for i in range(h * w)],
        label_names=names,
        test=test,
        pixel_max=pixel_max,
    )


def _find(root: Path, prefix: str, kind: str) -> Path | None:
    """The file for ``prefix`` (train/t10k) and ``kind`` (images/labels), raw or gzipped."""
    ndim = 3 if kind == "images" else 1
    for stem in (f"{prefix}-{kind}-idx{ndim}-ubyte", f"{prefix}-{kind}.idx{ndim}-ubyte"):
        for name in (stem, stem + ".gz"):
            if (root / name).is_file():
                return root / name
    return None


def _read_split(root: Path, prefix: str) -> tuple[np.ndarray, np.ndarray] | None:
    """Images ``(N, H, W)`` and labels ``(N,)`` of one split; None when both files are absent."""
    images, labels = _find(root, prefix, "images"), _find(root, prefix, "labels")
    if images is None and labels is None:
        return None
    if images is None or labels is None:
        missing = f"{prefix}-{'images-idx3' if images is None else 'labels-idx1'}-ubyte"
        raise DataError(
            f"{missing}(.gz) not found; put the files {WANTED} in {root}", file=str(root)
        )
    x = read_idx(images, ndim=3, what="images")
    y = read_idx(labels, ndim=1, what="labels")
    if len(x) == 0:
        raise DataError("the file holds 0 images; download it again", file=str(images))
    if len(x) != len(y):
        raise DataError(
            f"{len(y)} labels but {len(x)} images in {images.name}; "
            "use the labels file that belongs to the images file",
            file=str(labels),
        )
    if y.dtype.kind not in "iu":
        raise DataError(f"labels must be integers, got IDX type {y.dtype}", file=str(labels))
    return x, y


def read_idx(path: Path, ndim: int, what: str) -> np.ndarray:
    """Parse one IDX file (raw or gzipped) holding an ``ndim``-dimensional array."""
    data = _read_bytes(path)
    expected = f"expected 0x{0x800 + ndim:08x} for {what}"
    magic = int.from_bytes(data[:4].ljust(4, b"\0"), "big")
    if len(data) < 4 or data[:2] != b"\0\0" or data[2] not in IDX_DTYPES or data[3] != ndim:
        raise DataError(
            f"not an IDX {what} file: magic number 0x{magic:08x} ({expected})", file=str(path)
        )
    header = 4 + 4 * ndim
    if len(data) < header:
        raise DataError(
            f"truncated IDX header: {len(data)} bytes; download the file again", file=str(path)
        )
    dims = struct.unpack(f">{ndim}I", data[4:header])
    dtype = np.dtype(IDX_DTYPES[data[2]])
    need = int(np.prod(dims)) * dtype.itemsize
    if len(data) - header != need:
        short = "truncated IDX file" if len(data) - header < need else "corrupt IDX file"
        raise DataError(
            f"{short}: the header says {'x'.join(map(str, dims))} ({need} bytes of data) but "
            f"{len(data) - header} bytes follow; download the file again",
            file=str(path),
        )
    arr = np.frombuffer(data, dtype=dtype, offset=header).reshape(dims)
    return arr.astype(dtype.newbyteorder("="))  # native order, and a writable copy


def _read_bytes(path: Path) -> bytes:
    """The file's bytes, gunzipped when it ends in ``.gz``."""
    try:
        if path.suffix == ".gz":
            with gzip.open(path, "rb") as f:
                return f.read()
        return path.read_bytes()
    except (OSError, EOFError, zlib.error) as err:
        raise DataError(f"cannot read ({err}); download the file again", file=str(path)) from None


def _label_names(y: np.ndarray, y_test: np.ndarray | None) -> list[str]:
    """``"0".."max"`` over the labels of both splits."""
    top = max(int(y.max(initial=0)), int(y_test.max(initial=0)) if y_test is not None else 0)
    return [str(i) for i in range(top + 1)]


def _check_labels(root: Path, prefix: str, y: np.ndarray, n_classes: int) -> None:
    """Labels must be class indices ``0..n_classes-1``."""
    bad = np.flatnonzero((y < 0) | (y >= n_classes))
    if bad.size:
        raise DataError(
            f"label {int(y[bad[0]])} at item {int(bad[0])} is out of range 0..{n_classes - 1}",
            file=str(_find(root, prefix, "labels")),
        )


def _hw(x: np.ndarray) -> str:
    return "x".join(map(str, x.shape[1:]))
