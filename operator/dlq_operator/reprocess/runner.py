"""The replay engine wired to Kafka: what the ReprocessRequest controller and the CLI run.

:func:`replay` builds the clients, plans the replay unless a restored
:class:`~.progress.Progress` is given, runs :func:`~.engine.run_replay` and closes the
clients. When a resolved consumer group is named it also moves the DLQ's resolved
watermarks as records are replayed, committing them *before* each checkpoint is saved:
the order :mod:`.progress` requires so that a crash never leaves a gap.
"""

from __future__ import annotations

import concurrent.futures
import threading
from collections.abc import Iterator, Sequence
from contextlib import closing
from datetime import UTC, datetime, timedelta
from itertools import islice
from typing import Protocol

from dlq_operator.api import MessageSelector, ReprocessTarget
from dlq_operator.envelope import KafkaRecord
from dlq_operator.errors import DlqError, TopicNotFound
from dlq_operator.kafka import ConsumedRecord, RecordProducer, RecordReader, TopicAdmin
from dlq_operator.reprocess.engine import Checkpointer, ReplayOutcome, run_replay
from dlq_operator.reprocess.progress import Progress
from dlq_operator.reprocess.ratelimit import RateLimiter
from dlq_operator.reprocess.selection import plan_ranges
from dlq_operator.settings import KafkaSettings

__all__ = ["Cancellation", "KafkaSink", "KafkaSource", "plan_replay", "replay"]

CLIENT_ID = "dlq-operator-replay"

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MILLISECOND = timedelta(milliseconds=1)


class Cancellation(Protocol):
    """A cancel flag that can also be slept on: ``threading.Event`` and kopf's
    ``stopped`` flag fit, so a cancelled replay stops waiting for its rate limit at once."""

    def is_set(self) -> bool: ...

    def wait(self, timeout: float | None = None) -> bool: ...


class KafkaSource:
    """The engine's :class:`~.engine.Source` over one topic.

    The engine asks for a few hundred records at a time, each time from where the last
    answer ended. Starting a read seeks and drops what the consumer had fetched ahead, so
    one read per partition is kept open and continued while the requests follow on.
    """

    def __init__(self, reader: RecordReader, topic: str) -> None:
        self._reader = reader
        self._topic = topic
        self._stream: Iterator[ConsumedRecord] | None = None
        self._position: tuple[int, int, int] | None = None  # partition, next offset, end

    def read_range(self, partition: int, start: int, end: int, limit: int) -> list[ConsumedRecord]:
        if self._stream is None or self._position != (partition, start, end):
            self.close()
            self._stream = self._reader.read_range(self._topic, {partition: (start, end)})
        try:
            records = list(islice(self._stream, limit))
        except DlqError:
            self.close()
            raise
        if records:
            self._position = (partition, records[-1].offset + 1, end)
        return records

    def close(self) -> None:
        """End the open read (the reader unassigns its partition)."""
        stream, self._stream, self._position = self._stream, None, None
        if stream is not None:
            stream.close()  # type: ignore[attr-defined]


class KafkaSink:
    """The engine's :class:`~.engine.Sink`: sends a batch, returns once all are acknowledged."""

    def __init__(self, producer: RecordProducer) -> None:
        self._producer = producer

    def send(self, records: Sequence[KafkaRecord]) -> None:
        futures = [self._producer.send(record) for record in records]
        self._producer.flush()
        concurrent.futures.wait(futures)
        for future in futures:
            error = future.exception()
            if error is not None:
                raise error


def plan_replay(
    admin: TopicAdmin, reader: RecordReader, topic: str, selector: MessageSelector
) -> Progress:
    """The progress of a replay of ``topic`` that has not begun: the selector's ranges,
    within what the broker retains now. :class:`TopicNotFound` when the topic is missing."""
    partitions = admin.list_offsets([topic]).get(topic)
    if partitions is None:
        raise TopicNotFound(f"replay from {topic}: the topic does not exist")
    # The time index has millisecond steps: round outwards, the per-record filter is exact.
    since = _offsets_at(reader, topic, selector.since, round_up=False)
    until = _offsets_at(reader, topic, selector.until, round_up=True)
    return Progress.start(plan_ranges(selector, partitions, since, until))


def replay(
    settings: KafkaSettings,
    *,
    source_topic: str,
    selector: MessageSelector,
    target: ReprocessTarget,
    rate: float,
    dry_run: bool,
    reprocessed_by: str,
    progress: Progress | None = None,
    checkpointer: Checkpointer | None = None,
    cancel: Cancellation | None = None,
    resolved_group: str | None = None,
) -> ReplayOutcome:
    """Replay what ``selector`` picks from ``source_topic``; see :func:`~.engine.run_replay`.

    ``rate`` is in messages per second, 0 for unthrottled. ``progress`` resumes a replay
    from its checkpoint; without it the replay is planned now. ``resolved_group`` is the
    DLQ's resolved consumer group (:func:`~dlq_operator.api.naming.resolved_group_name`),
    whose watermarks on ``source_topic`` then move over what was replayed.
    """
    cancel = cancel or threading.Event()
    with (
        TopicAdmin(settings, client_id=f"{CLIENT_ID}-admin") as admin,
        RecordReader(settings, client_id=f"{CLIENT_ID}-reader") as reader,
        RecordProducer(settings, client_id=CLIENT_ID) as producer,
        closing(KafkaSource(reader, source_topic)) as source,
    ):
        if progress is None:
            progress = plan_replay(admin, reader, source_topic, selector)
        saver = checkpointer or _NoCheckpoint()
        if resolved_group is not None and not dry_run:
            saver = _ResolvingCheckpointer(admin, resolved_group, source_topic, saver)
        return run_replay(
            progress,
            selector,
            target,
            source=source,
            sink=KafkaSink(producer),
            limiter=RateLimiter(rate),
            checkpointer=saver,
            cancel=cancel,
            sleep=cancel.wait,
            reprocessed_by=reprocessed_by,
            dry_run=dry_run,
        )


class _NoCheckpoint:
    """For a replay nobody resumes (the CLI's)."""

    def save(self, progress: Progress) -> None:
        pass


class _ResolvingCheckpointer:
    """Commits the resolved watermarks a save allows, then lets ``inner`` save.

    The committed offsets are read again before every commit, so a watermark only ever
    moves forward, even when something else moved it meanwhile.
    """

    def __init__(self, admin: TopicAdmin, group: str, topic: str, inner: Checkpointer) -> None:
        self._admin = admin
        self._group = group
        self._topic = topic
        self._inner = inner
        # Retention and purges only raise low offsets: an older answer can hold a watermark
        # back, never move it too far.
        ranges = admin.list_offsets([topic]).get(topic, {})
        self._low = {partition: low for partition, (low, _) in ranges.items()}

    def save(self, progress: Progress) -> None:
        committed = self._admin.committed_offsets({self._group: [self._topic]})
        current = committed.get(self._group, {}).get(self._topic, {})
        moved = progress.resolved_watermarks(current, self._low)
        if moved:
            self._admin.commit_group_offsets(
                self._group,
                {(self._topic, partition): offset for partition, offset in moved.items()},
            )
        self._inner.save(progress)


def _offsets_at(
    reader: RecordReader, topic: str, moment: datetime | None, *, round_up: bool
) -> dict[int, int | None] | None:
    if moment is None:
        return None
    since_epoch = moment - _EPOCH
    millis = since_epoch // _MILLISECOND
    if round_up and since_epoch % _MILLISECOND:
        millis += 1
    return reader.offsets_for_times(topic, millis)
