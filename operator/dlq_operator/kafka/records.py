"""Records as the rest of the operator sees them: plain tuples, no kafka-python types."""

from __future__ import annotations

from typing import Any, NamedTuple

Partition = tuple[str, int]
"""A partition of a topic: ``(topic, partition)``."""


class ConsumedRecord(NamedTuple):
    """A record read from a topic."""

    topic: str
    partition: int
    offset: int
    timestamp_ms: int
    key: bytes | None
    value: bytes | None
    headers: list[tuple[str, bytes | None]]


class ProducedRecord(NamedTuple):
    """Where the broker stored a record it acknowledged."""

    topic: str
    partition: int
    offset: int


def consumed(record: Any) -> ConsumedRecord:
    """A kafka-python ``ConsumerRecord`` as a :class:`ConsumedRecord`."""
    return ConsumedRecord(
        topic=record.topic,
        partition=record.partition,
        offset=record.offset,
        timestamp_ms=record.timestamp,
        key=record.key,
        value=record.value,
        headers=list(record.headers or ()),
    )
