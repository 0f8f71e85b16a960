"""Coalesced topic calls: many concurrent reconciles, few broker calls."""

from __future__ import annotations

import asyncio
import functools
import threading
from collections.abc import Awaitable, Callable, Mapping

import pytest

from dlq_operator.errors import KafkaUnavailable
from dlq_operator.kafka import TopicSpec
from dlq_operator.reconcile.batching import Coalescer, TopicGateway


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


class FakeTopics:
    """The two TopicAdmin calls creating needs; partitions get leaders after ``polls``
    metadata requests."""

    def __init__(self, polls: int) -> None:
        self.polls = polls
        self.created: list[list[str]] = []
        self.leader_checks = 0

    def describe_topics(self, names: list[str]) -> dict:
        return {}

    def create_topics(self, specs: list[TopicSpec], *, wait: bool = True) -> set[str]:
        assert not wait, "the gateway waits for leaders itself, without holding up creates"
        self.created.append([spec.name for spec in specs])
        return set()

    def topics_with_leaders(self, names: list[str]) -> dict[str, bool]:
        self.leader_checks += 1
        return dict.fromkeys(names, self.leader_checks > self.polls)


@run_async
async def test_create_returns_once_the_new_topics_have_leaders() -> None:
    topics = FakeTopics(polls=2)
    gateway = TopicGateway(topics, leader_timeout=5)  # type: ignore[arg-type]

    await asyncio.gather(
        gateway.create([TopicSpec("a.dlq", 3)]), gateway.create([TopicSpec("b.dlq", 3)])
    )

    assert sorted(name for call in topics.created for name in call) == ["a.dlq", "b.dlq"]
    assert topics.leader_checks == 3


@run_async
async def test_create_gives_up_when_leaders_never_come() -> None:
    gateway = TopicGateway(FakeTopics(polls=10**6), leader_timeout=0.2)  # type: ignore[arg-type]

    with pytest.raises(KafkaUnavailable, match=r"a\.dlq"):
        await gateway.create([TopicSpec("a.dlq", 3)])
