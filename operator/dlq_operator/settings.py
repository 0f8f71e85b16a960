"""One validated settings object for every dlq-operator process.

Values come from the environment (prefix ``DLQ_``), e.g. ``DLQ_KAFKA_BOOTSTRAP_SERVERS``.
Kafka credentials come from the files of a mounted Secret (``DLQ_KAFKA_CREDENTIALS_DIR``,
see :data:`CREDENTIAL_FILES`), so they never appear in a pod spec; passwords are
``SecretStr``, so they never appear in a repr or a log either.
"""

from __future__ import annotations

import json
from fnmatch import fnmatchcase
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from dlq_operator.logs import keep_secret

# The keys of a Kafka credentials Secret (the usual ones of basic-auth and TLS Secrets, plus
# what an identity may need to connect differently), and the setting each file gives.
CREDENTIAL_FILES = {
    "username": "sasl_username",
    "password": "sasl_password",
    "ca.crt": "ssl_cafile",
    "tls.crt": "ssl_certfile",
    "tls.key": "ssl_keyfile",
    "bootstrap.servers": "bootstrap_servers",
    "security.protocol": "security_protocol",
    "sasl.mechanism": "sasl_mechanism",
}
_PATH_SETTINGS = {"ssl_cafile", "ssl_certfile", "ssl_keyfile"}


class KafkaSettings(BaseSettings):
    """How to reach the Kafka cluster that holds the dead-letter topics."""

    model_config = SettingsConfigDict(env_prefix="DLQ_KAFKA_", extra="ignore")

    bootstrap_servers: str = Field("localhost:9092", description="Comma-separated host:port list.")
    security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = "PLAINTEXT"
    sasl_mechanism: Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"] | None = None
    sasl_username: str | None = None
    sasl_password: SecretStr | None = None
    ssl_cafile: Path | None = None
    ssl_certfile: Path | None = None
    ssl_keyfile: Path | None = None
    credentials_dir: Path | None = Field(
        None,
        description="A mounted Secret with the keys of CREDENTIAL_FILES; each file present "
        "sets its setting, over the environment.",
    )
    request_timeout_ms: int = Field(15000, ge=1000)

    @model_validator(mode="before")
    @classmethod
    def _read_credentials(cls, data: Any) -> Any:
        directory = data.get("credentials_dir") if isinstance(data, dict) else None
        if not directory:
            return data
        for file_name, setting in CREDENTIAL_FILES.items():
            path = Path(directory) / file_name
            if path.is_file():
                data[setting] = str(path) if setting in _PATH_SETTINGS else path.read_text().strip()
        return data

    def client_config(self) -> dict[str, object]:
        """Keyword arguments shared by every kafka-python client."""
        config: dict[str, object] = {
            "bootstrap_servers": self.bootstrap_servers.split(","),
            "security_protocol": self.security_protocol,
            "request_timeout_ms": self.request_timeout_ms,
        }
        # A mechanism means nothing without SASL (an mTLS identity beside SASL ones).
        if self.sasl_mechanism and self.security_protocol.startswith("SASL_"):
            password = (
                keep_secret(self.sasl_password.get_secret_value()) if self.sasl_password else None
            )
            config |= {
                "sasl_mechanism": self.sasl_mechanism,
                "sasl_plain_username": self.sasl_username,
                "sasl_plain_password": password,
            }
        for name in ("ssl_cafile", "ssl_certfile", "ssl_keyfile"):
            value = getattr(self, name)
            if value is not None:
                config[name] = str(value)
        return config


class TopicGrant(BaseModel):
    """Topics that the DLQs and ReprocessRequests of some namespaces may use beyond their
    own: a custom dead-letter topic name, or a replay target other than the source topic."""

    namespaces: list[str] = Field(min_length=1, description="Namespace glob patterns.")
    topics: list[str] = Field(min_length=1, description="Topic glob patterns.")


