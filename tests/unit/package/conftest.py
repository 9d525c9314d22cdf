"""Fixtures: hand-made package directories (see fakes.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.unit.package.fakes import IMAGE_STATE, TABULAR_STATE, signature, write_fake_package


@pytest.fixture
def tabular_package(tmp_path: Path) -> Path:
    return write_fake_package(tmp_path / "tab", signature(TABULAR_STATE, ["no", "yes"]))


@pytest.fixture
def image_package(tmp_path: Path) -> Path:
    return write_fake_package(tmp_path / "img", signature(IMAGE_STATE, ["a", "b", "c"]))
