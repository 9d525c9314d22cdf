"""``cifar10:DIR`` — the CIFAR-10 binary version; ``cifar10:cifar10`` downloads it.

DIR (or its ``cifar-10-batches-bin/`` sub-folder) holds ``data_batch_1.bin`` ..
``data_batch_5.bin`` (any non-empty subset), optionally ``test_batch.bin`` (the official
test split) and ``batches.meta.txt`` (class names). The pickled "python version" is never read.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from canonml.data import download
from canonml.data.dataset import Dataset
from canonml.data.sources import SOURCES
from canonml.errors import DataError
from canonml.spec.data import DataSpec

RECORD = 1 + 3 * 32 * 32  # one label byte, then 1024 red, 1024 green and 1024 blue bytes
NAMES = ["airplane", "automobile", "bird", "cat", "deer"]
NAMES += ["dog", "frog", "horse", "ship", "truck"]
SUBDIR = "cifar-10-batches-bin"
WANTED = (
    "data_batch_1.bin .. data_batch_5.bin, test_batch.bin and batches.meta.txt "
    "(from https://www.cs.toronto.edu/~kriz/cifar-10-binary.tar.gz)"
)


@SOURCES.register("cifar10")
def load_cifar10(arg: str, spec: DataSpec) -> Dataset:
    """Load the train batches, with ``test_batch.bin`` as the official test split."""
    root = download.cache_dir() / arg if arg == "cifar10" else Path(arg)
    if arg == "cifar10" and not _batches(_folder(root)):
        root = download.ensure(arg)
    if not root.is_dir():
        raise DataError(f"directory not found; put the files {WANTED} in {root}", file=str(root))
    folder = _folder(root)
    batches = _batches(folder)
    if not batches:
        raise DataError(f"no CIFAR-10 batches; {_fix(folder)}", file=str(folder))
    parts = [read_batch(p) for p in batches]
    x = np.concatenate([p[0] for p in parts])
    y = np.concatenate([p[1] for p in parts])
    names = _label_names(folder / "batches.meta.txt")
    test_file = folder / "test_batch.bin"
    test = _dataset(*read_batch(test_file), names) if test_file.is_file() else None
    return _dataset(x, y, names, test=test)


def read_batch(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """Images ``(N, 3, 32, 32)`` float32 and labels ``(N,)`` int64 of one binary batch."""
    try:
        data = path.read_bytes()
    except OSError as err:
        raise DataError(f"cannot read ({err.strerror})", file=str(path)) from None
    if len(data) % RECORD or not data:
        raise DataError(
            f"truncated CIFAR batch: {len(data)} bytes is not a multiple of {RECORD} "
            "(1 label byte + 3072 pixel bytes); download the file again",
            file=str(path),
        )
    records = np.frombuffer(data, dtype=np.uint8).reshape(-1, RECORD)
    y = records[:, 0].astype(np.int64)
    bad = np.flatnonzero(y > 9)
    if bad.size:
        raise DataError(
            f"label {int(y[bad[0]])} in record {int(bad[0])} is not a CIFAR-10 class 0..9 "
            "(a CIFAR-100 file?)",
            file=str(path),
        )
    # (N, 3072) channel-major bytes → (N, C, H, W)
    return records[:, 1:].reshape(-1, 3, 32, 32).astype(np.float32), y


def _dataset(
    x: np.ndarray, y: np.ndarray, names: list[str], test: Dataset | None = None
) -> Dataset:
    return Dataset(
        x=x,
        y=y,
        kind="image",
        feature_names=[f"pixel_{i}" for i in range(3 * 32 * 32)],
        label_names=names,
        test=test,
        pixel_max=255.0,
    )


def _label_names(meta: Path) -> list[str]:
    """The ten class names in ``batches.meta.txt``, else the standard ones."""
    if not meta.is_file():
        return list(NAMES)
    try:
        names = [line.strip() for line in meta.read_text(encoding="utf-8").splitlines()]
    except (OSError, UnicodeDecodeError) as err:
        raise DataError(f"cannot read class names ({err})", file=str(meta)) from None
    names = [n for n in names if n]
    if len(names) != 10:
        raise DataError(
            f"expected 10 class names, one a line, got {len(names)}; fix or delete the file",
            file=str(meta),
        )
    return names


def _folder(root: Path) -> Path:
    """``root/cifar-10-batches-bin`` when the archive was unpacked there, else ``root``."""
    return root / SUBDIR if (root / SUBDIR).is_dir() else root


def _batches(folder: Path) -> list[Path]:
    """The ``data_batch_*.bin`` files, data_batch_2 before data_batch_10."""
    return sorted(folder.glob("data_batch_*.bin"), key=_batch_number)


def _batch_number(path: Path) -> tuple[int, str]:
    """Sort key: data_batch_2 before data_batch_10."""
    m = re.search(r"(\d+)\.bin$", path.name)
    return (int(m.group(1)) if m else 0, path.name)


def _fix(folder: Path) -> str:
    """What to do when no binary batch is found (and whether it is the pickled version)."""
    if (folder / "data_batch_1").is_file() or (folder / "cifar-10-batches-py").is_dir():
        return (
            "this is the Python (pickle) version, which canonml does not read; "
            f"put the binary version's files {WANTED} in {folder}"
        )
    return f"put the files {WANTED} in {folder}"
