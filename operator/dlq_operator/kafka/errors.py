"""kafka-python exceptions translated into the project's tree (:mod:`dlq_operator.errors`).

    kafka-python                                         raised as
    retriable errors (connection, timeout, no leader,    KafkaUnavailable   retry later
      coordinator moving, NodeNotReady, ...),
      BrokerNotAvailable, UnknownBrokerId
    UnknownTopicOrPartition, UnknownTopicId              TopicNotFound
    MessageSizeTooLarge, RecordListTooLarge              RecordTooLarge     park: TooLarge
    InvalidRecord, InvalidTimestamp                      RecordRejected     park: NonRetryable
    policy, invalid config/partitions/replication/       TopicOperationRefused
      topic name, TopicAlreadyExists, deletion disabled
    KafkaConfigurationError                              ConfigurationError
    anything else (authorization, ...)                   KafkaError

The two record classes are subclasses of :class:`TopicOperationRefused` that live here
because only a produce can raise them: a worker catches ``RecordTooLarge`` before
``RecordRejected`` before ``TopicNotFound`` before ``KafkaError``, and so tells "park this
record" apart from "retry later".
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import kafka.errors as kafka_errors

from dlq_operator.errors import (
    ConfigurationError,
    DlqError,
    KafkaError,
    KafkaUnavailable,
    TopicNotFound,
    TopicOperationRefused,
)


class RecordRejected(TopicOperationRefused):
    """The broker refused this record itself; sending it again cannot succeed."""

    reason = "RecordRejected"


class RecordTooLarge(RecordRejected):
    """The record is larger than the topic (or the producer) accepts."""

    reason = "RecordTooLarge"


_NOT_FOUND = (kafka_errors.UnknownTopicOrPartitionError, kafka_errors.UnknownTopicIdError)
_TOO_LARGE = (kafka_errors.MessageSizeTooLargeError, kafka_errors.RecordListTooLargeError)
_REJECTED = (kafka_errors.InvalidRecordError, kafka_errors.InvalidTimestampError)
_REFUSED = (
    kafka_errors.PolicyViolationError,
    kafka_errors.InvalidConfigurationError,
    kafka_errors.InvalidPartitionsError,
    kafka_errors.InvalidReplicationFactorError,
    kafka_errors.InvalidReplicationAssignmentError,
    kafka_errors.InvalidTopicError,
    kafka_errors.InvalidRequestError,
    kafka_errors.TopicAlreadyExistsError,
    kafka_errors.TopicDeletionDisabledError,
    kafka_errors.ReassignmentInProgressError,
)
# Not marked retriable by kafka-python, yet they only say a broker is away right now.
_UNAVAILABLE = (kafka_errors.BrokerNotAvailableError, kafka_errors.UnknownBrokerIdError)


def translate(exc: kafka_errors.KafkaError, action: str, servers: str) -> DlqError:
    """The project error for ``exc``, raised while doing ``action`` against ``servers``."""
    if isinstance(exc, _NOT_FOUND):
        return TopicNotFound(f"{action}: topic or partition does not exist ({exc})")
    if isinstance(exc, _TOO_LARGE):
        return RecordTooLarge(f"{action}: record too large ({exc})")
    if isinstance(exc, _REJECTED):
        return RecordRejected(f"{action}: record refused ({exc})")
    if isinstance(exc, _REFUSED):
        return TopicOperationRefused(f"{action}: refused by the broker ({exc})")
    if isinstance(exc, (kafka_errors.RetriableError, *_UNAVAILABLE)):
        return KafkaUnavailable(f"{action}: Kafka at {servers} is unavailable ({exc})")
    if isinstance(exc, kafka_errors.KafkaConfigurationError):
        return ConfigurationError(f"{action}: invalid Kafka client configuration ({exc})")
    return KafkaError(f"{action}: {exc}")


def for_code(error_code: int, message: str | None = None) -> kafka_errors.KafkaError:
    """The kafka-python exception for a broker error code found in a response."""
    return kafka_errors.for_code(error_code)(message or "")


@contextmanager
def translated(action: str, servers: str) -> Iterator[None]:
    """Re-raise kafka-python exceptions from the block as project errors."""
    try:
        yield
    except kafka_errors.KafkaError as exc:
        raise translate(exc, action, servers) from exc
