"""Batched access to topics for many reconciles running at once.

A hundred DeadLetterQueues applied together start a hundred reconciles. Asked one by one,
the broker would see a hundred metadata requests, a hundred describe-configs requests and
a hundred create-topics requests, one after another (a kafka-python client serves one
caller at a time). Instead, each kind of call goes through a :class:`Coalescer`: callers
queue their keys, and one drain loop sends everything queued so far as ONE batched call,
while the next callers queue up behind it. No timer is involved: a lone reconcile is sent
at once, a burst is sent in a few large requests.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Hashable, Iterable, Mapping
from typing import Generic, TypeVar

from dlq_operator.kafka import TopicAdmin, TopicDescription, TopicSpec

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


class Coalescer(Generic[K, V]):
    """Turns many concurrent ``load(keys)`` calls into few ``batch(all keys)`` calls.

    ``batch`` is synchronous (it runs in a thread) and returns a value per key it knows;
    keys it does not know come back absent. An exception fails every caller of that batch.
    """

    def __init__(self, batch: Callable[[list[K]], Mapping[K, V]]) -> None:
        self._batch = batch
        self._queue: list[tuple[list[K], asyncio.Future[dict[K, V]]]] = []
        self._draining: asyncio.Task[None] | None = None

    async def load(self, keys: Iterable[K]) -> dict[K, V]:
        future: asyncio.Future[dict[K, V]] = asyncio.get_running_loop().create_future()
        self._queue.append((list(keys), future))
        if self._draining is None or self._draining.done():
            self._draining = asyncio.create_task(self._drain())
        return await future

    async def _drain(self) -> None:
        while self._queue:
            waiting, self._queue = self._queue, []
            keys = list(dict.fromkeys(key for ks, _ in waiting for key in ks))
            try:
                found = await asyncio.to_thread(self._batch, keys)
            except Exception as exc:  # every caller of this batch gets it
                for _, future in waiting:
                    if not future.done():
                        future.set_exception(exc)
                continue
            for ks, future in waiting:
                if not future.done():
                    future.set_result({k: found[k] for k in ks if k in found})


class TopicGateway:
    """The topic operations reconciles need, each batched across concurrent callers."""

    def __init__(self, admin: TopicAdmin) -> None:
        self.admin = admin
        self._describe = Coalescer(admin.describe_topics)
        self._create = Coalescer(self._create_batch)
        self._alter = Coalescer(self._alter_batch)
        self._grow = Coalescer(self._grow_batch)
        self._default_rf: int | None = None
        self._default_rf_lock = asyncio.Lock()
        self._specs: dict[str, TopicSpec] = {}  # topics queued for creation, by name

    async def describe(self, names: Iterable[str]) -> dict[str, TopicDescription]:
        return await self._describe.load(names)

    async def create(self, specs: Iterable[TopicSpec]) -> None:
        """Creates the topics; done once the controller has accepted them, as with Kafka's own
        tools (producers and consumers wait out the moment until partitions have leaders)."""
        specs = list(specs)
        self._specs.update((spec.name, spec) for spec in specs)
        await self._create.load(spec.name for spec in specs)

    async def alter_configs(self, changes: Mapping[str, Mapping[str, str | None]]) -> None:
        await self._alter.load(
            (name, tuple(sorted(c.items(), key=lambda kv: kv[0]))) for name, c in changes.items()
        )

    async def grow(self, totals: Mapping[str, int]) -> None:
        await self._grow.load(totals.items())

    async def delete(self, names: list[str]) -> None:
        await asyncio.to_thread(self.admin.delete_topics, names)

    async def default_replication_factor(self) -> int:
        """The broker's default.replication.factor, asked once."""
        if self._default_rf is None:
            self._default_rf = await asyncio.to_thread(self.admin.broker_default_replication_factor)
        return self._default_rf

    def _create_batch(self, names: list[str]) -> dict[str, bool]:
        self.admin.create_topics([self._specs.pop(name) for name in names], wait=False)
        return dict.fromkeys(names, True)

    def _alter_batch(self, changes: list[tuple[str, tuple]]) -> dict[tuple[str, tuple], bool]:
        merged: dict[str, dict[str, str | None]] = {}
        for name, items in changes:
            merged.setdefault(name, {}).update(items)
        self.admin.alter_topic_configs(merged)
        return dict.fromkeys(changes, True)

    def _grow_batch(self, totals: list[tuple[str, int]]) -> dict[tuple[str, int], bool]:
        self.admin.create_partitions(dict(totals))
        return dict.fromkeys(totals, True)
