"""Micro-batching: concurrent requests to one model share one ONNX Runtime call.

Requests wait in a list; one drain task per model takes up to ``max_batch`` samples,
concatenates them along the batch axis, runs the session once and hands each request its
slice (a text classifier's requests, each trimmed to its own longest text, are first padded
to the longest of the batch: ``pad`` gives each such input's padding value). Batches form
by themselves under load, because requests pile up while a call runs;
``max_wait`` lets a batch that is not full wait a little for more.

Where the call runs: a short one (``inline``) on the event loop, since handing it to a
thread and back costs more than the call (on 2 cores, inline batching served the digits
models 10-25% faster); a long one in a worker thread, where ONNX Runtime releases the GIL
and the loop keeps reading requests meanwhile. With ``max_batch=1`` and ``inline`` a
request simply runs where it arrives: plain inference.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import numpy as np

Feeds = dict[str, np.ndarray]
_Pending = tuple[Feeds, int, "asyncio.Future[Feeds]"]


class Batcher:
    """Gathers requests for one model into batches of at most ``max_batch`` samples."""

    def __init__(
        self,
        run: Callable[[Feeds], Feeds],
        max_batch: int,
        max_wait_s: float,
        on_batch: Callable[[int], None] | None = None,
        inline: bool = True,
        pad: dict[str, int] | None = None,
    ) -> None:
        self._run = run
        self._pad = pad or {}
        self.inline = inline
        self.max_batch = max(1, max_batch)
        self.max_wait_s = max(0.0, max_wait_s)
        self._on_batch = on_batch or (lambda n: None)
        self._pending: list[_Pending] = []
        self._queued = 0  # samples in _pending
        self._wake: asyncio.Event | None = None
        self._full: asyncio.Event | None = None
        self._task: asyncio.Task[None] | None = None
        self._executor: ThreadPoolExecutor | None = None

    async def infer(self, feeds: Feeds, n: int) -> Feeds:
        """The model's outputs for one request of ``n`` samples."""
        if self.max_batch == 1 and self.inline:
            self._on_batch(n)
            return self._run(feeds)
        if self._task is None:
            self._start()
        assert self._wake is not None and self._full is not None  # set by _start
        future: asyncio.Future[Feeds] = asyncio.get_running_loop().create_future()
        self._pending.append((feeds, n, future))
        self._queued += n
        self._wake.set()
        if self._queued >= self.max_batch:
            self._full.set()
        return await future

    async def close(self) -> None:
        """Stop the drain task and its thread; requests still waiting are cancelled."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        for _, _, future in self._pending:
            future.cancel()
        self._pending.clear()
        if self._executor is not None:
            self._executor.shutdown(wait=False)
            self._executor = None

    def _start(self) -> None:
        self._wake, self._full = asyncio.Event(), asyncio.Event()
        if not self.inline:
            self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="canon-ort")
        self._task = asyncio.get_running_loop().create_task(self._drain())

    async def _drain(self) -> None:
        assert self._wake is not None and self._full is not None
        loop = asyncio.get_running_loop()
        while True:
            await self._wake.wait()
            if self.max_wait_s and self._queued < self.max_batch:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._full.wait(), self.max_wait_s)
            batch = self._take()
            if not self._pending:
                self._wake.clear()
            if self._queued < self.max_batch:
                self._full.clear()
            if not batch:
                continue
            feeds = _concat([f for f, _, _ in batch], self._pad)
            self._on_batch(sum(n for _, n, _ in batch))
            try:
                if self._executor is None:
                    out = self._run(feeds)
                else:
                    out = await loop.run_in_executor(self._executor, self._run, feeds)
            except Exception as e:  # a model failure fails its requests, never the server
                for _, _, future in batch:
                    if not future.done():
                        future.set_exception(e)
                continue
            _scatter(out, batch)

    def _take(self) -> list[_Pending]:
        """Requests from the front of the queue, up to ``max_batch`` samples (at least one)."""
        total, count = 0, 0
        for _, n, _ in self._pending:
            if count and total + n > self.max_batch:
                break
            total, count = total + n, count + 1
        batch, self._pending = self._pending[:count], self._pending[count:]
        self._queued -= total
        return batch


def _concat(feeds: list[Feeds], pad: dict[str, int]) -> Feeds:
    """The requests' feeds as one batch; ``pad`` inputs are right-padded to the widest."""
    if len(feeds) == 1:
        return feeds[0]
    out = {}
    for name in feeds[0]:
        parts = [f[name] for f in feeds]
        if name in pad:
            width = max(x.shape[1] for x in parts)  # (n, S) each → (sum n, width)
            parts = [_widen(x, width, pad[name]) for x in parts]
        out[name] = np.concatenate(parts)
    return out


def _widen(x: np.ndarray, width: int, value: int) -> np.ndarray:
    if x.shape[1] == width:
        return x
    return np.pad(x, ((0, 0), (0, width - x.shape[1])), constant_values=value)


def _scatter(out: Feeds, batch: list[_Pending]) -> None:
    """Give each request its rows of every output."""
    start = 0
    for _, n, future in batch:
        if not future.done():
            future.set_result({name: value[start : start + n] for name, value in out.items()})
        start += n
