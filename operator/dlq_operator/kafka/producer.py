"""Producing records with acks=all and idempotence, every failure a project error.

Two behaviours of kafka-python 3 are worked around here.

Unknown topics. Left to itself, ``send()`` to a topic that does not exist blocks for
``max_block_ms`` waiting for its metadata, raises a timeout that looks like an unreachable
broker, and from then on refreshes metadata for that topic every ``retry_backoff_ms`` for
the producer's lifetime. So the first send to each topic asks the cluster (one metadata
request) whether the topic exists: a missing topic fails at once with
:class:`TopicNotFound` and never reaches the producer.

Poisoned idempotent producers. When the broker refuses a record for good (too large,
invalid), an idempotent kafka-python producer enters a fatal state: it fails every record
queued after it with the same error and never sends again. So after such a refusal the
producer is replaced before the next send, and records that failed only because they
shared the poisoned producer are reported as :class:`KafkaUnavailable` (send them again),
never with the refused record's error.
"""

from __future__ import annotations

import concurrent.futures
import threading
import time
from dataclasses import dataclass
from typing import Any

import kafka.errors as kafka_errors
from kafka.producer import KafkaProducer
from tenacity import Retrying, retry_if_exception_type, stop_after_delay, stop_never, wait_fixed

from dlq_operator.envelope import KafkaRecord
from dlq_operator.errors import DlqError, KafkaUnavailable, TopicNotFound
from dlq_operator.kafka.admin import TopicAdmin
from dlq_operator.kafka.connection import client_config, connect
from dlq_operator.kafka.errors import translate, translated
from dlq_operator.kafka.records import ProducedRecord
from dlq_operator.settings import KafkaSettings

# Kafka's own default limit is 1 MiB per request, below what a topic may be configured to
# accept; the topic's max.message.bytes is the limit that matters, so the broker decides.
DEFAULT_MAX_REQUEST_BYTES = 16 * 1024 * 1024

# Errors an idempotent producer recovers from by itself (a new producer epoch).
_RECOVERABLE = (
    kafka_errors.RetriableError,
    kafka_errors.OutOfOrderSequenceNumberError,
    kafka_errors.UnknownProducerIdError,
    kafka_errors.InvalidProducerEpochError,
)


class Delivery:
    """The outcome of a record queued with :meth:`RecordProducer.queue`, looked at rather
    than awaited: done once acknowledged, or once it failed with its project error."""

    __slots__ = ("_error", "_sent")

    def __init__(self, sent: Any, error: BaseException | None = None) -> None:
        self._sent = sent
        self._error = error

    def done(self) -> bool:
        # A failure counts once its error is translated (the errback), not when
        # kafka-python marks the future failed a moment before.
        return self._error is not None or self._sent.succeeded()

    def exception(self) -> BaseException | None:
        return self._error

    def _fail(self, error: BaseException) -> None:
        self._error = error


@dataclass
class _Session:
    """One kafka-python producer; ``poisoned`` once a refusal made it unusable."""

    producer: KafkaProducer
    poisoned: bool = False


