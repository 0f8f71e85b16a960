"""How deep a dead-letter queue is, computed from broker offsets alone.

The monitor never reads messages to count them. Per cycle it learns, for every partition,
the beginning (``low``) and end (``high``) offsets of each DLQ topic and its parked topic,
plus a few committed consumer-group offsets, and derives the figures below.

``messages``
    Records the broker still retains on the DLQ topic: ``Σ high - low``. The classic
    figure of the original design; it drops only when retention or a purge
    (delete-records) moves ``low``, so on its own it says little about what is left to do.
``pending``
    Records the retry worker has not yet handled: ``Σ high - max(committed, low)`` over
    the DLQ topic, using the offsets the worker's consumer group committed. With no
    worker, or nothing committed yet, ``committed`` is ``low``. Zero when retries are off.
``parked``
    Records on ``<dlq>.parked`` that nobody has dealt with: ``Σ high - max(resolved, low)``.
``unresolved``
    What still needs somebody, the figure alerts are based on. With retries on:
    ``pending + parked``. With retries off the DLQ topic itself is for people:
    ``Σ high - max(resolved, low)`` over the DLQ topic, plus ``parked`` (a parked topic
    left over from when retries were on still holds records nobody has dealt with).
``inflowPerMinute``
    New DLQ records per minute since the previous cycle (growth of ``Σ high``).

Resolved watermarks
    People resolve records by reprocessing or purging them. A purge deletes records,
    which moves ``low`` and so lowers every figure by itself. A reprocess leaves the records
    in place, so it records how far it got: it commits, in a consumer group of its own per
    DLQ (``dlq-operator.resolved.<namespace>.<name>``, never used to consume), the offset
    below which each partition of the DLQ and parked topics is resolved. Committing offsets
    is atomic, survives restarts, needs no extra storage, and the monitor reads those
    offsets in the same batched request as the retry worker's, so it costs no extra round
    trip. A reprocess that skips records in the middle of a range cannot express that in a
    watermark; it only advances the watermark over a contiguous resolved prefix.

Every per-partition term is clamped at zero: a committed offset beyond ``high`` (a topic
recreated under an old consumer group) must not subtract from the other partitions.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import NamedTuple


class PartitionOffsets(NamedTuple):
    """The retained range of one partition: records ``low`` .. ``high - 1``."""

    low: int
    high: int

    def remaining_after(self, position: int | None) -> int:
        """Records from ``position`` (at least ``low``) to the end."""
        start = self.low if position is None else max(position, self.low)
        return max(self.high - start, 0)


PartitionMap = Mapping[int, PartitionOffsets]
CommittedMap = Mapping[int, int]


@dataclass(frozen=True)
class DlqObservation:
    """Everything one cycle learned about one DLQ. Absent parts are empty mappings."""

    namespace: str
    name: str
    dlq_topic: str
    dlq: PartitionMap
    retry_enabled: bool
    parked_topic: str | None = None
    parked: PartitionMap = field(default_factory=dict)
    retry_committed: CommittedMap = field(default_factory=dict)
    resolved_dlq: CommittedMap = field(default_factory=dict)
    resolved_parked: CommittedMap = field(default_factory=dict)
    oldest_unresolved_timestamp: datetime | None = None


@dataclass(frozen=True)
class InflowSample:
    """The DLQ topic's ``Σ high`` at one moment; inflow is the growth between two samples."""

    high_sum: int
    at: datetime


@dataclass(frozen=True)
class DepthFigures:
    messages: int
    pending: int
    parked: int
    unresolved: int
    inflow_per_minute: float | None
    oldest_unresolved_at: datetime | None
    oldest_unresolved_age_seconds: float | None


def _remaining(offsets: PartitionMap, positions: CommittedMap) -> int:
    return sum(part.remaining_after(positions.get(p)) for p, part in offsets.items())


def _inflow_per_minute(high_sum: int, now: datetime, previous: InflowSample | None) -> float | None:
    if previous is None:
        return None
    elapsed = (now - previous.at).total_seconds()
    if elapsed <= 0:
        return None
    # Σ high shrinks only when the topic is recreated; that is not negative inflow.
    return max(high_sum - previous.high_sum, 0) * 60.0 / elapsed


def compute_figures(
    observation: DlqObservation, *, now: datetime, previous: InflowSample | None
) -> tuple[DepthFigures, InflowSample]:
    """The figures of one DLQ, and the sample the next cycle needs for its inflow."""
    obs = observation
    messages = _remaining(obs.dlq, {})
    parked = _remaining(obs.parked, obs.resolved_parked)
    if obs.retry_enabled:
        pending = _remaining(obs.dlq, obs.retry_committed)
        unresolved = pending + parked
    else:
        pending = 0
        unresolved = _remaining(obs.dlq, obs.resolved_dlq) + parked

    oldest = obs.oldest_unresolved_timestamp if unresolved else None
    age = max((now - oldest).total_seconds(), 0.0) if oldest is not None else None

    sample = InflowSample(high_sum=sum(part.high for part in obs.dlq.values()), at=now)
    figures = DepthFigures(
        messages=messages,
        pending=pending,
        parked=parked,
        unresolved=unresolved,
        inflow_per_minute=_inflow_per_minute(sample.high_sum, now, previous),
        oldest_unresolved_at=oldest,
        oldest_unresolved_age_seconds=age,
    )
    return figures, sample


def first_unresolved_offsets(observation: DlqObservation) -> dict[tuple[str, int], int]:
    """Offset of the first unresolved record of each partition that has one.

    The Kafka adapter may fetch the timestamps of these records (one batched fetch) and
    put the earliest into ``oldest_unresolved_timestamp``.
    """
    obs = observation
    dlq_positions = obs.retry_committed if obs.retry_enabled else obs.resolved_dlq
    wanted = [(obs.dlq_topic, obs.dlq, dlq_positions)]
    if obs.parked_topic is not None:
        wanted.append((obs.parked_topic, obs.parked, obs.resolved_parked))
    first: dict[tuple[str, int], int] = {}
    for topic, offsets, positions in wanted:
        for partition, part in offsets.items():
            if part.remaining_after(positions.get(partition)):
                first[topic, partition] = max(positions.get(partition, part.low), part.low)
    return first


RecordTimestamps = Mapping[tuple[str, int, int], int]
"""(topic, partition, offset) -> timestamp (ms) of the first record at or after the offset."""


def oldest_of(
    first: Mapping[tuple[str, int], int], timestamps: RecordTimestamps
) -> datetime | None:
    """The earliest known timestamp of the records at the first unresolved offsets."""
    known = [
        timestamps[topic, p, offset]
        for (topic, p), offset in first.items()
        if (topic, p, offset) in timestamps
    ]
    return datetime.fromtimestamp(min(known) / 1000, UTC) if known else None
