"""Reading the CLI's own argument forms: positions, moments, headers, topic names. Pure."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import NamedTuple

from dlq_operator import DLQ_TOPIC_SUFFIX, PARKED_TOPIC_SUFFIX, parked_topic_for
from dlq_operator.api import ReprocessSource, parse_duration

_DAYS = re.compile(r"(\d+)d")


class Position(NamedTuple):
    """``P:O``, or a bare offset ``O`` whose partition is still to be found."""

    partition: int | None
    offset: int


def parse_position(text: str) -> Position:
    """``"2:17"`` is offset 17 of partition 2; ``"17"`` is offset 17 of a partition not given."""
    partition_text, colon, offset_text = text.strip().rpartition(":")
    if not colon:
        partition_text, offset_text = "", text.strip()
    elif not partition_text:
        raise ValueError(f"{text!r}: give <partition>:<offset>, e.g. 0:17")
    try:
        partition = int(partition_text) if colon else None
        offset = int(offset_text)
    except ValueError:
        raise ValueError(f"{text!r}: give <offset> or <partition>:<offset>, e.g. 0:17") from None
    if offset < 0 or (partition is not None and partition < 0):
        raise ValueError(f"{text!r}: partitions and offsets are never negative")
    return Position(partition, offset)


def parse_moment(text: str, now: datetime) -> datetime:
    """An ISO-8601 time (UTC when it has no zone) or a time ago, as ``2h``, ``1h30m``, ``3d``."""
    text = text.strip()
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        return now - _parse_age(text)
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def _parse_age(text: str) -> timedelta:
    days = _DAYS.fullmatch(text)
    if days:
        return timedelta(days=int(days.group(1)))
    try:
        return parse_duration(text)
    except ValueError:
        raise ValueError(
            f"{text!r} is neither an ISO-8601 time (2026-03-01T12:00:00Z) nor a time ago "
            "(30m, 2h, 1h30m, 3d)"
        ) from None


class HeaderMatch(NamedTuple):
    """``--header name=value``: records must carry this header with exactly this value."""

    name: str
    value: str


def parse_header(text: str) -> HeaderMatch:
    """``name=value``; the value may be empty and may itself contain ``=``."""
    name, equals, value = text.partition("=")
    if not equals or not name:
        raise ValueError(f"{text!r}: give a header as name=value")
    return HeaderMatch(name, value)


def is_dead_letter_topic(topic: str) -> bool:
    """Whether ``topic`` is named as a dead-letter or parked topic (``.dlq``, ``.parked``)."""
    return topic.endswith((DLQ_TOPIC_SUFFIX, PARKED_TOPIC_SUFFIX))


def is_parked_topic(topic: str) -> bool:
    return topic.endswith(PARKED_TOPIC_SUFFIX)


def replay_source_topic(topic: str, source: ReprocessSource | None) -> str:
    """The topic a replay reads: ``topic`` itself, or its parked topic for ``--source parked``.

    ``--source dlq`` with a parked topic is a contradiction, not something to guess about.
    """
    if source is ReprocessSource.PARKED and not is_parked_topic(topic):
        return parked_topic_for(topic)
    if source is ReprocessSource.DLQ and is_parked_topic(topic):
        raise ValueError(
            f"{topic} is a parked topic, but --source dlq asks for the dead-letter topic; "
            "name the dead-letter topic or drop --source"
        )
    return topic