class RecordProducer:
    """A thread-safe producer of records (:class:`KafkaRecord`); connects on first send.

    ``metadata_timeout_ms`` bounds how long a send waits for the metadata of an existing
    topic (an unreachable broker); ``delivery_timeout_ms`` how long a record may take to be
    acknowledged, retries included.
    """

    def __init__(
        self,
        settings: KafkaSettings,
        *,
        client_id: str,
        idempotent: bool = True,
        linger_ms: int = 5,
        batch_size: int = 64 * 1024,
        compression: str | None = None,
        max_request_bytes: int = DEFAULT_MAX_REQUEST_BYTES,
        metadata_timeout_ms: int = 5_000,
        delivery_timeout_ms: int = 30_000,
    ) -> None:
        self._settings = settings
        self._idempotent = idempotent
        self._config = client_config(
            settings,
            client_id,
            acks="all",
            enable_idempotence=idempotent,
            linger_ms=linger_ms,
            batch_size=batch_size,
            compression_type=compression,
            max_request_size=max_request_bytes,
            max_block_ms=metadata_timeout_ms,
            delivery_timeout_ms=delivery_timeout_ms,
            allow_auto_create_topics=False,
        )
        self._topics = TopicAdmin(settings, client_id=f"{client_id}-metadata")
        self._existing_topics: set[str] = set()
        self._lock = threading.Lock()
        self._session: _Session | None = None

    def send(self, record: KafkaRecord) -> concurrent.futures.Future[ProducedRecord]:
        """Queue ``record``; the future holds where it was stored, or the project error.

        Every failure, including one found before the record is queued, is delivered
        through the future. ``asyncio.wrap_future`` makes it awaitable.
        """
        future: concurrent.futures.Future[ProducedRecord] = concurrent.futures.Future()
        try:
            session, sent = self._queue(record)
        except DlqError as exc:
            future.set_exception(exc)
            return future
        sent.add_callback(
            lambda stored: future.set_result(
                ProducedRecord(topic=stored.topic, partition=stored.partition, offset=stored.offset)
            )
        )
        sent.add_errback(
            lambda exc: future.set_exception(self._failure(session, exc, record.topic))
        )
        return future

    def queue(self, record: KafkaRecord) -> Delivery:
        """Queue ``record`` like :meth:`send`, with a lighter handle than a Future (no
        synchronisation, no callback on success): for a sender that queues thousands and
        looks at them after a flush."""
        try:
            session, sent = self._queue(record)
        except DlqError as exc:
            return Delivery(None, exc)
        delivery = Delivery(sent)
        sent.add_errback(lambda exc: delivery._fail(self._failure(session, exc, record.topic)))
        return delivery

    def send_and_wait(self, record: KafkaRecord, timeout: float | None = None) -> ProducedRecord:
        """Send ``record`` and wait until the broker acknowledges it."""
        try:
            return self.send(record).result(timeout)
        except concurrent.futures.TimeoutError:
            raise KafkaUnavailable(
                f"produce to {record.topic}: no acknowledgement within {timeout} s"
            ) from None

    def flush(self, timeout: float | None = None) -> None:
        """Wait until every queued record is acknowledged or has failed."""
        session = self._session
        if session is None:
            return
        deadline = None if timeout is None else time.monotonic() + timeout

        def flush_until_deadline() -> None:
            remaining = None if deadline is None else max(deadline - time.monotonic(), 0)
            session.producer.flush(remaining)

        # After splitting a batch the broker found too large, kafka-python reports the
        # original batch "not done"; its records travel in new batches by then, which the
        # next flush waits for.
        retrying = Retrying(
            retry=retry_if_exception_type(kafka_errors.UnknownError),
            stop=stop_never if timeout is None else stop_after_delay(timeout),
            wait=wait_fixed(0.01),
            reraise=True,
        )
        with translated("flush", self._settings.bootstrap_servers):
            retrying(flush_until_deadline)

    def close(self, timeout: float | None = None) -> None:
        """Send what is queued, waiting up to ``timeout`` seconds, then disconnect."""
        with self._lock:
            session, self._session = self._session, None
        if session is not None:
            _close(session.producer, timeout)
        self._topics.close()

    def __enter__(self) -> RecordProducer:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def _queue(self, record: KafkaRecord) -> tuple[_Session, Any]:
        session = self._connected()
        if record.topic not in self._existing_topics:
            if not self._topics.topic_exists(record.topic):
                raise TopicNotFound(f"produce to {record.topic}: the topic does not exist")
            self._existing_topics.add(record.topic)
        # kafka-python refuses a record with neither key nor value.
        value = b"" if record.key is None and record.value is None else record.value
        # A plain try rather than `translated(...)`: this runs for every record.
        try:
            sent = session.producer.send(
                record.topic, value=value, key=record.key, headers=list(record.headers)
            )
        except kafka_errors.KafkaError as exc:
            raise translate(
                exc, f"produce to {record.topic}", self._settings.bootstrap_servers
            ) from exc
        return session, sent

    def _connected(self) -> _Session:
        session = self._session
        if session is not None and not session.poisoned:
            return session  # the common case, without the lock
        with self._lock:
            old = session = self._session
            if session is None or session.poisoned:
                producer, _ = connect(KafkaProducer, self._settings, **self._config)
                session = self._session = _Session(producer)
        if old is not None and old.poisoned:
            # Its records have all failed already; closing it only stops its threads.
            _close(old.producer, self._settings.request_timeout_ms / 1000)
        return session

    def _failure(self, session: _Session, exc: BaseException, topic: str) -> BaseException:
        """The error to report for a record that failed in ``session``."""
        if not isinstance(exc, kafka_errors.KafkaError):
            return exc
        with self._lock:
            if session.poisoned:
                return KafkaUnavailable(
                    f"produce to {topic}: the producer was replaced after another record was "
                    "refused; send again"
                )
            if self._idempotent and not isinstance(exc, _RECOVERABLE):
                session.poisoned = True
        return translate(exc, f"produce to {topic}", self._settings.bootstrap_servers)


def _close(producer: KafkaProducer, timeout: float | None) -> None:
    """Close ``producer``, waiting up to ``timeout`` seconds for its queued records.

    kafka-python cannot drop queued records: those left after ``timeout`` fail within
    ``delivery_timeout_ms``, and only then is the producer gone.
    """
    try:
        producer.close(timeout)
    except kafka_errors.KafkaTimeoutError:
        producer.close()
