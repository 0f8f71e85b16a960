"""One validated settings object for every dlq-operator process.

Values come from the environment (prefix ``DLQ_``), e.g. ``DLQ_KAFKA_BOOTSTRAP_SERVERS``.
Secrets such as SASL passwords can instead be read from mounted files
(``DLQ_KAFKA_SASL_PASSWORD_FILE``) so they never appear in a pod spec.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import Field, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


class KafkaSettings(BaseSettings):
    """How to reach the Kafka cluster that holds the dead-letter topics."""

    model_config = SettingsConfigDict(env_prefix="DLQ_KAFKA_", extra="ignore")

    bootstrap_servers: str = Field("localhost:9092", description="Comma-separated host:port list.")
    security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = "PLAINTEXT"
    sasl_mechanism: Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"] | None = None
    sasl_username: str | None = None
    sasl_password: str | None = None
    sasl_password_file: Path | None = None
    ssl_cafile: Path | None = None
    ssl_certfile: Path | None = None
    ssl_keyfile: Path | None = None
    request_timeout_ms: int = Field(15000, ge=1000)

    @model_validator(mode="after")
    def _read_password_file(self) -> KafkaSettings:
        if self.sasl_password is None and self.sasl_password_file is not None:
            self.sasl_password = self.sasl_password_file.read_text().strip()
        return self

    def client_config(self) -> dict[str, object]:
        """Keyword arguments shared by every kafka-python client."""
        config: dict[str, object] = {
            "bootstrap_servers": self.bootstrap_servers.split(","),
            "security_protocol": self.security_protocol,
            "request_timeout_ms": self.request_timeout_ms,
        }
        if self.sasl_mechanism:
            config |= {
                "sasl_mechanism": self.sasl_mechanism,
                "sasl_plain_username": self.sasl_username,
                "sasl_plain_password": self.sasl_password,
            }
        for name in ("ssl_cafile", "ssl_certfile", "ssl_keyfile"):
            value = getattr(self, name)
            if value is not None:
                config[name] = str(value)
        return config


class Settings(BaseSettings):
    """Settings of the operator process (``dlq-operator run``)."""

    model_config = SettingsConfigDict(env_prefix="DLQ_", extra="ignore")

    kafka: KafkaSettings = Field(default_factory=KafkaSettings)
    namespaces: list[str] = Field(
        default_factory=list, description="Namespaces to watch; empty means all namespaces."
    )
    worker_image: str = Field("ghcr.io/orion/dlq-operator:latest", description="Image of retry workers.")
    worker_image_pull_policy: Literal["Always", "IfNotPresent", "Never"] = "IfNotPresent"
    health_port: int = Field(8080, ge=0, le=65535, description="Liveness endpoint; 0 disables it.")
    metrics_port: int = Field(9090, ge=0, le=65535, description="Prometheus /metrics; 0 disables it.")
    monitor_interval_seconds: float = Field(60.0, gt=0)
    kafka_retry_delay_seconds: float = Field(10.0, gt=0, description="First delay after a Kafka error.")
    log_format: Literal["plain", "full", "json"] = "plain"


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()
