"""Reading chosen ranges of a topic without a consumer group (CLI, replays, the monitor's
record timestamps)."""

from __future__ import annotations

import time
from collections.abc import Iterator, Mapping
from contextlib import AbstractContextManager

from kafka.consumer import KafkaConsumer
from kafka.structs import TopicPartition

from dlq_operator.errors import KafkaUnavailable, TopicNotFound
from dlq_operator.kafka.connection import client_config, connect
from dlq_operator.kafka.errors import translated
from dlq_operator.kafka.records import ConsumedRecord, consumed
from dlq_operator.settings import KafkaSettings

_POLL_MS = 200
_MANY = 1_000_000
_STALL_SECONDS = 3.0


class RecordReader:
    """Offsets and records of single topics, read with manual assignment; connects on first use.

    Like the consumer inside it, a reader belongs to one thread and reads one range at a
    time.

    Reads only committed records (``read_committed``): a record of an aborted transaction
    was never published, and end offsets are then the last stable offsets, which a read
    can reach.
    """

    def __init__(
        self,
        settings: KafkaSettings,
        *,
        client_id: str = "dlq-operator-reader",
        partition_fetch_bytes: int = 1024 * 1024,
    ) -> None:
        """``partition_fetch_bytes``: how much one fetch reads of a partition (at least one
        record batch); small for readers that want a record or two of many partitions."""
        self._settings = settings
        self._config = client_config(
            settings,
            client_id,
            max_partition_fetch_bytes=partition_fetch_bytes,
            group_id=None,
            enable_auto_commit=False,
            # A range that starts below the retained records reads from the oldest one.
            auto_offset_reset="earliest",
            isolation_level="read_committed",
        )
        self._consumer: KafkaConsumer | None = None

    def partitions_for(self, topic: str) -> list[int]:
        """The partitions of ``topic``; :class:`TopicNotFound` when it does not exist."""
        with self._translated(f"read partitions of {topic}"):
            partitions = self._connected().partitions_for_topic(topic)
        if not partitions:
            raise TopicNotFound(f"read {topic}: the topic does not exist")
        return sorted(partitions)

    def beginning_offsets(self, topic: str) -> dict[int, int]:
        with self._translated(f"read offsets of {topic}"):
            offsets = self._connected().beginning_offsets(self._partitions(topic))
        return {partition.partition: offset for partition, offset in offsets.items()}

    def end_offsets(self, topic: str) -> dict[int, int]:
        with self._translated(f"read offsets of {topic}"):
            offsets = self._connected().end_offsets(self._partitions(topic))
        return {partition.partition: offset for partition, offset in offsets.items()}

    def offsets_for_times(self, topic: str, timestamp_ms: int) -> dict[int, int | None]:
        """Per partition, the first offset at or after ``timestamp_ms``; None past the end."""
        request = dict.fromkeys(self._partitions(topic), timestamp_ms)
        with self._translated(f"read offsets of {topic}"):
            found = self._connected().offsets_for_times(request)
        return {
            partition.partition: None if at is None else at.offset
            for partition, at in found.items()
        }

    def read_range(
        self,
        topic: str,
        ranges: Mapping[int, tuple[int, int]],
        max_records: int | None = None,
    ) -> Iterator[ConsumedRecord]:
        """The records of ``topic`` in ``{partition: (start, end_exclusive)}``.

        Stops once every partition is read up to its end or to the current end of the
        partition, whichever comes first: it never waits for new records. Records no longer
        retained are skipped. :class:`KafkaUnavailable` when no progress is made for
        ``request_timeout_ms``.
        """
        ends = self.end_offsets(topic)
        pending = {
            TopicPartition(topic, partition): (start, min(end, ends.get(partition, 0)))
            for partition, (start, end) in ranges.items()
        }
        pending = {partition: span for partition, span in pending.items() if span[0] < span[1]}
        remaining = max_records
        if not pending or remaining == 0:
            return
        consumer = self._connected()
        with self._translated(f"read {topic}"):
            consumer.assign(list(pending))
            for partition, (start, _) in pending.items():
                consumer.seek(partition, start)
            try:
                stalled_at = time.monotonic() + self._settings.request_timeout_ms / 1000
                while pending:
                    batches = consumer.poll(timeout_ms=_POLL_MS, max_records=remaining or 500)
                    for partition, records in batches.items():
                        end = pending.get(partition, (0, 0))[1]
                        for record in records:
                            if record.offset >= end:
                                break
                            yield consumed(record)
                            if remaining is not None:
                                remaining -= 1
                                if remaining == 0:
                                    return
                    done = [p for p, (_, end) in pending.items() if consumer.position(p) >= end]
                    for partition in done:
                        del pending[partition]
                    if batches or done:
                        stalled_at = time.monotonic() + self._settings.request_timeout_ms / 1000
                    elif time.monotonic() > stalled_at:
                        raise KafkaUnavailable(f"read {topic}: no records arrive from Kafka")
                    consumer.pause(*done)
            finally:
                consumer.unsubscribe()

    def first_timestamps(
        self, positions: Mapping[tuple[str, int], int]
    ) -> dict[tuple[str, int], int]:
        """Per (topic, partition): the timestamp (ms) of the first record at or after the
        offset given, read for all partitions together (one fetch for a few thousand small
        records). A partition with no record there is absent, and so is any still unread once
        no record came for a few seconds: what is found is returned, the caller asks again
        for the rest."""
        pending = {TopicPartition(topic, p): offset for (topic, p), offset in positions.items()}
        found: dict[tuple[str, int], int] = {}
        if not pending:
            return found
        with self._translated("read record timestamps"):
            consumer = self._connected()
            consumer.assign(list(pending))
            ends = consumer.end_offsets(list(pending))
            for partition, offset in pending.items():
                consumer.seek(partition, offset)
            pending = {p: offset for p, offset in pending.items() if offset < ends[p]}
            try:
                stalled_at = time.monotonic() + _STALL_SECONDS
                while pending:
                    # All that was fetched at once: a few thousand partitions come in one or
                    # two fetches, and are taken as they come.
                    batches = consumer.poll(timeout_ms=_POLL_MS, max_records=_MANY)
                    for partition, records in batches.items():
                        if records and pending.pop(partition, None) is not None:
                            found[partition.topic, partition.partition] = records[0].timestamp
                    # No position() calls to spot partitions with nothing left to read (only
                    # transaction markers): each may wait for the consumer's offset
                    # validation; with thousands of partitions that took 20 s.
                    if batches:
                        stalled_at = time.monotonic() + _STALL_SECONDS
                    elif time.monotonic() > stalled_at:
                        break
            finally:
                consumer.unsubscribe()
        return found

    def read_one(self, topic: str, partition: int, offset: int) -> ConsumedRecord | None:
        """The record at ``offset``; None when it is not retained (or is not a record)."""
        for record in self.read_range(topic, {partition: (offset, offset + 1)}):
            return record if record.offset == offset else None
        return None

    def close(self) -> None:
        consumer, self._consumer = self._consumer, None
        if consumer is not None:
            consumer.close(autocommit=False)

    def __enter__(self) -> RecordReader:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def _partitions(self, topic: str) -> list[TopicPartition]:
        return [TopicPartition(topic, partition) for partition in self.partitions_for(topic)]

    def _connected(self) -> KafkaConsumer:
        if self._consumer is None:
            self._consumer, _ = connect(KafkaConsumer, self._settings, **self._config)
        return self._consumer

    def _translated(self, action: str) -> AbstractContextManager[None]:
        return translated(action, self._settings.bootstrap_servers)