class Settings(BaseSettings):
    """Settings of the operator process (``dlq-operator run``)."""

    model_config = SettingsConfigDict(env_prefix="DLQ_", extra="ignore")

    kafka: KafkaSettings = Field(default_factory=KafkaSettings)
    namespaces: list[str] = Field(
        default_factory=list, description="Namespaces to watch; empty means all namespaces."
    )
    worker_image: str = Field(
        "ghcr.io/orion/dlq-operator:latest", description="Image of retry workers."
    )
    worker_image_pull_policy: Literal["Always", "IfNotPresent", "Never"] = "IfNotPresent"
    health_port: int = Field(8080, ge=0, le=65535, description="Liveness endpoint; 0 disables it.")
    metrics_port: int = Field(
        9090, ge=0, le=65535, description="Prometheus /metrics; 0 disables it."
    )
    shared_kafka_secret: str | None = Field(
        None,
        description="Retry workers of DLQs without spec.retry.kafkaSecretRef mount a Secret "
        "of this name from their namespace: the operator's own credentials, shared on "
        "purpose. Unset, such workers connect without credentials.",
    )
    worker_network_policy: dict[str, Any] | None = Field(
        None,
        description='As JSON, {} or {"egress": [NetworkPolicyEgressRule, ...]}: each retry '
        "worker gets a NetworkPolicy that admits traffic only to its health and metrics "
        "ports and, with egress rules, lets it reach only those (and DNS). Unset: none.",
    )
    worker_resources: dict[str, Any] = Field(
        default_factory=dict,
        description="Resources of retry worker containers whose DLQ sets none, as JSON.",
    )
    monitor_interval_seconds: float = Field(60.0, gt=0, description="Depth check period.")
    alert_sinks: list[dict[str, Any]] = Field(
        default_factory=list,
        description="Webhook sinks for depth alerts, as JSON: "
        '[{"kind": "alertmanager", "url_file": "/etc/dlq-operator/sinks/am-url"}, ...]; '
        "kinds generic, alertmanager and slack.",
    )
    resync_interval_seconds: float = Field(
        300.0, gt=0, description="How often topics are compared with their spec (drift)."
    )
    kafka_retry_delay_seconds: float = Field(
        5.0, gt=0, description="First delay after a Kafka error."
    )
    kafka_retry_max_delay_seconds: float = Field(120.0, gt=0)
    topic_grants: list[TopicGrant] = Field(
        default_factory=list,
        description='As JSON: [{"namespaces": ["team-a"], "topics": ["team-a.*"]}]. Without '
        "a grant, a DLQ's topic is <sourceTopic>.dlq and replays go to the sourceTopic.",
    )
    max_partitions: int = Field(
        100, ge=1, le=10000, description="Most partitions a DLQ's topics may have."
    )

    def topic_granted(self, namespace: str, topic: str) -> bool:
        """Whether a grant gives ``namespace`` the use of ``topic``."""
        return any(
            any(fnmatchcase(namespace, pattern) for pattern in grant.namespaces)
            and any(fnmatchcase(topic, pattern) for pattern in grant.topics)
            for grant in self.topic_grants
        )

    def topic_refusal(
        self, namespace: str, field: str, topic: str, own: str, whose: str = ""
    ) -> str | None:
        """Why ``namespace`` may not name ``topic`` in ``field`` (None when it may): only its
        own topic ``own`` (``whose`` says whose it is) or one a grant gives it is allowed."""
        if topic == own or self.topic_granted(namespace, topic):
            return None
        return (
            f"{field} {topic} is not {own}{whose}, and no topic grant of the operator gives "
            f"namespace {namespace} that topic. Leave {field} out, or ask the platform team for "
            "a grant (chart value tenancy.topicGrants)."
        )


class WorkerSettings(BaseSettings):
    """Settings of one retry worker (``dlq-operator worker``), written by the operator into
    the worker Deployment's environment (prefix ``DLQ_WORKER_``)."""

    model_config = SettingsConfigDict(env_prefix="DLQ_WORKER_", extra="ignore")

    source_topic: str
    dlq_topic: str
    parked_topic: str
    group_id: str
    max_retries: int = Field(3, ge=0)
    initial_delay_seconds: float = Field(1.0, ge=0)
    max_delay_seconds: float = Field(60.0, ge=0)
    multiplier: float = Field(2.0, ge=1)
    jitter: float = Field(0.0, ge=0, le=1)
    non_retryable_error_codes: list[str] = Field(default_factory=list)
    schedule_capacity: int = Field(
        1_000_000, ge=1, description="Records held waiting for their backoff, all partitions."
    )
    health_port: int = Field(8080, ge=0, le=65535)
    metrics_port: int = Field(9090, ge=0, le=65535)

    def environment(self) -> dict[str, str]:
        """The environment that recreates these settings in another process."""
        env = {}
        for name, value in self.model_dump(mode="json").items():
            key = f"DLQ_WORKER_{name.upper()}"
            env[key] = json.dumps(value) if isinstance(value, list) else str(value)
        return env


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()
