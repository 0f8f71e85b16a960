"""The replay loop, written against small protocols so it runs the same everywhere.

The ReprocessRequest controller and ``dlq-admin reprocess`` both call :func:`run_replay`,
with the Kafka adapter as :class:`Source` and :class:`Sink` and their own
:class:`Checkpointer` (a status patch, or nothing for the CLI). Unit tests pass in-memory
implementations of the same protocols. The loop is synchronous, like kafka-python: the
controller runs it in a thread.

One replay, given its :class:`~dlq_operator.reprocess.progress.Progress` (a fresh one
over the planned ranges, or one restored from status)::

    for each partition, ascending:
        read records from nextOffset up to endOffset
        decode each, judge it (selection), build its replay record (records)
        every batch_size_for(rate) records: wait for the rate limiter, send, and once
        the broker acknowledged the batch, advance the checkpoint and save it

- A dry run judges and counts the same records, keeps the first few as samples, and
  sends nothing (so it does not wait for the rate limiter either).
- Cancellation (the request suspended or deleted, the CLI interrupted) is checked
  before every read and every send: the replay stops between batches, ``Cancelled``, with
  the checkpoint of the last acknowledged batch saved, ready to go on from there.
- A read or a send that fails is tried again, ``attempts`` times in all with a doubling
  pause, then the replay stops ``Failed`` with the error in its message; the checkpoint
  stays at the last acknowledged batch. A batch sent again may have been produced in
  part: its records carry the same ``x-dlq-id`` as before.
- ``maxMessages`` ends the replay ``Succeeded`` once that many records matched, at the
  record that reached it.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import partial
from typing import Protocol, TypeVar

from tenacity import Retrying, retry_if_exception_type, stop_after_attempt, wait_exponential

from dlq_operator.api import MessageSelector, ReplaySample, ReprocessPhase, ReprocessTarget
from dlq_operator.envelope import DlqEnvelope, KafkaRecord, decode_record
from dlq_operator.errors import DlqError, EnvelopeError
from dlq_operator.kafka import ConsumedRecord
from dlq_operator.reprocess.progress import Progress
from dlq_operator.reprocess.ratelimit import MAX_BATCH, RateLimiter, batch_size_for
from dlq_operator.reprocess.records import build_replay_record
from dlq_operator.reprocess.selection import (
    UNREPLAYABLE,
    RecordFilter,
    SkipReason,
    error_code_of,
    key_of,
    quota_left,
)

__all__ = [
    "CancelToken",
    "Checkpointer",
    "ReplayOutcome",
    "Sink",
    "Sleeper",
    "Source",
    "run_replay",
]

_T = TypeVar("_T")


class Source(Protocol):
    """Reads the topic replayed from."""

    def read_range(
        self, partition: int, start: int, end: int, limit: int
    ) -> Sequence[ConsumedRecord]:
        """Up to ``limit`` records of ``partition`` from offset ``start`` on, below ``end``.

        Ascending by offset; offsets may skip (compaction, transaction markers, retention
        that moved the partition's start). Empty only when no record is left below ``end``.
        Raises :class:`~dlq_operator.errors.DlqError` on failure.
        """
        ...


class Sink(Protocol):
    """Produces replayed records."""

    def send(self, records: Sequence[KafkaRecord]) -> None:
        """Produce ``records``; return once the broker acknowledged every one of them.

        Raises :class:`~dlq_operator.errors.DlqError` when any of them was not acknowledged.
        """
        ...


class Checkpointer(Protocol):
    """Keeps progress where a restarted replay finds it (the request's status)."""

    def save(self, progress: Progress) -> None:
        """Persist ``progress``.

        A checkpointer that also commits resolved watermarks commits them first (see
        :mod:`~dlq_operator.reprocess.progress`). One that writes less often than it is
        called (to spare the API server) widens what a restart repeats to everything since
        its last write.
        """
        ...


class CancelToken(Protocol):
    """Set when the replay must stop: kopf's daemon ``stopped`` flag fits as it is."""

    def is_set(self) -> bool: ...


Sleeper = Callable[[float], object]
"""Waits that many seconds, ideally returning early once cancelled (``stopped.wait`` does)."""


@dataclass(frozen=True)
class ReplayOutcome:
    """How a replay ended: its phase, final progress and a sentence for ``status.message``."""

    phase: ReprocessPhase
    progress: Progress
    message: str

    @property
    def samples(self) -> list[ReplaySample]:
        """The matching records a dry run kept as samples."""
        return self.progress.samples


def run_replay(
    progress: Progress,
    selector: MessageSelector,
    target: ReprocessTarget,
    *,
    source: Source,
    sink: Sink,
    limiter: RateLimiter,
    checkpointer: Checkpointer,
    cancel: CancelToken,
    sleep: Sleeper,
    reprocessed_by: str,
    dry_run: bool = False,
    sample_limit: int = 10,
    attempts: int = 3,
    retry_pause: float = 1.0,
) -> ReplayOutcome:
    """Replay what ``selector`` picks from ``progress``'s checkpoint on; see the module doc.

    ``progress`` is updated in place. ``reprocessed_by`` goes into ``x-reprocessed-by``
    (:func:`~dlq_operator.reprocess.records.reprocessed_by_request`). The limiter's rate
    sets the batch size.
    """
    replay = _Replay(
        progress=progress,
        selector=selector,
        target=target,
        source=source,
        sink=sink,
        limiter=limiter,
        checkpointer=checkpointer,
        cancel=cancel,
        sleep=sleep,
        reprocessed_by=reprocessed_by,
        dry_run=dry_run,
        sample_limit=sample_limit,
        attempts=attempts,
        retry_pause=retry_pause,
    )
    return replay.run()


class _Stop(Exception):
    """Ends a replay early with this outcome."""

    def __init__(self, outcome: ReplayOutcome) -> None:
        super().__init__(outcome.message)
        self.outcome = outcome


@dataclass
class _Batch:
    """Records read since the last checkpoint and what became of them."""

    partition: int
    next_offset: int
    to_send: list[KafkaRecord] = field(default_factory=list)
    matched: int = 0
    skipped: int = 0
    first_unreplayed: int | None = None


@dataclass
class _Replay:
    progress: Progress
    selector: MessageSelector
    target: ReprocessTarget
    source: Source
    sink: Sink
    limiter: RateLimiter
    checkpointer: Checkpointer
    cancel: CancelToken
    sleep: Sleeper
    reprocessed_by: str
    dry_run: bool
    sample_limit: int
    attempts: int
    retry_pause: float
    # Only for this run's message: counts restored from status have no reasons.
    skips: Counter[SkipReason] = field(default_factory=Counter)

    def __post_init__(self) -> None:
        if self.attempts < 1:
            raise ValueError(f"attempts must be >= 1, got {self.attempts}")
        self.filter = RecordFilter(self.selector, self.target.topic)
        self.batch_size = batch_size_for(self.limiter.rate)

    def run(self) -> ReplayOutcome:
        try:
            for partition in sorted(self.progress.checkpoint):
                self._replay_partition(partition)
        except _Stop as stop:
            return stop.outcome
        return ReplayOutcome(
            phase=ReprocessPhase.SUCCEEDED, progress=self.progress, message=self._summary()
        )

    def _replay_partition(self, partition: int) -> None:
        while not self.progress.done(self.selector.max_messages):
            cp = self.progress.checkpoint[partition]
            if cp.next_offset >= cp.end_offset:
                return
            self._stop_if_cancelled()
            # Reads are not rate-limited, so read more than one batch when batches are small.
            records = self._retrying(
                f"Reading partition {partition}",
                partial(
                    self.source.read_range, partition, cp.next_offset, cp.end_offset, MAX_BATCH
                ),
            )
            if not records:
                self.progress.advance(partition, cp.end_offset)
                self.checkpointer.save(self.progress)
                return
            self._replay_records(partition, records)

    def _replay_records(self, partition: int, records: Sequence[ConsumedRecord]) -> None:
        batch = _Batch(partition, self.progress.checkpoint[partition].next_offset)
        for record in records:
            if quota_left(self.selector, self.progress.matched + batch.matched) == 0:
                break
            batch.next_offset = record.offset + 1
            decoded = _decode(record.value)
            reason = self.filter.skip_reason(record, decoded)
            if reason is not None:
                self.skips[reason] += 1
                batch.skipped += 1
                _note_unreplayed(batch, record.offset)
                continue
            batch.matched += 1
            envelope = decoded if isinstance(decoded, DlqEnvelope) else None
            if self.dry_run:
                _note_unreplayed(batch, record.offset)
                self._sample(record, envelope)
                continue
            batch.to_send.append(
                build_replay_record(
                    envelope,
                    record,
                    self.reprocessed_by,
                    self.target.topic,
                    self.target.reset_retry_count,
                )
            )
            if len(batch.to_send) == self.batch_size:
                self._commit(batch)
                batch = _Batch(partition, batch.next_offset)
        self._commit(batch)

    def _commit(self, batch: _Batch) -> None:
        """Send the batch, then move the checkpoint over it and save."""
        if batch.next_offset == self.progress.checkpoint[batch.partition].next_offset:
            return
        if batch.to_send:
            wait = self.limiter.acquire(len(batch.to_send))
            if wait > 0:
                self.sleep(wait)
            self._stop_if_cancelled()
            try:
                self._retrying(
                    f"Producing to {_topics(batch.to_send)}",
                    partial(self.sink.send, batch.to_send),
                )
            except _Stop as stop:
                if stop.outcome.phase is ReprocessPhase.FAILED:
                    self.progress.fail(len(batch.to_send))
                    self.checkpointer.save(self.progress)
                raise
        self.progress.advance(
            batch.partition,
            batch.next_offset,
            matched=batch.matched,
            replayed=len(batch.to_send),
            skipped=batch.skipped,
            first_unreplayed=batch.first_unreplayed,
        )
        self.checkpointer.save(self.progress)

    def _retrying(self, what: str, call: Callable[[], _T]) -> _T:
        def pause(seconds: float) -> None:
            self.sleep(seconds)
            self._stop_if_cancelled()

        retrying = Retrying(
            retry=retry_if_exception_type(DlqError),
            stop=stop_after_attempt(self.attempts),
            wait=wait_exponential(multiplier=self.retry_pause),
            sleep=pause,
            reraise=True,
        )
        try:
            return retrying(call)
        except DlqError as error:
            message = (
                f"{what} failed {self.attempts} times, last with: {error}; so far {self._counts()}."
            )
            raise _Stop(
                ReplayOutcome(phase=ReprocessPhase.FAILED, progress=self.progress, message=message)
            ) from None

    def _stop_if_cancelled(self) -> None:
        if self.cancel.is_set():
            message = f"Cancelled at the checkpoint; so far {self._counts()}."
            raise _Stop(
                ReplayOutcome(
                    phase=ReprocessPhase.CANCELLED, progress=self.progress, message=message
                )
            )

    def _sample(self, record: ConsumedRecord, envelope: DlqEnvelope | None) -> None:
        if len(self.progress.samples) >= self.sample_limit:
            return
        # A record that is not an envelope is only picked when there is a target topic.
        original_topic = self.target.topic or (envelope.original_topic if envelope else None)
        self.progress.samples.append(
            ReplaySample(
                partition=record.partition,
                offset=record.offset,
                key=key_of(record, envelope),
                error_code=error_code_of(record, envelope),
                original_topic=original_topic,
            )
        )

    def _counts(self) -> str:
        p = self.progress
        if self.dry_run:
            return f"{p.matched} messages would be replayed, {p.skipped} skipped"
        return f"{p.replayed} messages replayed, {p.skipped} skipped"

    def _summary(self) -> str:
        summary = f"{'Dry run: ' if self.dry_run else ''}{self._counts()}."
        limit = self.selector.max_messages
        if limit is not None and self.progress.matched >= limit:
            summary += f" Stopped at maxMessages ({limit})."
        unreplayable = sum(self.skips[reason] for reason in UNREPLAYABLE)
        if unreplayable:
            summary += (
                f" {unreplayable} records are not DLQ envelopes and have no original topic;"
                " give a target topic to replay them unchanged."
            )
        return summary


def _decode(value: bytes | None) -> DlqEnvelope | EnvelopeError:
    try:
        return decode_record(value)
    except EnvelopeError as exc:
        return exc


def _note_unreplayed(batch: _Batch, offset: int) -> None:
    if batch.first_unreplayed is None:
        batch.first_unreplayed = offset


def _topics(records: Sequence[KafkaRecord]) -> str:
    return ", ".join(sorted({record.topic for record in records}))
