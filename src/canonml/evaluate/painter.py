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
import signal
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from typing import Any, TypeVar

T = TypeVar("T")
# One: a second one measured slower (bench/run_phases.py), its start-up costs more than it
# draws in parallel.
PROCESSES = 1


def _init(parent: int) -> None:
    """Runs first in the painting process: be polite to the run, and end with it.

    A run killed outright (``kill -9``) cannot stop its helpers, and this one would wait
    forever for work, so a thread watches the parent and ends the process when it is gone.
    """
    with contextlib.suppress(OSError, AttributeError):
        os.nice(5)

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(0.5)
        os._exit(0)

    threading.Thread(target=watch, name="canon-painter-watch", daemon=True).start()
    # What drawing needs, imported while the run trains.
    from matplotlib.backends import backend_agg  # noqa: F401

    from canonml.evaluate import plots  # noqa: F401


def _warm() -> None:
    """A first task: done once a process has started and imported (``_init``)."""


class Painter:
    """Draws ``canonml.evaluate.plots`` functions in a spawned process once it is warm."""

    def __init__(self) -> None:
        self._pool: ProcessPoolExecutor | None = None
        self._warm: list[Future[None]] = []

    def start(self) -> None:
        """Spawn the painting process (returns at once)."""
        try:
            # spawn, not fork: this process holds torch's thread pools, which fork breaks.
            context = multiprocessing.get_context("spawn")
            self._pool = ProcessPoolExecutor(
                max_workers=PROCESSES,
                mp_context=context,
                initializer=_init,
                initargs=(os.getpid(),),
            )
            with _sigint_ignored():  # Ctrl-C is the run's to handle: the helpers inherit this
                self._warm = [self._pool.submit(_warm) for _ in range(PROCESSES)]  # start them
        except (OSError, RuntimeError, ValueError):
            self.close()

    @property
    def ready(self) -> bool:
        """Whether the painting process is up, with its imports done."""
        return bool(self._warm) and all(w.done() and w.exception() is None for w in self._warm)

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


@contextlib.contextmanager
def _sigint_ignored() -> Iterator[None]:
    """Ignore SIGINT while a child starts (a process started so keeps ignoring it)."""
    try:
        before = signal.signal(signal.SIGINT, signal.SIG_IGN)
    except ValueError:  # not the main thread: leave signals alone
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, before)


def now(fn: Callable[..., T], *args: Any) -> Future[T]:
    """``fn(*args)`` called here, as a finished future."""
    done: Future[T] = Future()
    done.set_result(fn(*args))
    return done
