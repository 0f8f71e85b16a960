"""A consumer-group member with explicit commits, for the retry worker.

Offsets are committed only by :meth:`GroupConsumer.commit`, never automatically: an offset
is committed once the produce it depends on is acknowledged. A member reads only committed
records (``read_committed``), so a dead letter whose transaction was aborted is never
retried. Where the group has no committed offset, reading starts at the oldest record:
no dead letter is skipped.

Rebalance callbacks run on the client's IO thread while :meth:`GroupConsumer.poll` waits,
so they must not call the consumer. ``on_revoke`` may instead return offsets to commit; they
are committed before the partitions are given up.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from contextlib import AbstractContextManager

from kafka.consumer import KafkaConsumer
from kafka.consumer.subscription_state import AsyncConsumerRebalanceListener
from kafka.structs import OffsetAndMetadata, TopicPartition

from dlq_operator.kafka._compat import finish_interrupted_join
from dlq_operator.kafka.connection import client_config, connect
from dlq_operator.kafka.errors import translated
from dlq_operator.kafka.records import ConsumedRecord, Partition, consumed
from dlq_operator.settings import KafkaSettings

OnAssign = Callable[[set[Partition]], None]
OnRevoke = Callable[[set[Partition]], Mapping[Partition, int] | None]


class GroupConsumer:
    """One member of ``group_id`` reading ``topics``; joins the group on the first poll.

    Like the kafka-python consumer inside it, it belongs to one thread.
    """

    def __init__(
        self,
        settings: KafkaSettings,
        group_id: str,
        topics: Iterable[str],
        *,
        on_assign: OnAssign | None = None,
        on_revoke: OnRevoke | None = None,
        max_poll_records: int = 100,
        max_poll_interval_ms: int = 300_000,
        session_timeout_ms: int = 45_000,
        client_id: str | None = None,
    ) -> None:
        self._settings = settings
        self._topics = sorted(set(topics))
        self._listener = _RebalanceListener(on_assign, on_revoke)
        self._config = client_config(
            settings,
            client_id or group_id,
            group_id=group_id,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            isolation_level="read_committed",
            max_poll_records=max_poll_records,
            max_poll_interval_ms=max_poll_interval_ms,
            session_timeout_ms=session_timeout_ms,
        )
        self._consumer: KafkaConsumer | None = None

    def poll(self, timeout_ms: int) -> list[ConsumedRecord]:
        """Records fetched within ``timeout_ms``, in offset order within each partition."""
        with self._translated("poll"):
            consumer = self._connected()
            batches = consumer.poll(timeout_ms=timeout_ms)
        finish_interrupted_join(consumer)
        return [consumed(record) for records in batches.values() for record in records]

    def commit(self, offsets: Mapping[Partition, int]) -> None:
        """Commit, for each partition, the offset of the next record to read.

        :class:`KafkaError` when the group gave a partition to another member meanwhile.
        """
        if not offsets:
            return
        with self._translated("commit"):
            self._connected().commit(
                _commit_request(offsets), timeout_ms=self._settings.request_timeout_ms
            )

    def pause(self, partitions: Iterable[Partition]) -> None:
        """Stop fetching from ``partitions`` (the group membership is kept)."""
        self._connected().pause(*_topic_partitions(partitions))

    def resume(self, partitions: Iterable[Partition]) -> None:
        self._connected().resume(*_topic_partitions(partitions))

    def seek(self, partition: Partition, offset: int) -> None:
        """Read ``partition`` again from ``offset`` on the next poll."""
        self._connected().seek(TopicPartition(*partition), offset)

    def assignment(self) -> set[Partition]:
        if self._consumer is None:
            return set()
        return {(p.topic, p.partition) for p in self._consumer.assignment()}

    def close(self) -> None:
        """Leave the group (``on_revoke`` runs first); nothing is committed implicitly."""
        consumer, self._consumer = self._consumer, None
        if consumer is not None:
            with self._translated("close"):
                consumer.close(autocommit=False)

    def __enter__(self) -> GroupConsumer:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def _connected(self) -> KafkaConsumer:
        if self._consumer is None:
            consumer, _ = connect(KafkaConsumer, self._settings, **self._config)
            self._listener.consumer = consumer
            consumer.subscribe(self._topics, listener=self._listener)
            self._consumer = consumer
        return self._consumer

    def _translated(self, action: str) -> AbstractContextManager[None]:
        topics = ", ".join(self._topics)
        return translated(f"{action} ({topics})", self._settings.bootstrap_servers)


class _RebalanceListener(AsyncConsumerRebalanceListener):
    """Calls the plain callbacks with ``(topic, partition)`` tuples on the IO loop.

    Async so that the commit asked for by ``on_revoke`` can be awaited without blocking
    the loop that has to carry it. Empty changes (a first join revokes nothing) are not
    passed on.
    """

    def __init__(self, on_assign: OnAssign | None, on_revoke: OnRevoke | None) -> None:
        self.consumer: KafkaConsumer | None = None
        self._on_assign = on_assign
        self._on_revoke = on_revoke

    async def on_partitions_assigned(self, assigned: set[TopicPartition]) -> None:
        if assigned and self._on_assign is not None:
            self._on_assign(_pairs(assigned))

    async def on_partitions_revoked(self, revoked: set[TopicPartition]) -> None:
        if not revoked or self._on_revoke is None:
            return
        offsets = self._on_revoke(_pairs(revoked))
        if offsets and self.consumer is not None:
            await self.consumer.commit_async(_commit_request(offsets))

    async def on_partitions_lost(self, lost: set[TopicPartition]) -> None:
        # The group already gave these partitions to another member: too late to commit.
        if lost and self._on_revoke is not None:
            self._on_revoke(_pairs(lost))


def _pairs(partitions: Iterable[TopicPartition]) -> set[Partition]:
    return {(p.topic, p.partition) for p in partitions}


def _topic_partitions(partitions: Iterable[Partition]) -> list[TopicPartition]:
    return [TopicPartition(topic, partition) for topic, partition in partitions]


def _commit_request(offsets: Mapping[Partition, int]) -> dict[TopicPartition, OffsetAndMetadata]:
    return {
        TopicPartition(topic, partition): OffsetAndMetadata(offset, "", -1)
        for (topic, partition), offset in offsets.items()
    }
