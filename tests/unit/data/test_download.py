"""The downloader against a real HTTP server on 127.0.0.1 that honours Range requests."""

from __future__ import annotations

import dataclasses
import gzip
import hashlib
import io
import re
import tarfile
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pytest

from canonml.data import download
from canonml.data.sources import load_source
from canonml.errors import DataError
from canonml.spec.data import DataSpec


def idx_bytes(arr: np.ndarray) -> bytes:
    """A uint8 array as an IDX file."""
    head = bytes([0, 0, 0x08, arr.ndim]) + b"".join(d.to_bytes(4, "big") for d in arr.shape)
    return head + arr.astype(np.uint8).tobytes()


def fake_split(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, (n, 28, 28), np.uint8), rng.integers(0, 10, n, np.uint8)


def batch(n: int, seed: int) -> tuple[bytes, np.ndarray]:
    """A CIFAR-10 binary batch of ``n`` records and its (N, 3, 32, 32) images."""
    rng = np.random.default_rng(seed)
    x = rng.integers(0, 256, (n, 3, 32, 32), np.uint8)
    y = rng.integers(0, 10, (n, 1), np.uint8)
    return np.concatenate([y, x.reshape(n, -1)], axis=1).tobytes(), x


class Server:
    """Serves ``files`` (URL path → bytes); records each request's path and Range header."""

    def __init__(self) -> None:
        self.files: dict[str, bytes] = {}
        self.requests: list[tuple[str, str | None]] = []
        self.honour_range = True
        self.cut_at: int | None = None
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(
            target=self.httpd.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        )

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 (http.server's name)
                rng = self.headers.get("Range")
                server.requests.append((self.path, rng))
                body = server.files.get(self.path)
                if body is None:
                    self.send_error(404)
                    return
                match = re.fullmatch(r"bytes=(\d+)-", rng or "")
                start = int(match[1]) if match and server.honour_range else 0
                if start >= len(body) and start:
                    self.send_error(416)
                    return
                self.send_response(206 if start else 200)
                if start:
                    self.send_header("Content-Range", f"bytes {start}-{len(body) - 1}/{len(body)}")
                self.send_header("Content-Length", str(len(body) - start))
                self.end_headers()
                self.wfile.write(body[start : server.cut_at])  # cut_at: a dropped connection

            def log_message(self, *args: object) -> None:
                pass

        return Handler


@pytest.fixture
def server() -> Iterator[Server]:
    srv = Server()
    srv.thread.start()
    yield srv
    srv.httpd.shutdown()
    srv.httpd.server_close()
    srv.thread.join(5)


@pytest.fixture(autouse=True)
def _cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CANON_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("CANON_DATA_MIRROR", raising=False)
    monkeypatch.setattr(download, "TIMEOUT_S", 5.0)


def sha(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


BODY = bytes(range(256)) * 40


def test_fetch_downloads_and_verifies(server: Server, tmp_path: Path) -> None:
    server.files["/f.bin"] = BODY
    dest = tmp_path / "out" / "f.bin"
    assert download.fetch(f"{server.url}/f.bin", dest, sha(BODY)) == dest
    assert dest.read_bytes() == BODY and not dest.with_name("f.bin.part").exists()
    assert server.requests == [("/f.bin", None)]


def test_fetch_accepts_md5(server: Server, tmp_path: Path) -> None:
    server.files["/f.bin"] = BODY
    md5 = "md5:" + hashlib.md5(BODY).hexdigest()
    assert download.fetch(f"{server.url}/f.bin", tmp_path / "f", md5).read_bytes() == BODY


@pytest.mark.parametrize("honour", [True, False], ids=["range", "server-ignores-range"])
def test_fetch_resumes_a_partial_download(server: Server, tmp_path: Path, honour: bool) -> None:
    server.files["/f.bin"] = BODY
    server.honour_range = honour
    dest = tmp_path / "f.bin"
    dest.with_name("f.bin.part").write_bytes(BODY[:1000])
    download.fetch(f"{server.url}/f.bin", dest, sha(BODY))
    assert server.requests == [("/f.bin", "bytes=1000-")]
    assert dest.read_bytes() == BODY and not dest.with_name("f.bin.part").exists()


def test_dropped_connection_keeps_the_part_to_resume(server: Server, tmp_path: Path) -> None:
    server.files["/f.bin"] = BODY
    server.cut_at = 3000
    dest = tmp_path / "f.bin"
    with pytest.raises(DataError, match="offline: cannot download .*/f.bin"):
        download.fetch(f"{server.url}/f.bin", dest, sha(BODY))
    assert dest.with_name("f.bin.part").read_bytes() == BODY[:3000] and not dest.exists()
    server.cut_at = None
    download.fetch(f"{server.url}/f.bin", dest, sha(BODY))
    assert server.requests[-1] == ("/f.bin", "bytes=3000-") and dest.read_bytes() == BODY


def test_fetch_of_an_already_whole_part(server: Server, tmp_path: Path) -> None:
    server.files["/f.bin"] = BODY
    dest = tmp_path / "f.bin"
    dest.with_name("f.bin.part").write_bytes(BODY)
    download.fetch(f"{server.url}/f.bin", dest, sha(BODY))  # the server answers 416
    assert dest.read_bytes() == BODY


def test_digest_mismatch_leaves_no_file(server: Server, tmp_path: Path) -> None:
    server.files["/f.bin"] = BODY
    dest = tmp_path / "f.bin"
    with pytest.raises(DataError, match="is corrupt: sha256 .* expected 00") as err:
        download.fetch(f"{server.url}/f.bin", dest, "sha256:" + "00" * 32)
    assert f"'{dest}'" in str(err.value)
    assert list(tmp_path.iterdir()) == []


def test_http_error_is_reported(server: Server, tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"cannot download .*/nope \(HTTP 404 Not Found\)"):
        download.fetch(f"{server.url}/nope", tmp_path / "x", sha(b""))


def test_unreachable_server_says_offline_and_where_to_put_files(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CANON_DATA_MIRROR", "http://127.0.0.1:1")
    with pytest.raises(DataError) as err:
        download.ensure("mnist", timeout=2)
    msg, root = str(err.value), tmp_path / "cache" / "mnist"
    assert "offline: cannot download mnist from http://127.0.0.1:1/mnist/train-images" in msg
    assert "put the files train-images-idx3-ubyte.gz, train-labels-idx1-ubyte.gz" in msg
    assert msg.endswith(f"in {root}")


def test_unknown_name() -> None:
    with pytest.raises(DataError, match="no download known for 'svhn'; known: cifar10"):
        download.ensure("svhn")


def test_cache_dir_defaults_to_home(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("CANON_CACHE")
    monkeypatch.setenv("HOME", str(tmp_path))
    assert download.cache_dir() == tmp_path / ".cache" / "canonml"


@pytest.fixture
def fake_mnist(server: Server, monkeypatch: pytest.MonkeyPatch) -> dict[str, np.ndarray]:
    """Serve small gzipped IDX files as the ``mnist`` data set of a mirror."""
    x, y = fake_split(12, seed=4)
    xt, yt = fake_split(3, seed=5)
    arrays = dict(zip(download._IDX_FILES, [x, y, xt, yt], strict=True))
    blobs = {name: gzip.compress(idx_bytes(a)) for name, a in arrays.items()}
    server.files |= {f"/mnist/{name}": b for name, b in blobs.items()}
    remote = dataclasses.replace(
        download.KNOWN["mnist"], files={n: sha(b) for n, b in blobs.items()}
    )
    monkeypatch.setitem(download.KNOWN, "mnist", remote)
    monkeypatch.setenv("CANON_DATA_MIRROR", server.url + "/")
    return {"x": x, "y": y, "yt": yt}


def test_idx_mnist_downloads_once_from_the_mirror(server: Server, fake_mnist) -> None:
    ds = load_source(DataSpec(source="idx:mnist"))
    np.testing.assert_array_equal(ds.x[:, 0], fake_mnist["x"])
    assert ds.test is not None and ds.test.y.tolist() == fake_mnist["yt"].tolist()
    assert len(server.requests) == 4
    load_source(DataSpec(source="idx:mnist"))
    assert len(server.requests) == 4  # cached


def test_ensure_replaces_a_corrupt_cached_file(server: Server, fake_mnist, tmp_path) -> None:
    root = download.ensure("mnist")
    (root / "train-labels-idx1-ubyte.gz").write_bytes(b"garbage")
    server.requests.clear()
    download.ensure("mnist")
    assert [p for p, _ in server.requests] == ["/mnist/train-labels-idx1-ubyte.gz"]
    ds = load_source(DataSpec(source="idx:mnist"))
    np.testing.assert_array_equal(ds.y, fake_mnist["y"])


def cifar_archive(members: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def test_cifar10_archive_is_fetched_and_unpacked(
    server: Server, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    members = {}
    for i in range(1, 6):
        members[f"cifar-10-batches-bin/data_batch_{i}.bin"] = batch(2, seed=i)[0]
    members["cifar-10-batches-bin/test_batch.bin"] = batch(1, seed=9)[0]
    members["cifar-10-batches-bin/batches.meta.txt"] = b"\n".join(b"c%d" % i for i in range(10))
    blob = cifar_archive(members)
    server.files["/cifar10/cifar-10-binary.tar.gz"] = blob
    remote = dataclasses.replace(
        download.KNOWN["cifar10"], files={"cifar-10-binary.tar.gz": sha(blob)}
    )
    monkeypatch.setitem(download.KNOWN, "cifar10", remote)
    monkeypatch.setenv("CANON_DATA_MIRROR", server.url)
    ds = load_source(DataSpec(source="cifar10:cifar10"))
    assert ds.x.shape == (10, 3, 32, 32) and ds.label_names[3] == "c3"
    assert ds.test is not None and len(ds.test) == 1
    np.testing.assert_array_equal(ds.x[:2], batch(2, seed=1)[1])
    root = tmp_path / "cache" / "cifar10"
    assert sorted(p.name for p in root.iterdir()) == ["cifar-10-batches-bin"]  # archive deleted
    load_source(DataSpec(source="cifar10:cifar10"))
    assert len(server.requests) == 1


@pytest.mark.parametrize("name", ["../evil.txt", "/tmp/evil.txt", "a/../../evil.txt"])
def test_unsafe_archive_members_are_refused(tmp_path: Path, name: str) -> None:
    archive = tmp_path / "a.tar.gz"
    archive.write_bytes(cifar_archive({"ok.txt": b"fine", name: b"evil"}))
    root = tmp_path / "root"
    root.mkdir()
    with pytest.raises(DataError, match="unsafe archive member") as err:
        download.extract(archive, root)
    assert f"'{archive}'" in str(err.value)
    assert list(root.iterdir()) == [] and not (tmp_path / "evil.txt").exists()


def test_symlink_members_are_refused(tmp_path: Path) -> None:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        link = tarfile.TarInfo("link")
        link.type, link.linkname = tarfile.SYMTYPE, "/etc/passwd"
        tar.addfile(link)
    (tmp_path / "a.tar").write_bytes(buf.getvalue())
    with pytest.raises(DataError, match="unsafe archive member 'link'"):
        download.extract(tmp_path / "a.tar", tmp_path / "root")
