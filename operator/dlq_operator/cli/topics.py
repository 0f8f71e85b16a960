"""Checks on the topic a command names: that it is a dead-letter topic, exists, holds an offset."""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from dlq_operator.cli.parsing import Position, is_dead_letter_topic
from dlq_operator.errors import (
    ConfigurationError,
    NotADeadLetterTopic,
    OffsetOutOfRange,
    TopicNotFound,
)
from dlq_operator.kafka import TopicAdmin

Ranges = Mapping[int, tuple[int, int]]
"""partition -> (low, high): the retained offsets are ``low .. high - 1``."""


def require_dead_letter_topic(topic: str, force: bool = False) -> None:
    if not force and not is_dead_letter_topic(topic):
        raise NotADeadLetterTopic(
            f"{topic} is not a dead-letter topic (its name ends neither in .dlq nor in .parked)"
        )


def retained_offsets(admin: TopicAdmin, topic: str) -> dict[int, tuple[int, int]]:
    """Every partition of ``topic`` with its (low, high) offsets; read from metadata."""
    ranges = admin.list_offsets([topic]).get(topic)
    if ranges is None:
        raise TopicNotFound(f"topic {topic} does not exist")
    return ranges


def require_partitions(topic: str, ranges: Ranges, partitions: Iterable[int]) -> None:
    missing = sorted(set(partitions) - ranges.keys())
    if missing:
        raise OffsetOutOfRange(
            f"{topic} has no partition {', '.join(map(str, missing))} "
            f"(it has {len(ranges)}: 0..{len(ranges) - 1})"
        )


def locate(topic: str, ranges: Ranges, position: Position) -> tuple[int, int]:
    """The partition and offset ``position`` names; a bare offset must be retained in
    exactly one partition."""
    if position.partition is not None:
        require_partitions(topic, ranges, [position.partition])
        low, high = ranges[position.partition]
        if not low <= position.offset < high:
            raise OffsetOutOfRange(
                f"offset {position.offset} is not in partition {position.partition} of {topic}"
                f" ({_retained(low, high)})"
            )
        return position.partition, position.offset
    holding = [p for p, (low, high) in sorted(ranges.items()) if low <= position.offset < high]
    if not holding:
        raise OffsetOutOfRange(f"no partition of {topic} holds offset {position.offset}")
    if len(holding) > 1:
        examples = ", ".join(f"{p}:{position.offset}" for p in holding[:3])
        raise ConfigurationError(
            f"offset {position.offset} exists in {len(holding)} partitions of {topic}; "
            f"give <partition>:<offset>, e.g. {examples}"
        )
    return holding[0], position.offset


def _retained(low: int, high: int) -> str:
    return "it is empty" if low == high else f"it holds {low}..{high - 1}"
