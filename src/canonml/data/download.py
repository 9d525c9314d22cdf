"""Fetch known public data sets into the cache: resumable, digest-checked, atomic.

``ensure(name)`` returns ``cache_dir()/name`` with every file of the data set present.
A mirror serves the same files under ``MIRROR/NAME/FILE``: set ``CANON_DATA_MIRROR``
(or pass ``base_url``, which holds the files directly).
"""

from __future__ import annotations

import hashlib
import http.client
import logging
import os
import shutil
import tarfile
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from canonml.errors import DataError

log = logging.getLogger(__name__)

CHUNK = 1 << 20
TIMEOUT_S = 30.0  # seconds without a byte before a download counts as failed


@dataclass(frozen=True)
class Remote:
    """Where a data set lives and the digest (``algo:hex``) of each file."""

    url: str
    files: dict[str, str]
    # Archives are unpacked into the data set's directory; these paths prove it was done.
    provides: tuple[str, ...] = ()


_IDX_FILES = (
    "train-images-idx3-ubyte.gz",
    "train-labels-idx1-ubyte.gz",
    "t10k-images-idx3-ubyte.gz",
    "t10k-labels-idx1-ubyte.gz",
)
_MNIST_SHA = (
    "440fcabf73cc546fa21475e81ea370265605f56be210a4024d2ca8f203523609",
    "3552534a0a558bbed6aed32b30c495cca23d567ec52cac8be1a0730e8010255c",
    "8d422c7b0a1c1c79245a5bcf07fe86e33eeafee792b84584aec276f5a2dbc4e6",
    "f7ae60f92e00ec6debd23a6088c31dbd2371eca3ffa0defaefb259924204aec6",
)
_FASHION_SHA = (
    "3aede38d61863908ad78613f6a32ed271626dd12800ba2636569512369268a84",
    "a04f17134ac03560a47e3764e11b92fc97de4d1bfaf8ba1a3aa29af54cc90845",
    "346e55b948d973a97e58d2351dde16a484bd415d4595297633bb08f03db6a073",
    "67da17c76eaffca5446c3361aaab5c3cd6d1c2608764d35dfb1850b086bf8dd5",
)
_CIFAR_BIN = [f"data_batch_{i}.bin" for i in range(1, 6)] + ["test_batch.bin", "batches.meta.txt"]

# sha256 of the official files, as several independent public manifests list them next to
# the publishers' md5 (MNIST f68b3c2d…, d53e105e…, 9fb629c4…, ec29112d…; Fashion-MNIST
# 8d4fb7e6…, 25c81989…, bef4ecab…, bb300cfd…; CIFAR-10 binary c32a1d4a…). ``md5:hex`` also works.
KNOWN: dict[str, Remote] = {
    "mnist": Remote(
        "https://ossci-datasets.s3.amazonaws.com/mnist/",
        {f: f"sha256:{h}" for f, h in zip(_IDX_FILES, _MNIST_SHA, strict=True)},
    ),
    "fashion-mnist": Remote(
        "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",
        {f: f"sha256:{h}" for f, h in zip(_IDX_FILES, _FASHION_SHA, strict=True)},
    ),
    "cifar10": Remote(
        "https://www.cs.toronto.edu/~kriz/",
        {
            "cifar-10-binary.tar.gz": "sha256:"
            "c4a38c50a1bc5f3a1c5537f2155ab9d68f9f25eb1ed8d9ddda3db29a59bca1dd"
        },
        provides=tuple(f"cifar-10-batches-bin/{f}" for f in _CIFAR_BIN),
    ),
}


def cache_dir() -> Path:
    """``$CANON_CACHE``, else ``~/.cache/canonml``."""
    return Path(os.environ.get("CANON_CACHE") or Path.home() / ".cache" / "canonml")


def file_digest(path: Path, algo: str) -> str:
    """Hex digest of a file, read in chunks."""
    h = hashlib.new(algo, usedforsecurity=False)
    with path.open("rb") as f:
        while chunk := f.read(CHUNK):
            h.update(chunk)
    return h.hexdigest()


def verified(path: Path, digest: str) -> bool:
    """Whether ``path`` exists and matches ``digest`` (``sha256:hex`` or ``md5:hex``)."""
    algo, _, expected = digest.partition(":")
    return path.is_file() and file_digest(path, algo) == expected.lower()


