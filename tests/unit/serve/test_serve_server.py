"""``run_server``'s options: sizes, ranges and a bad package fail with one line, before binding."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from canonml.errors import CanonError
from canonml.serve.server import parse_size, run_server


@pytest.mark.parametrize(
    "text,size",
    [("1048576", 2**20), ("16MiB", 16 * 2**20), ("16 mib", 16 * 2**20), ("500kB", 500_000)],
)
def test_sizes(text: str, size: int) -> None:
    assert parse_size(text) == size


@pytest.mark.parametrize("text", ["", "x", "0", "-1", "16 parsecs"])
def test_bad_sizes_name_the_option(text: str) -> None:
    with pytest.raises(CanonError, match="--max-body: not a size"):
        parse_size(text)


@pytest.mark.parametrize(
    "options,fragment",
    [
        ({"workers": 0}, "--workers: must be >= 1, got 0"),
        ({"max_batch": 0}, "--max-batch: must be >= 1"),
        ({"max_wait_ms": -1.0}, "--max-wait-ms: must be >= 0"),
        ({"threads": 0}, "--threads: must be >= 1"),
    ],
)
def test_bad_options_fail_before_loading(options: dict[str, object], fragment: str) -> None:
    with pytest.raises(CanonError, match=fragment):
        run_server(["does-not-matter"], port=0, **options)  # type: ignore[arg-type]


def test_a_busy_port_is_one_line() -> None:
    with socket.create_server(("127.0.0.1", 0)) as busy:
        port = busy.getsockname()[1]
        with pytest.raises(CanonError, match=f"cannot listen on 127.0.0.1:{port}"):
            run_server(["does-not-matter"], port=port)


def test_a_missing_package_names_the_path(tmp_path: Path) -> None:
    with pytest.raises(CanonError, match="no-such-package"):
        run_server([tmp_path / "no-such-package"], port=0)
