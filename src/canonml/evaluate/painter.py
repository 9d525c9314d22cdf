"""``Painter``: a run's plots drawn in a second process, on the core the run leaves free.

Drawing needs matplotlib (about 0.3 s to import) and half a second of drawing; the run's own
process needs neither while it trains. ``Painter.start`` spawns one process once the data
is loaded (the tracking worker has finished importing MLflow by then, so the two do not
compete for the second core); it imports matplotlib, at low priority, while the model
trains, and then draws what it is given. If it is not ready when the plots are due, or
cannot start at all, the plots are drawn in this process as before: never later than that.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
from collections.abc import Callable
from concurrent.futures import Future, ProcessPoolExecutor
from typing import Any, TypeVar

T = TypeVar("T")


def _warm() -> None:
    """Runs in the painting process: be polite to the run, and import what drawing needs."""
    with contextlib.suppress(OSError, AttributeError):
        os.nice(5)
    from matplotlib.backends import backend_agg  # noqa: F401

    from canonml.evaluate import plots  # noqa: F401


class Painter:
    """Draws ``canonml.evaluate.plots`` functions in a spawned process once it is warm."""

    def __init__(self) -> None:
        self._pool: ProcessPoolExecutor | None = None
        self._warm: Future[None] | None = None

    def start(self) -> None:
        """Spawn the painting process (returns at once)."""
        try:
            # spawn, not fork: this process holds torch's thread pools, which fork breaks.
            context = multiprocessing.get_context("spawn")
            self._pool = ProcessPoolExecutor(max_workers=1, mp_context=context)
            self._warm = self._pool.submit(_warm)
        except (OSError, RuntimeError, ValueError):
            self.close()

    @property
    def ready(self) -> bool:
        """Whether the painting process is up, with its imports done."""
        return self._warm is not None and self._warm.done() and self._warm.exception() is None

    def submit(self, fn: Callable[..., T], *args: Any) -> Future[T]:
        """``fn(*args)`` in the painting process if it is ready, else here and now."""
        if self._pool is not None and self.ready:
            with contextlib.suppress(RuntimeError):  # the process is gone: draw here
                return self._pool.submit(fn, *args)
        return now(fn, *args)

    def close(self) -> None:
        """Stop the painting process: at once if it is still importing (it exits when done),
        else once what it draws is drawn (the callers have waited for that already)."""
        pool, self._pool = self._pool, None
        if pool is not None:
            pool.shutdown(wait=self.ready, cancel_futures=True)


def now(fn: Callable[..., T], *args: Any) -> Future[T]:
    """``fn(*args)`` called here, as a finished future."""
    done: Future[T] = Future()
    done.set_result(fn(*args))
    return done
