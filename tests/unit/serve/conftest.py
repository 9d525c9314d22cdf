"""Fixture packages (tabular, image, regression) and a live server over them."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.unit.serve.live import running
from tests.unit.serve.packages import FixturePackage, make_package


@pytest.fixture(scope="session")
def packages(tmp_path_factory: pytest.TempPathFactory) -> list[FixturePackage]:
    root = tmp_path_factory.mktemp("packages")
    return [
        make_package(root, "tab", features=4, classes=3),
        make_package(root, "img", kind="image", classes=10, seed=1),
        make_package(root, "reg", features=5, regression=True, seed=2),
        make_package(root, "pair", features=2, classes=2, seed=3, inputs=("a", "b")),
    ]


@pytest.fixture(scope="module")
def client(packages: list[FixturePackage]) -> Iterator[httpx.Client]:
    """A client of a server over the fixture packages (no token, default batching)."""
    from canonml.serve import create_app

    with running(create_app(packages, max_body=64 * 1024)) as url:
        with httpx.Client(base_url=url, timeout=10) as c:
            yield c


def package_dir(packages: list[FixturePackage], name: str) -> Path:
    return next(p.path for p in packages if p.name == name)
