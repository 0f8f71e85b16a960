"""Which dead letters a replay picks: offset ranges first, then a verdict per record.

A :class:`~dlq_operator.api.MessageSelector` is applied in two stages.

1. :func:`plan_ranges` turns the filters that map onto offsets (``partitions``,
   ``fromOffset``/``toOffset``, ``since``/``until``) into one range of offsets to read per
   partition, intersected with what the broker retains. ``toOffset`` is inclusive;
   ``since`` starts a range at the offset the broker's time index gives for it
   (``offsets_for_times``) and ``until`` ends it there (exclusive). The broker answers
   ``None`` when no record is at or after that time: then ``since`` selects nothing in
   that partition and ``until`` ends the range at the partition's end. The plan is made
   once, when the replay starts, and kept in its checkpoint: a replay never reaches
   records written after it started, which matters because a replayed message that
   fails again comes back onto the very topic being replayed.
2. :class:`RecordFilter` judges each record read: ``errorCodes`` (the envelope's
   ``errorCode``, else the ``error-code`` header, else ``PROCESSING_FAILED``), ``keys``
   (the envelope's ``originalKey``, else the record key, as UTF-8), ``headers`` (each one
   present with exactly that value) and ``since``/``until`` again on the record's own
   timestamp: the time index only bounds a range, and producers may write timestamps out
   of order within it.

Records that are not envelopes (malformed, or larger than the decoder accepts) have no
``originalTopic`` to return to. With a target topic they are replayed unchanged, since
moving them where somebody asked is the only way a replay can deal with them; without one
they are skipped (``MalformedEnvelope`` / ``TooLarge``) and stay where they are, never
dropped. Tombstones (a null value) carry no message and are always skipped: replaying one
to a compacted topic would delete that key.

``maxMessages`` counts matched records, partition by partition in ascending order and
offset by offset within each, so the same request over the same data always picks the
same records: the first ``maxMessages`` matches of partition 0, then partition 1, and so
on. A quota shared out across partitions would depend on how reads interleave.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import NamedTuple

from dlq_operator.api import MessageSelector
from dlq_operator.envelope import (
    DEFAULT_ERROR_CODE,
    ERROR_CODE_HEADER,
    DlqEnvelope,
    ParkedReason,
    effective_error_code,
    header_value,
)
from dlq_operator.errors import EnvelopeError
from dlq_operator.kafka import ConsumedRecord

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


class OffsetRange(NamedTuple):
    """Offsets ``start`` .. ``end - 1`` of one partition."""

    start: int
    end: int


class SkipReason(StrEnum):
    """Why a record read by a replay is not replayed."""

    OUTSIDE_TIME_RANGE = "OutsideTimeRange"
    ERROR_CODE_NOT_SELECTED = "ErrorCodeNotSelected"
    KEY_NOT_SELECTED = "KeyNotSelected"
    HEADERS_NOT_SELECTED = "HeadersNotSelected"
    TOMBSTONE = "Tombstone"
    # Not an envelope and no target topic: the same words as the parked reasons.
    MALFORMED_ENVELOPE = ParkedReason.MALFORMED_ENVELOPE.value
    TOO_LARGE = ParkedReason.TOO_LARGE.value


UNREPLAYABLE = frozenset({SkipReason.MALFORMED_ENVELOPE, SkipReason.TOO_LARGE})
"""Skip reasons of records the selector picked but that cannot go anywhere without a target."""


def plan_ranges(
    selector: MessageSelector,
    partitions: Mapping[int, tuple[int, int]],
    since_offsets: Mapping[int, int | None] | None = None,
    until_offsets: Mapping[int, int | None] | None = None,
) -> dict[int, OffsetRange]:
    """The offsets to read in each partition, from the retained ``(low, high)`` ranges.

    ``since_offsets`` and ``until_offsets`` are the broker's ``offsets_for_times`` answers
    for ``selector.since`` and ``selector.until``, for every partition of ``partitions``;
    they are needed only when the selector has that bound. Partitions left with nothing to
    read are omitted, as are selected partitions the topic does not have.
    """
    if selector.since is not None and since_offsets is None:
        raise ValueError("selector.since needs the offsets of that time")
    if selector.until is not None and until_offsets is None:
        raise ValueError("selector.until needs the offsets of that time")
    wanted = set(partitions if selector.partitions is None else selector.partitions)
    plan = {}
    for partition in sorted(wanted & partitions.keys()):
        low, high = partitions[partition]
        start, end = low, high
        if selector.from_offset is not None:
            start = max(start, selector.from_offset)
        if selector.to_offset is not None:
            end = min(end, selector.to_offset + 1)
        if since_offsets is not None and selector.since is not None:
            start = max(start, _time_offset(since_offsets, partition, high))
        if until_offsets is not None and selector.until is not None:
            end = min(end, _time_offset(until_offsets, partition, high))
        if start < end:
            plan[partition] = OffsetRange(start, end)
    return plan


class RecordFilter:
    """The per-record half of a selector, with its lists made into sets once per replay."""

    def __init__(self, selector: MessageSelector, target_topic: str | None) -> None:
        self._since = selector.since
        self._until = selector.until
        self._error_codes = None if selector.error_codes is None else set(selector.error_codes)
        self._keys = None if selector.keys is None else set(selector.keys)
        self._headers = selector.headers or {}
        self._target_topic = target_topic

    def skip_reason(
        self, record: ConsumedRecord, decoded: DlqEnvelope | EnvelopeError
    ) -> SkipReason | None:
        """Why ``record`` is not replayed, ``None`` when it is.

        ``decoded`` is the record's value decoded as an envelope, or the error that says
        why it is not one. Filters come first, so a record the selector does not pick is
        reported as such whatever its value; then whether it can be replayed at all.
        """
        envelope = decoded if isinstance(decoded, DlqEnvelope) else None
        if not self._in_time_range(record.timestamp_ms):
            return SkipReason.OUTSIDE_TIME_RANGE
        if (
            self._error_codes is not None
            and error_code_of(record, envelope) not in self._error_codes
        ):
            return SkipReason.ERROR_CODE_NOT_SELECTED
        if self._keys is not None and key_of(record, envelope) not in self._keys:
            return SkipReason.KEY_NOT_SELECTED
        if any(
            header_value(record.headers, name) != value for name, value in self._headers.items()
        ):
            return SkipReason.HEADERS_NOT_SELECTED
        if record.value is None:
            return SkipReason.TOMBSTONE
        if isinstance(decoded, EnvelopeError) and not self._target_topic:
            return SkipReason(decoded.reason)
        return None

    def _in_time_range(self, timestamp_ms: int) -> bool:
        if self._since is None and self._until is None:
            return True
        # Compared as datetimes: exact, where float seconds would round at the millisecond.
        moment = _EPOCH + timedelta(milliseconds=timestamp_ms)
        if self._since is not None and moment < self._since:
            return False
        return self._until is None or moment < self._until


def quota_left(selector: MessageSelector, matched: int) -> int | None:
    """How many more records may match under ``maxMessages``; ``None`` when unlimited."""
    if selector.max_messages is None:
        return None
    return max(selector.max_messages - matched, 0)


def error_code_of(record: ConsumedRecord, envelope: DlqEnvelope | None) -> str:
    """The error code a record is selected by; ``envelope`` is ``None`` for a non-envelope."""
    if envelope is not None:
        return effective_error_code(envelope, record.headers)
    return header_value(record.headers, ERROR_CODE_HEADER) or DEFAULT_ERROR_CODE


def key_of(record: ConsumedRecord, envelope: DlqEnvelope | None) -> str | None:
    """The key a record is selected by: ``originalKey``, else the record's own key."""
    if envelope is not None and envelope.original_key is not None:
        return envelope.original_key
    return None if record.key is None else record.key.decode("utf-8", errors="replace")


def _time_offset(offsets: Mapping[int, int | None], partition: int, high: int) -> int:
    if partition not in offsets:
        raise ValueError(f"no offset for the selector's time in partition {partition}")
    offset = offsets[partition]
    return high if offset is None else offset
