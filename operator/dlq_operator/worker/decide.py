"""What the retry worker does with one dead letter: park it, or retry it at a due time."""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass

from dlq_operator.envelope import (
    DlqEnvelope,
    Headers,
    ParkedReason,
    effective_error_code,
    parse_timestamp,
)
from dlq_operator.errors import EnvelopeError
from dlq_operator.settings import WorkerSettings
from dlq_operator.worker.backoff import compute_backoff


@dataclass(frozen=True, slots=True)
class RetryRules:
    """The parts of a RetryPolicy the worker applies; delays in seconds.

    A RetryPolicy reaches the worker in two steps, one function each:
    ``reconcile.workload.worker_settings`` writes it into the worker's
    :class:`~dlq_operator.settings.WorkerSettings` (its environment), and
    :meth:`from_settings` reads these rules from them.

    Defaults are the original design's: 3 retries, 1 s doubling up to 60 s.
    """

    max_retries: int = 3
    initial_delay: float = 1.0
    max_delay: float = 60.0
    multiplier: float = 2.0
    jitter: float = 0.0
    non_retryable_error_codes: frozenset[str] = frozenset()

    @classmethod
    def from_settings(cls, settings: WorkerSettings) -> RetryRules:
        """The rules of a worker's settings: whether a dead letter is retried, then when."""
        return cls(
            max_retries=settings.max_retries,
            non_retryable_error_codes=frozenset(settings.non_retryable_error_codes),
            initial_delay=settings.initial_delay_seconds,
            max_delay=settings.max_delay_seconds,
            multiplier=settings.multiplier,
            jitter=settings.jitter,
        )


@dataclass(frozen=True, slots=True)
class Park:
    """Move the dead letter to the parked topic, for people to look at."""

    reason: ParkedReason
    detail: str


@dataclass(frozen=True, slots=True)
class Retry:
    """Republish the event to its original topic at ``due_at`` (epoch seconds)."""

    due_at: float


def decide(
    decoded: DlqEnvelope | EnvelopeError,
    headers: Headers,
    record_timestamp: float,
    rules: RetryRules,
    *,
    source_topic: str,
    rand: Callable[[], float] = random.random,
) -> Park | Retry:
    """Park or retry one dead letter, judged in this order:

    1. not an envelope: park with the decoding error's reason (``MalformedEnvelope``, ...);
    2. its ``originalTopic`` is not ``source_topic``, the DLQ's: park ``ForeignTopic`` (the
       worker republishes with its own Kafka identity, only to its own source topic);
    3. its error code (see :func:`~dlq_operator.envelope.effective_error_code`) is
       non-retryable: park ``NonRetryable``;
    4. ``retryCount >= max_retries``: park ``RetriesExhausted`` (the original design's
       ``retryCount + 1 > maxRetries``);
    5. otherwise retry at failure time + backoff(retryCount).

    The failure time is ``processingTimestamp``, or ``record_timestamp`` (the DLQ record's
    broker timestamp, epoch seconds) when that is not ISO-8601 or lies after it: a clock
    that ran ahead must not hold a retry back longer than its backoff.
    """
    if isinstance(decoded, EnvelopeError):
        return Park(ParkedReason(decoded.reason), decoded.detail)
    if decoded.original_topic != source_topic:
        return Park(
            ParkedReason.FOREIGN_TOPIC,
            f"originalTopic {decoded.original_topic} is not {source_topic}, the source topic "
            "of this dead-letter queue; the retry worker republishes only there",
        )
    error_code = effective_error_code(decoded, headers)
    if error_code in rules.non_retryable_error_codes:
        return Park(ParkedReason.NON_RETRYABLE, f"error code {error_code} is never retried")
    if decoded.retry_count >= rules.max_retries:
        return Park(
            ParkedReason.RETRIES_EXHAUSTED,
            f"retryCount {decoded.retry_count} reached maxRetries {rules.max_retries}",
        )
    failed_at = parse_timestamp(decoded.processing_timestamp)
    if failed_at is None or failed_at > record_timestamp:
        failed_at = record_timestamp
    delay = compute_backoff(
        decoded.retry_count,
        initial=rules.initial_delay,
        multiplier=rules.multiplier,
        max_delay=rules.max_delay,
        jitter=rules.jitter,
        rand=rand,
    )
    return Retry(failed_at + delay)
