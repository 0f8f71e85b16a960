"""Secrets never reach a log line, whoever logs them."""

from __future__ import annotations

import io
import logging

from dlq_operator.logs import REDACTED, RedactSecrets, keep_secret
from dlq_operator.settings import KafkaSettings


def logged(logger_name: str, message: str, *args: object) -> str:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.addFilter(RedactSecrets())
    logger = logging.getLogger(logger_name)
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    try:
        logger.debug(message, *args)
    finally:
        logger.removeHandler(handler)
    return stream.getvalue()


def test_a_client_configuration_is_logged_without_its_password() -> None:
    kafka = KafkaSettings(
        security_protocol="SASL_SSL",
        sasl_mechanism="SCRAM-SHA-512",
        sasl_username="team-a",
        sasl_password="pa55-w0rd-in-config",
    )
    config = kafka.client_config()
    # As kafka-python's clients log their configuration at debug level.
    line = logged("kafka.admin.client", "Starting KafkaAdminClient with configuration: %s", config)
    assert "pa55-w0rd-in-config" not in line
    assert f"'sasl_plain_password': '{REDACTED}'" in line and "team-a" in line


def test_a_registered_secret_is_replaced_in_any_message() -> None:
    token = keep_secret("https://hooks.example/T0KEN-abc")
    line = logged("httpx", "POST %s failed", token)
    assert line.strip() == f"POST {REDACTED} failed"
    assert logged("other", "nothing secret here").strip() == "nothing secret here"
