"""The micro-batcher: concurrent requests share ONNX Runtime calls, each gets its own rows."""

from __future__ import annotations

import asyncio
import threading
import time

import numpy as np
import pytest

from canonml.serve.batcher import Batcher, Feeds


class Recorder:
    """A stand-in session: doubles ``x`` and records each call's batch size and thread."""

    def __init__(self, delay: float = 0.0, fail_on: int | None = None) -> None:
        self.sizes: list[int] = []
        self.threads: set[str] = set()
        self.delay, self.fail_on = delay, fail_on

    def __call__(self, feeds: Feeds) -> Feeds:
        self.sizes.append(len(feeds["x"]))
        self.threads.add(threading.current_thread().name)
        time.sleep(self.delay)  # like ONNX Runtime: blocking, without the GIL
        if self.fail_on is not None and len(self.sizes) == self.fail_on:
            raise RuntimeError("the session failed")
        return {"y": feeds["x"] * 2, "n": np.full(len(feeds["x"]), len(feeds["x"]))}


def requests(sizes: list[int]) -> list[Feeds]:
    start = np.cumsum([0, *sizes])
    return [
        {"x": np.arange(a, b, dtype=np.float32).reshape(-1, 1)}
        for a, b in zip(start[:-1], start[1:], strict=True)
    ]


async def gather(batcher: Batcher, feeds: list[Feeds]) -> list[Feeds]:
    try:
        return await asyncio.gather(*(batcher.infer(f, len(f["x"])) for f in feeds))
    finally:
        await batcher.close()


@pytest.mark.parametrize("inline", [True, False])
def test_concurrent_requests_share_calls_and_get_their_own_rows(inline: bool) -> None:
    run = Recorder(delay=0.01)
    feeds = requests([1] * 20 + [3, 2])
    outs = asyncio.run(gather(Batcher(run, max_batch=8, max_wait_s=0, inline=inline), feeds))
    for f, out in zip(feeds, outs, strict=True):
        np.testing.assert_array_equal(out["y"], f["x"] * 2)
    assert sum(run.sizes) == 25 and len(run.sizes) < 22
    assert max(run.sizes) <= 8
    # A long call goes to a worker thread; a short one stays on the event loop.
    assert run.threads == ({threading.current_thread().name} if inline else {"canon-ort_0"})


def test_a_request_larger_than_max_batch_runs_alone() -> None:
    run = Recorder(delay=0.005)
    outs = asyncio.run(gather(Batcher(run, max_batch=4, max_wait_s=0), requests([1, 10, 1])))
    assert [len(o["y"]) for o in outs] == [1, 10, 1]
    assert 10 in run.sizes and sum(run.sizes) == 12


def test_max_batch_one_is_plain_inference_on_the_loop() -> None:
    run = Recorder()
    outs = asyncio.run(gather(Batcher(run, max_batch=1, max_wait_s=0.05), requests([1, 2, 1])))
    assert run.sizes == [1, 2, 1] and [int(o["n"][0]) for o in outs] == [1, 2, 1]
    assert run.threads == {threading.current_thread().name}


def test_max_batch_one_with_a_long_model_runs_in_the_thread_one_by_one() -> None:
    run = Recorder(delay=0.005)
    outs = asyncio.run(gather(Batcher(run, 1, 0, inline=False), requests([1, 1, 1])))
    assert run.sizes == [1, 1, 1] and run.threads == {"canon-ort_0"}
    assert [float(o["y"][0, 0]) for o in outs] == [0, 2, 4]


def test_max_wait_gathers_requests_that_arrive_apart() -> None:
    run = Recorder()
    batcher = Batcher(run, max_batch=8, max_wait_s=0.2)

    async def staggered() -> list[Feeds]:
        async def later(f: Feeds, delay: float) -> Feeds:
            await asyncio.sleep(delay)
            return await batcher.infer(f, 1)

        try:
            return await asyncio.gather(
                *(later(f, 0.01 * i) for i, f in enumerate(requests([1] * 3)))
            )
        finally:
            await batcher.close()

    outs = asyncio.run(staggered())
    assert run.sizes == [3] and [float(o["y"][0, 0]) for o in outs] == [0, 2, 4]


def test_a_failed_call_fails_its_requests_and_the_next_ones_run() -> None:
    run = Recorder(fail_on=1)
    batcher = Batcher(run, max_batch=8, max_wait_s=0)

    async def scenario() -> Feeds:
        try:
            with pytest.raises(RuntimeError, match="session failed"):
                await batcher.infer(requests([2])[0], 2)
            return await batcher.infer(requests([2])[0], 2)
        finally:
            await batcher.close()

    assert asyncio.run(scenario())["y"].tolist() == [[0.0], [2.0]]
