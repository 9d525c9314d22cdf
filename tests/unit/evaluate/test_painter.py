"""The painting process draws the same bytes as this process, and never makes a run wait."""

from __future__ import annotations

import os
import time
from pathlib import Path

from canonml.evaluate import plots
from canonml.evaluate.painter import Painter
from tests.unit.evaluate.test_plots import HISTORY


def _pid(_: object) -> int:
    return os.getpid()


def test_a_warm_painter_draws_elsewhere_the_same_bytes(tmp_path: Path) -> None:
    painter = Painter()
    painter.start()
    try:
        deadline = time.monotonic() + 120
        while not painter.ready and time.monotonic() < deadline:
            time.sleep(0.05)
        assert painter.ready
        assert painter.submit(_pid, None).result() != os.getpid()
        there = painter.submit(plots.learning_rate, HISTORY, tmp_path / "there.png").result()
    finally:
        painter.close()
    here = plots.learning_rate(HISTORY, tmp_path / "here.png")
    assert there is not None and there.read_bytes() == here.read_bytes()


def test_a_cold_or_unstarted_painter_draws_here(tmp_path: Path) -> None:
    unstarted = Painter()
    assert unstarted.submit(_pid, None).result() == os.getpid()
    cold = Painter()
    cold.start()  # still importing matplotlib: the first call cannot wait for it
    try:
        assert not cold.ready
        assert cold.submit(_pid, None).result() == os.getpid()
    finally:
        started = time.monotonic()
        cold.close()
        assert time.monotonic() - started < 5  # closing does not wait for the imports
