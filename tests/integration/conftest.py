"""Project Kafka clients on the platform's broker, for the adapter tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from dlq_operator.kafka import RecordProducer, TopicAdmin
from dlq_operator.settings import KafkaSettings


@pytest.fixture
def settings(kafka_bootstrap: str) -> KafkaSettings:
    return KafkaSettings(bootstrap_servers=kafka_bootstrap, request_timeout_ms=5000)


@pytest.fixture
def admin(settings: KafkaSettings) -> Iterator[TopicAdmin]:
    with TopicAdmin(settings) as admin:
        yield admin


@pytest.fixture
def producer(settings: KafkaSettings) -> Iterator[RecordProducer]:
    with RecordProducer(settings, client_id="tests") as producer:
        yield producer
