"""kafka-python's exceptions become the project's by one table."""

import inspect

import kafka.errors as kafka_errors
import pytest

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
from dlq_operator.kafka.errors import KAFKA_EXC_MAP, translate, translated

SERVERS = "broker:9092"


def test_every_kafka_python_error_becomes_a_project_error() -> None:
    kinds = [
        kind
        for kind in vars(kafka_errors).values()
        if inspect.isclass(kind) and issubclass(kind, kafka_errors.KafkaError)
    ]
    assert len(kinds) > 100
    for kind in kinds:
        error = translate(kind("detail"), "act", SERVERS)
        assert isinstance(error, DlqError), kind
        assert str(error).startswith("act: ") and "detail" in str(error), kind


def test_the_table_names_only_project_errors() -> None:
    assert all(issubclass(target, DlqError) for target in KAFKA_EXC_MAP.values())


@pytest.mark.parametrize(
    ("kafka_error", "expected"),
    [
        # Retriable for kafka-python, yet a missing topic: the most specific entry wins.
        (kafka_errors.UnknownTopicOrPartitionError, TopicNotFound),
        (kafka_errors.UnknownTopicIdError, TopicNotFound),
        (kafka_errors.MessageSizeTooLargeError, RecordTooLarge),
        (kafka_errors.RecordListTooLargeError, RecordTooLarge),
        (kafka_errors.InvalidRecordError, RecordRejected),
        (kafka_errors.InvalidTimestampError, RecordRejected),
        (kafka_errors.PolicyViolationError, TopicOperationRefused),
        (kafka_errors.TopicAlreadyExistsError, TopicOperationRefused),
        (kafka_errors.InvalidPartitionsError, TopicOperationRefused),
        (kafka_errors.KafkaConnectionError, KafkaUnavailable),
        (kafka_errors.KafkaTimeoutError, KafkaUnavailable),
        (kafka_errors.NodeNotReadyError, KafkaUnavailable),
        (kafka_errors.NotCoordinatorError, KafkaUnavailable),
        (kafka_errors.BrokerNotAvailableError, KafkaUnavailable),
        (kafka_errors.UnknownBrokerIdError, KafkaUnavailable),
        (kafka_errors.KafkaConfigurationError, ConfigurationError),
        (kafka_errors.TopicAuthorizationFailedError, KafkaError),
        (kafka_errors.KafkaError, KafkaError),
    ],
)
def test_each_kafka_error_as_the_project_error_it_means(
    kafka_error: type[kafka_errors.KafkaError], expected: type[DlqError]
) -> None:
    assert type(translate(kafka_error("x"), "act", SERVERS)) is expected


@pytest.mark.parametrize(
    ("kafka_error", "message"),
    [
        (
            kafka_errors.KafkaConnectionError("gone"),
            "produce to t: Kafka at broker:9092 is unavailable (KafkaConnectionError: gone)",
        ),
        (
            kafka_errors.UnknownTopicOrPartitionError("t"),
            "produce to t: topic or partition does not exist ([Error 3] "
            "UnknownTopicOrPartitionError: t)",
        ),
        (
            kafka_errors.MessageSizeTooLargeError("big"),
            "produce to t: record too large ([Error 10] MessageSizeTooLargeError: big)",
        ),
        (
            kafka_errors.InvalidRecordError("bad"),
            "produce to t: record refused ([Error 87] InvalidRecordError: bad)",
        ),
        (
            kafka_errors.PolicyViolationError("no"),
            "produce to t: refused by the broker ([Error 44] PolicyViolationError: no)",
        ),
        (
            kafka_errors.KafkaConfigurationError("typo"),
            "produce to t: invalid Kafka client configuration (KafkaConfigurationError: typo)",
        ),
        (
            kafka_errors.TopicAuthorizationFailedError("t"),
            "produce to t: [Error 29] TopicAuthorizationFailedError: t",
        ),
    ],
)
def test_messages_say_what_was_done_and_what_kafka_said(
    kafka_error: kafka_errors.KafkaError, message: str
) -> None:
    assert str(translate(kafka_error, "produce to t", SERVERS)) == message


def test_a_translated_block_raises_the_project_error_from_the_kafka_one() -> None:
    cause = kafka_errors.KafkaConnectionError()
    with pytest.raises(KafkaUnavailable) as caught, translated("connect", SERVERS):
        raise cause
    assert caught.value.__cause__ is cause


def test_a_translated_block_lets_other_errors_through() -> None:
    with pytest.raises(KeyError), translated("connect", SERVERS):
        raise KeyError("not Kafka's")
