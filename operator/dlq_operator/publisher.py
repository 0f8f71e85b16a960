"""`DlqPublisher`: how applications put a failed event on its dead-letter topic.

The Python counterpart of the original ``DlqService.send``: the same envelope, the same
headers, sent to ``<topic>.dlq`` keyed by the original key, through an idempotent
``acks=all`` producer. A send that fails raises :class:`DlqSendFailed`, so the caller
does not commit the offset of an event that is neither processed nor dead-lettered.

    publisher = DlqPublisher(consumer_group="orders-service")
    process = publisher.guard(handle_order)        # handle_order(event, record)
    for record in consumer:
        process(record)                            # dead-letters on an exception
        consumer.commit()
"""

from __future__ import annotations

import functools
import json
import time
import traceback
from collections.abc import Callable, Mapping
from typing import Any, Protocol

from prometheus_client import REGISTRY, CollectorRegistry

from dlq_operator.envelope import (
    DEFAULT_ERROR_CODE,
    DlqEnvelope,
    Headers,
    encode_dlq_record,
    format_timestamp,
    retry_count_from_headers,
)
from dlq_operator.errors import DlqError, DlqSendFailed
from dlq_operator.kafka import ProducedRecord, RecordProducer
from dlq_operator.metrics import MetricSet
from dlq_operator.settings import KafkaSettings


class PublisherMetrics(MetricSet):
    """The publisher's metrics.

    Publishers created without one share a set in ``prometheus_client``'s default registry
    (the one an application usually serves), registered when the first of them is created.
    An application that serves a registry of its own creates one set there and hands it to
    each of its publishers.
    """

    def __init__(self, registry: CollectorRegistry) -> None:
        super().__init__(registry)
        self.messages_sent = self.counter(
            "dlq_messages_sent_total",
            "Failed events sent to a dead-letter topic.",
            "original_topic",
            "error_code",
        )
        self.send_failed = self.counter(
            "dlq_send_failed_total",
            "Failed events that could not be sent to their dead-letter topic.",
            "dlq_topic",
        )


@functools.cache
def _default_metrics() -> PublisherMetrics:
    return PublisherMetrics(REGISTRY)


class SourceRecord(Protocol):
    """What the publisher reads of a consumed record (kafka-python's ConsumerRecord fits)."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    timestamp: int
    headers: Headers


class DlqPublisher:
    """Sends failed events to ``<topic>.dlq`` in the standard envelope."""

    def __init__(
        self,
        kafka: KafkaSettings | None = None,
        *,
        consumer_group: str,
        consumer_id: str | None = None,
        producer: RecordProducer | None = None,
        timeout: float = 30.0,
        metrics: PublisherMetrics | None = None,
    ) -> None:
        self.consumer_group = consumer_group
        self.metrics = metrics or _default_metrics()
        self.consumer_id = consumer_id
        self.timeout = timeout
        self.producer = producer or RecordProducer(
            kafka or KafkaSettings(), client_id=f"{consumer_group}-dlq-publisher"
        )

    def send(
        self,
        *,
        original_topic: str,
        original_partition: int,
        original_offset: int | str,
        event: Any,
        error: BaseException | str,
        original_key: str | None = None,
        original_timestamp: str | None = None,
        stack: str | None = None,
        error_code: str | None = None,
        retry_count: int = 0,
        metadata: Mapping[str, str] | None = None,
    ) -> ProducedRecord:
        """Dead-letters one event and waits for the broker's acknowledgement."""
        if isinstance(error, BaseException):
            stack = stack or "".join(traceback.format_exception(error)).rstrip()
            error = str(error) or type(error).__name__
        now = format_timestamp(time.time())
        envelope = DlqEnvelope(
            originalTopic=original_topic,
            originalPartition=original_partition,
            originalOffset=str(original_offset),
            originalKey=original_key,
            originalTimestamp=original_timestamp or now,
            event=event,
            error=error,
            stack=stack,
            errorCode=error_code,
            consumerGroup=self.consumer_group,
            consumerId=self.consumer_id,
            processingTimestamp=now,
            retryCount=retry_count,
            metadata=dict(metadata or {}),
        )
        record = encode_dlq_record(envelope)
        try:
            stored = self.producer.send_and_wait(record, timeout=self.timeout)
        except DlqError as exc:
            self.metrics.send_failed.labels(record.topic).inc()
            raise DlqSendFailed(f"could not send to {record.topic}: {exc}") from exc
        self.metrics.messages_sent.labels(original_topic, error_code or DEFAULT_ERROR_CODE).inc()
        return stored

    def send_record(
        self,
        record: SourceRecord,
        error: BaseException | str,
        *,
        event: Any = None,
        error_code: str | None = None,
        metadata: Mapping[str, str] | None = None,
    ) -> ProducedRecord:
        """Dead-letters a consumed record; its retry count comes from ``x-retry-count``."""
        return self.send(
            original_topic=record.topic,
            original_partition=record.partition,
            original_offset=record.offset,
            original_key=record.key.decode("utf-8", "replace") if record.key else None,
            original_timestamp=format_timestamp(record.timestamp / 1000),
            event=decode_event(record.value) if event is None else event,
            error=error,
            error_code=error_code,
            retry_count=retry_count_from_headers(record.headers or ()),
            metadata=metadata,
        )

    def guard(
        self,
        handler: Callable[[Any, SourceRecord], object],
        classify: Callable[[BaseException], str | None] = lambda exc: None,
        metadata: Callable[[Any], Mapping[str, str]] | None = None,
    ) -> Callable[[SourceRecord], bool]:
        """Wraps ``handler(event, record)``: on an exception the record is dead-lettered.

        The wrapped function returns True when the handler succeeded and False when the
        record went to the DLQ; either way the caller may commit. ``classify`` maps an
        exception to an error code (default: the exception's ``error_code`` attribute,
        else ``PROCESSING_FAILED``); ``metadata`` picks tenantId/correlationId/userId
        out of the event.
        """

        def guarded(record: SourceRecord) -> bool:
            event = decode_event(record.value)
            try:
                handler(event, record)
            except Exception as exc:
                code = classify(exc) or getattr(exc, "error_code", None)
                self.send_record(
                    record,
                    exc,
                    event=event,
                    error_code=code,
                    metadata=metadata(event) if metadata else None,
                )
                return False
            return True

        return guarded

    def close(self) -> None:
        self.producer.close(timeout=self.timeout)

    def __enter__(self) -> DlqPublisher:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def decode_event(value: bytes | None) -> Any:
    """The event of a consumed record: its JSON, or its text when it is not JSON."""
    if value is None:
        return None
    text = value.decode("utf-8", "replace")
    try:
        return json.loads(text)
    except ValueError:
        return text
