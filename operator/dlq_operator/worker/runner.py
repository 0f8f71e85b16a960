"""The retry worker's loop: consume a DLQ topic, republish or park, commit what is safe.

One thread does everything, so the pure :class:`~.schedule.Schedule` needs no locks:

1. poll for at most the time until the next retry is due (never longer than a second), so
   the group never misses ``max.poll.interval.ms`` and a waiting record blocks nothing;
2. decide each record (:func:`~.decide.decide`): park it at once, or schedule its retry;
3. send the retries that are due; parks and retries go out through one idempotent
   ``acks=all`` producer;
4. collect acknowledgements: only an acknowledged produce marks its DLQ record done;
5. commit, per partition, up to the lowest record not yet done;
6. pause partitions whose share of the schedule is full, resume them when it has room.

A crash between a produce and the commit repeats that produce on restart, never loses it;
the repeat carries the same ``x-dlq-id`` header, so consumers can de-duplicate.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from prometheus_client import CollectorRegistry

from dlq_operator.envelope import (
    DlqEnvelope,
    KafkaRecord,
    ParkedReason,
    decode_record,
    dlq_id_of,
    pack_republish,
    parked_headers,
    republish_record,
    unpack_republish,
)
from dlq_operator.errors import (
    DlqError,
    EnvelopeError,
    KafkaUnavailable,
    RecordRejected,
    RecordTooLarge,
    TopicNotFound,
)
from dlq_operator.kafka import (
    ConsumedRecord,
    Delivery,
    GroupConsumer,
    Partition,
    RecordProducer,
    RecordReader,
    TopicAdmin,
)
from dlq_operator.settings import KafkaSettings, WorkerSettings
from dlq_operator.worker.decide import Park, RetryRules, decide
from dlq_operator.worker.metrics import WorkerMetrics
from dlq_operator.worker.schedule import Schedule

log = logging.getLogger(__name__)

MAX_POLL_RECORDS = 500
# A republish that failed for a passing reason (broker unreachable) waits this long.
RESEND_DELAY_SECONDS = 5.0
COMMIT_INTERVAL_SECONDS = 1.0
TOPIC_CACHE_SECONDS = 60.0
FLUSH_TIMEOUT_SECONDS = 30.0


@dataclass(slots=True)
class _Sent:
    """A produce waiting for its acknowledgement."""

    delivery: Delivery
    partition: int
    offset: int
    original_topic: str | None  # None for a park
    # What a resend after a passing failure needs: the packed retry from the schedule, or
    # the envelope of a retry sent at once (packed only if it ever has to wait).
    payload: bytes | DlqEnvelope | None
    parked_reason: ParkedReason | None = None
    parked_detail: str = ""


def _parked_reason_for(error: BaseException) -> ParkedReason | None:
    """Why a failed republish is parked; None when it may succeed later (send it again)."""
    if isinstance(error, RecordTooLarge):
        return ParkedReason.TOO_LARGE
    if isinstance(error, RecordRejected):
        return ParkedReason.NON_RETRYABLE
    if isinstance(error, TopicNotFound):
        return ParkedReason.UNKNOWN_TOPIC
    return None


class RetryWorker:
    """Retries the dead letters of one DLQ topic as one member of the worker group."""

    def __init__(
        self,
        settings: WorkerSettings,
        kafka: KafkaSettings,
        *,
        clock: Callable[[], float] = time.time,
        metrics: WorkerMetrics | None = None,
    ) -> None:
        self.settings = settings
        # The worker process passes the metrics it serves; without them, a registry nobody
        # reads.
        self.metrics = metrics or WorkerMetrics(CollectorRegistry())
        self.rules = RetryRules.from_settings(settings)
        self.clock = clock
        self.schedule = Schedule(settings.schedule_capacity)
        self.topic = settings.dlq_topic
        self.consumer = GroupConsumer(
            kafka,
            settings.group_id,
            [self.topic],
            on_assign=self._assigned,
            on_revoke=self._revoked,
            max_poll_records=MAX_POLL_RECORDS,
            client_id=f"{settings.group_id}-worker",
        )
        self.producer = RecordProducer(kafka, client_id=f"{settings.group_id}-producer")
        self.admin = TopicAdmin(kafka, client_id=f"{settings.group_id}-admin")
        self.reader = RecordReader(kafka)
        self.in_flight: deque[_Sent] = deque()
        # Parks to try again, (not before, sent): the record is re-read from the DLQ topic.
        self.park_retries: deque[tuple[float, _Sent]] = deque()
        self.paused: set[int] = set()
        self.known_topics: dict[str, float] = {}
        self.last_commit = 0.0
        self.last_loop = time.monotonic()
        self.assigned = False

    # -- the loop ---------------------------------------------------------------------
    def run(self, stop: threading.Event) -> None:
        """Runs until ``stop`` is set, then finishes in-flight sends and commits."""
        log.info("retrying %s as group %s", self.topic, self.settings.group_id)
        try:
            while not stop.is_set():
                self.step()
        finally:
            self.shutdown()

    def step(self) -> None:
        """One turn of the loop (public for tests and benchmarks)."""
        self.last_loop = time.monotonic()
        try:
            records = self.consumer.poll(self._poll_timeout_ms())
        except KafkaUnavailable as exc:
            log.warning("poll failed, retrying: %s", exc)
            time.sleep(1.0)
            return
        for record in records:
            self._take(record)
        self._send_due()
        self._retry_parks()
        self._collect(wait=bool(self.in_flight))
        self._commit(force=False)
        self._flow_control()
        self.metrics.scheduled.set(len(self.schedule))
        self.metrics.schedule_lag.set(self.schedule.lag(self.clock()))
        self.metrics.in_flight.set(len(self.in_flight))

    def shutdown(self) -> None:
        """Stop taking records; finish what is in flight; commit; leave the group."""
        try:
            self._collect(wait=True)
            self._commit(force=True)
        except DlqError as exc:
            log.warning("final commit failed (records will be retried again): %s", exc)
        finally:
            self.consumer.close()
            self.producer.close(timeout=10)
            self.admin.close()
            self.reader.close()

    def alive(self) -> bool:
        """The loop turned recently (it never blocks longer than a poll or a flush)."""
        return time.monotonic() - self.last_loop < 60

    def ready(self) -> bool:
        return self.assigned and self.alive()

    # -- taking records -----------------------------------------------------------------
    def _take(self, record: ConsumedRecord) -> None:
        if not self.schedule.track(record.partition, record.offset):
            return
        decoded: DlqEnvelope | EnvelopeError
        try:
            decoded = decode_record(record.value)
        except EnvelopeError as exc:
            decoded = exc
        decision = decide(
            decoded,
            record.headers,
            record.timestamp_ms / 1000,
            self.rules,
            source_topic=self.settings.source_topic,
        )
        if isinstance(decision, Park):
            if decision.reason is ParkedReason.RETRIES_EXHAUSTED:
                assert isinstance(decoded, DlqEnvelope)
                self.metrics.max_retries_exceeded.labels(decoded.original_topic).inc()
            self._park(record, decision.reason, decision.detail)
            return
        assert isinstance(decoded, DlqEnvelope)
        if not self._topic_exists(decoded.original_topic):
            self._park(
                record,
                ParkedReason.UNKNOWN_TOPIC,
                f"original topic {decoded.original_topic} does not exist",
            )
            return
        if decision.due_at <= self.clock():
            # Due already (zero backoff, or a backlog): straight out, no schedule round trip.
            dlq_id = dlq_id_of(self.topic, record.partition, record.offset)
            retry = republish_record(decoded, dlq_id, decoded.retry_count + 1)
            self.in_flight.append(
                _Sent(
                    delivery=self.producer.queue(retry),
                    partition=record.partition,
                    offset=record.offset,
                    original_topic=retry.topic,
                    payload=decoded,
                )
            )
            return
        payload = pack_republish(decoded, decoded.retry_count + 1)
        self.schedule.add(record.partition, record.offset, decision.due_at, payload)

    def _topic_exists(self, topic: str) -> bool:
        """Cached: a retry to a topic that does not exist is parked, not sent."""
        now = time.monotonic()
        if now - self.known_topics.get(topic, -TOPIC_CACHE_SECONDS) < TOPIC_CACHE_SECONDS:
            return True
        try:
            exists = self.admin.topic_exists(topic)
        except KafkaUnavailable:
            return True  # cannot tell now; a failed send is retried later
        if exists:
            self.known_topics[topic] = now
        return exists

    def _park(self, record: ConsumedRecord, reason: ParkedReason, detail: str) -> None:
        headers = parked_headers(
            record.headers,
            reason,
            detail,
            self.clock(),
            dlq_id=dlq_id_of(self.topic, record.partition, record.offset, record.headers),
        )
        parked = KafkaRecord(
            topic=self.settings.parked_topic,
            key=record.key,
            value=record.value if record.value is not None else b"",
            headers=headers,
        )
        self.in_flight.append(
            _Sent(
                delivery=self.producer.queue(parked),
                partition=record.partition,
                offset=record.offset,
                original_topic=None,
                payload=None,
                parked_reason=reason,
                parked_detail=detail,
            )
        )

    # -- sending retries ----------------------------------------------------------------
    def _send_due(self) -> None:
        for due in self.schedule.pop_due(self.clock(), MAX_POLL_RECORDS * 4):
            dlq_id = dlq_id_of(self.topic, due.partition, due.offset)
            record = unpack_republish(due.payload, dlq_id)
            self.in_flight.append(
                _Sent(
                    delivery=self.producer.queue(record),
                    partition=due.partition,
                    offset=due.offset,
                    original_topic=record.topic,
                    payload=due.payload,
                )
            )

    def _collect(self, wait: bool) -> None:
        """Marks acknowledged produces done; handles the failed ones."""
        if wait and self.in_flight:
            try:
                self.producer.flush(timeout=FLUSH_TIMEOUT_SECONDS)
            except KafkaUnavailable as exc:
                log.warning("flush did not finish: %s", exc)
        pending: deque[_Sent] = deque()
        while self.in_flight:
            sent = self.in_flight.popleft()
            if not sent.delivery.done():
                pending.append(sent)
                continue
            error = sent.delivery.exception()
            if error is None:
                self._acknowledged(sent)
            else:
                self._failed(sent, error)
        self.in_flight = pending

    def _acknowledged(self, sent: _Sent) -> None:
        self.schedule.mark_done(sent.partition, sent.offset)
        if sent.parked_reason is not None:
            self.metrics.parked.labels(sent.parked_reason.value).inc()
        else:
            self.metrics.retry_succeeded(sent.original_topic)

    def _failed(self, sent: _Sent, error: BaseException) -> None:
        if sent.parked_reason is not None:
            # The parked topic must take it; until it does, the offset stays uncommitted.
            log.warning(
                "parking %s/%s failed, trying again: %s", sent.partition, sent.offset, error
            )
            self._park_later(sent)
            return
        self.metrics.retry_failed.labels(sent.original_topic).inc()
        reason = _parked_reason_for(error)
        if reason is not None:
            self._park_later(
                _Sent(
                    delivery=sent.delivery,
                    partition=sent.partition,
                    offset=sent.offset,
                    original_topic=None,
                    payload=None,
                    parked_reason=reason,
                    parked_detail=str(error),
                ),
                delay=0.0,
            )
            return
        log.warning(
            "republish of %s/%s failed, retrying in %.0fs: %s",
            sent.partition,
            sent.offset,
            RESEND_DELAY_SECONDS,
            error,
        )
        assert sent.payload is not None
        if isinstance(sent.payload, DlqEnvelope):
            sent.payload = pack_republish(sent.payload, sent.payload.retry_count + 1)
        self.schedule.add(
            sent.partition, sent.offset, self.clock() + RESEND_DELAY_SECONDS, sent.payload
        )

    def _park_later(self, sent: _Sent, delay: float = RESEND_DELAY_SECONDS) -> None:
        self.park_retries.append((time.monotonic() + delay, sent))

    def _retry_parks(self) -> None:
        """Parks records whose park failed or whose retry failed for good.

        The schedule keeps only what a republish needs, so the original record is read
        again from the DLQ topic; its offset is still uncommitted, so it is there.
        """
        now = time.monotonic()
        while self.park_retries and self.park_retries[0][0] <= now:
            _, sent = self.park_retries.popleft()
            try:
                original = self.reader.read_one(self.topic, sent.partition, sent.offset)
            except DlqError as exc:
                log.warning("cannot re-read %s/%s yet: %s", sent.partition, sent.offset, exc)
                self._park_later(sent)
                return
            if original is None:  # deleted meanwhile by retention or a purge
                self.schedule.mark_done(sent.partition, sent.offset)
                continue
            assert sent.parked_reason is not None
            self._park(original, sent.parked_reason, sent.parked_detail)

    # -- commits and flow control ---------------------------------------------------------
    def _commit(self, force: bool) -> None:
        now = time.monotonic()
        if not force and now - self.last_commit < COMMIT_INTERVAL_SECONDS:
            return
        offsets = self.schedule.committable_offsets()
        if not offsets:
            return
        try:
            self.consumer.commit({(self.topic, p): offset for p, offset in offsets.items()})
        except DlqError as exc:
            log.warning("commit failed, will try again: %s", exc)
            return
        for partition, offset in offsets.items():
            self.schedule.mark_committed(partition, offset)
        self.last_commit = now

    def _flow_control(self) -> None:
        full = {p for p in self._assigned_partitions() if self.schedule.is_full(p)}
        to_pause = full - self.paused
        to_resume = {p for p in self.paused if self.schedule.has_room(p)}
        if to_pause:
            self.consumer.pause((self.topic, p) for p in to_pause)
        if to_resume:
            self.consumer.resume((self.topic, p) for p in to_resume)
        self.paused = (self.paused | to_pause) - to_resume

    def _assigned_partitions(self) -> set[int]:
        return {p for topic, p in self.consumer.assignment() if topic == self.topic}

    def _poll_timeout_ms(self) -> int:
        if self.in_flight:
            return 0
        wait = self.schedule.next_due_in(self.clock())
        return int(min(1.0 if wait is None else wait, 1.0) * 1000)

    # -- rebalances (called inside poll) ------------------------------------------------
    def _assigned(self, partitions: set[Partition]) -> None:
        self.schedule.assign(p for topic, p in partitions if topic == self.topic)
        self.assigned = True

    def _revoked(self, partitions: set[Partition]) -> Mapping[Partition, int]:
        """Finishes in-flight sends so the new owner starts after everything done here."""
        self._collect(wait=True)
        mine = [p for topic, p in partitions if topic == self.topic]
        self.park_retries = deque(
            item for item in self.park_retries if item[1].partition not in mine
        )
        offsets = {p: o for p, o in self.schedule.committable_offsets().items() if p in mine}
        self.schedule.revoke(mine)
        self.paused -= set(mine)
        return {(self.topic, p): o for p, o in offsets.items()}
