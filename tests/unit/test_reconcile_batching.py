"""Coalesced topic calls: many concurrent reconciles, few broker calls."""

from __future__ import annotations

import asyncio
import functools
import threading
from collections.abc import Awaitable, Callable, Mapping

from dlq_operator.errors import KafkaUnavailable
from dlq_operator.reconcile.batching import Coalescer


def run_async(test: Callable[[], Awaitable[None]]) -> Callable[[], None]:
    """Runs an async test in a fresh event loop."""

    @functools.wraps(test)
    def run() -> None:
        asyncio.run(test())  # type: ignore[arg-type]

    return run


class SlowBatch:
    """A batch function that holds each call until released, recording what it was asked."""

    def __init__(self) -> None:
        self.calls: list[list[str]] = []
        self.release = threading.Event()

    def __call__(self, keys: list[str]) -> Mapping[str, int]:
        self.calls.append(keys)
        self.release.wait(5)
        return {key: len(key) for key in keys if key != "unknown"}


@run_async
async def test_callers_queued_behind_a_running_batch_share_the_next_one() -> None:
    batch = SlowBatch()
    coalescer = Coalescer(batch)

    first = asyncio.create_task(coalescer.load(["a"]))
    await asyncio.sleep(0.05)  # the first batch is running now
    rest = [asyncio.create_task(coalescer.load([key, "a"])) for key in ("bb", "ccc", "unknown")]
    await asyncio.sleep(0.05)
    batch.release.set()

    assert await first == {"a": 1}
    assert [await task for task in rest] == [
        {"bb": 2, "a": 1},
        {"ccc": 3, "a": 1},
        {"a": 1},
    ]
    assert batch.calls == [["a"], ["bb", "a", "ccc", "unknown"]]


@run_async
async def test_a_failing_batch_fails_each_of_its_callers_and_the_next_batch_runs() -> None:
    outcomes = iter([KafkaUnavailable("broker away"), {"x": 1}])

    def batch(keys: list[str]) -> Mapping[str, int]:
        outcome = next(outcomes)
        if isinstance(outcome, Exception):
            raise outcome
        return outcome

    coalescer = Coalescer(batch)
    results = await asyncio.gather(
        coalescer.load(["x"]), coalescer.load(["x"]), return_exceptions=True
    )
    assert all(isinstance(result, KafkaUnavailable) for result in results)
    assert await coalescer.load(["x"]) == {"x": 1}