def fetch(
    url: str,
    dest: Path,
    digest: str,
    *,
    timeout: float | None = None,
    name: str | None = None,
    fix: str | None = None,
) -> Path:
    """Download ``url`` to ``dest`` via ``dest.part`` (resumed if present), check, rename.

    Raises:
        DataError: the network failed (the ``.part`` is kept to resume) or the digest differs
            (the ``.part`` is deleted). ``name`` and ``fix`` go into the offline message.
    """
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = dest.with_name(dest.name + ".part")
    try:
        _download(url, part, timeout or TIMEOUT_S)
    except (urllib.error.URLError, OSError, http.client.HTTPException) as err:
        what = f"{name} from {url}" if name else url
        fix = fix or f"put {dest.name} in {dest.parent}"
        if isinstance(err, urllib.error.HTTPError):  # reached the server, which refused
            problem = f"cannot download {what} (HTTP {err.code} {err.reason})"
        else:
            problem = f"offline: cannot download {what} ({getattr(err, 'reason', None) or err})"
        raise DataError(f"{problem}; {fix}", file=str(dest)) from None
    algo, _, expected = digest.partition(":")
    actual = file_digest(part, algo)
    if actual != expected.lower():
        part.unlink()
        raise DataError(
            f"download from {url} is corrupt: {algo} {actual}, expected {expected} "
            "(deleted; run again, or check the mirror)",
            file=str(dest),
        )
    os.replace(part, dest)
    return dest


def _download(url: str, part: Path, timeout: float) -> None:
    """Append the rest of ``url`` to ``part``, asking for a byte range when resuming."""
    offset = part.stat().st_size if part.exists() else 0
    headers = {"Range": f"bytes={offset}-"} if offset else {}
    request = urllib.request.Request(url, headers=headers)
    try:
        response = urllib.request.urlopen(request, timeout=timeout)
    except urllib.error.HTTPError as err:
        err.close()
        if err.code == 416 and offset:  # the part is already whole; the digest decides
            return
        raise
    with response:
        if offset and response.status != 206:  # the server ignored Range: start over
            offset = 0
        log.info("downloading %s (from byte %d)", url, offset)
        length = response.headers.get("Content-Length", "")
        expected = int(length) if length.isdigit() else -1
        got = 0
        with part.open("ab" if offset else "wb") as f:
            while chunk := response.read(CHUNK):
                got += f.write(chunk)
    # http.client returns a short body without an error when the connection drops.
    if got < expected:
        raise ConnectionError(f"connection dropped after {got} of {expected} bytes; run again")


def ensure(name: str, base_url: str | None = None, *, timeout: float | None = None) -> Path:
    """Return ``cache_dir()/name`` holding the data set ``name``, downloading what is missing."""
    if name not in KNOWN:
        raise DataError(f"no download known for '{name}'; known: {', '.join(sorted(KNOWN))}")
    remote, root = KNOWN[name], cache_dir() / name
    if remote.provides and all((root / p).is_file() for p in remote.provides):
        return root
    mirror = os.environ.get("CANON_DATA_MIRROR")
    base = base_url or (f"{mirror.rstrip('/')}/{name}/" if mirror else remote.url)
    fix = f"put the files {', '.join(remote.files)} in {root}"
    for file, digest in remote.files.items():
        dest = root / file
        if not verified(dest, digest):
            url = base.rstrip("/") + "/" + file
            fetch(url, dest, digest, timeout=timeout, name=name, fix=fix)
        if remote.provides:
            extract(dest, root)
            dest.unlink()
    return root


def extract(archive: Path, root: Path) -> None:
    """Unpack a tar archive into ``root``, refusing members that would land outside it."""
    tmp = root / ".extracting"
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        with tarfile.open(archive) as tar:
            for member in tar:
                _extract_member(tar, member, tmp, archive)
    except (tarfile.TarError, EOFError, OSError) as err:
        shutil.rmtree(tmp, ignore_errors=True)
        raise DataError(
            f"cannot unpack archive ({err}); delete it and run again", file=str(archive)
        ) from None
    except DataError:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    for entry in tmp.iterdir():  # move each top-level entry into place
        target = root / entry.name
        if target.is_dir():
            shutil.rmtree(target)
        os.replace(entry, target)
    tmp.rmdir()


def _extract_member(
    tar: tarfile.TarFile, member: tarfile.TarInfo, tmp: Path, archive: Path
) -> None:
    """Write one regular file or directory of ``tar`` under ``tmp``; links are refused."""
    rel = PurePosixPath(member.name)
    if rel.is_absolute() or ".." in rel.parts or not (member.isfile() or member.isdir()):
        raise DataError(
            f"unsafe archive member '{member.name}' (absolute path, '..' or a "
            "link); refusing to unpack: get the archive from the official source",
            file=str(archive),
        )
    target = tmp.joinpath(*rel.parts)
    if member.isdir():
        target.mkdir(parents=True, exist_ok=True)
        return
    target.parent.mkdir(parents=True, exist_ok=True)
    source = tar.extractfile(member)
    assert source is not None  # regular files always have a stream
    with source, target.open("wb") as out:
        shutil.copyfileobj(source, out, CHUNK)
