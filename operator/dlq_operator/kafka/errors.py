"""kafka-python's exceptions translated into the project's tree (:mod:`dlq_operator.errors`).

One table, :data:`KAFKA_EXC_MAP`, says which project error each kafka-python error
becomes; :func:`translate` applies it to one exception and :func:`translated` to a block.
The entry of the most specific class wins: the first of the exception's classes (its MRO)
that the table names. So ``UnknownTopicOrPartitionError``, which kafka-python also marks
retriable, is a :class:`TopicNotFound`, and an error named nowhere is a
:class:`~dlq_operator.errors.KafkaError` through the ``KafkaError`` row.
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
    RecordRejected,
    RecordTooLarge,
    TopicNotFound,
    TopicOperationRefused,
)

KAFKA_EXC_MAP: dict[type[kafka_errors.KafkaError], type[DlqError]] = {
    # Anything not named below (authorization, ...).
    kafka_errors.KafkaError: KafkaError,
    # Connection, timeout, no leader, coordinator moving, NodeNotReady, ...: retry later.
    kafka_errors.RetriableError: KafkaUnavailable,
    # Not marked retriable by kafka-python, yet they only say a broker is away right now.
    kafka_errors.BrokerNotAvailableError: KafkaUnavailable,
    kafka_errors.UnknownBrokerIdError: KafkaUnavailable,
    kafka_errors.KafkaConfigurationError: ConfigurationError,
    kafka_errors.UnknownTopicOrPartitionError: TopicNotFound,
    kafka_errors.UnknownTopicIdError: TopicNotFound,
    # Only a produce raises these: the worker parks the record (TooLarge, NonRetryable).
    kafka_errors.MessageSizeTooLargeError: RecordTooLarge,
    kafka_errors.RecordListTooLargeError: RecordTooLarge,
    kafka_errors.InvalidRecordError: RecordRejected,
    kafka_errors.InvalidTimestampError: RecordRejected,
    kafka_errors.PolicyViolationError: TopicOperationRefused,
    kafka_errors.InvalidConfigurationError: TopicOperationRefused,
    kafka_errors.InvalidPartitionsError: TopicOperationRefused,
    kafka_errors.InvalidReplicationFactorError: TopicOperationRefused,
    kafka_errors.InvalidReplicationAssignmentError: TopicOperationRefused,
    kafka_errors.InvalidTopicError: TopicOperationRefused,
    kafka_errors.InvalidRequestError: TopicOperationRefused,
    kafka_errors.TopicAlreadyExistsError: TopicOperationRefused,
    kafka_errors.TopicDeletionDisabledError: TopicOperationRefused,
    kafka_errors.ReassignmentInProgressError: TopicOperationRefused,
}

# The message of each project error; ``action`` is what was being done, ``servers`` the
# bootstrap servers, ``exc`` the kafka-python exception.
_MESSAGES: dict[type[DlqError], str] = {
    KafkaError: "{action}: {exc}",
    KafkaUnavailable: "{action}: Kafka at {servers} is unavailable ({exc})",
    ConfigurationError: "{action}: invalid Kafka client configuration ({exc})",
    TopicNotFound: "{action}: topic or partition does not exist ({exc})",
    RecordTooLarge: "{action}: record too large ({exc})",
    RecordRejected: "{action}: record refused ({exc})",
    TopicOperationRefused: "{action}: refused by the broker ({exc})",
}


def translate(exc: kafka_errors.KafkaError, action: str, servers: str) -> DlqError:
    """The project error for ``exc``, raised while doing ``action`` against ``servers``."""
    kind = next(KAFKA_EXC_MAP[cls] for cls in type(exc).__mro__ if cls in KAFKA_EXC_MAP)
    return kind(_MESSAGES[kind].format(action=action, servers=servers, exc=exc))


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
