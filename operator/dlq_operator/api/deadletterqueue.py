"""DeadLetterQueue: one dead-letter topic for one source topic, with its retries and alerts."""

from __future__ import annotations

from enum import StrEnum
from typing import Self

from pydantic import ConfigDict, Field, model_validator

from dlq_operator import DLQ_TOPIC_SUFFIX, PARKED_TOPIC_SUFFIX, dlq_topic_for, parked_topic_for
from dlq_operator.api.common import (
    AGE_COLUMN,
    TOPIC_NAME_MAX_LENGTH,
    CelRule,
    Conditions,
    Duration,
    ObjectRef,
    PrinterColumn,
    Quantity,
    ResourceKind,
    SpecModel,
    StatusModel,
    Timestamp,
    TopicName,
    cel_rules,
    defaulted_object,
    immutable,
    not_internal_topic,
    observed_generation_field,
    refuse_internal_topic,
)

# The parked topic is named after the DLQ topic, and both must fit Kafka's limit.
DLQ_TOPIC_NAME_MAX_LENGTH = TOPIC_NAME_MAX_LENGTH - len(PARKED_TOPIC_SUFFIX)


def _topic_name_cel(spec: str) -> str:
    """CEL for the dead-letter topic in effect: spec.topic.name, else <sourceTopic>.dlq."""
    return (
        f"(has({spec}.topic.name) ? {spec}.topic.name : {spec}.sourceTopic + '{DLQ_TOPIC_SUFFIX}')"
    )


PARTITIONS_NEVER_SHRINK = CelRule(
    "self >= oldSelf", "spec.topic.partitions cannot decrease (Kafka cannot remove partitions)"
)
PARKED_PARTITIONS_NEVER_SHRINK = CelRule(
    "self >= oldSelf",
    "spec.topic.parked.partitions cannot decrease (Kafka cannot remove partitions)",
)
RETENTION_NOT_IN_CONFIG = CelRule(
    "!('retention.ms' in self)",
    "spec.topic.config must not set retention.ms; use spec.topic.retentionMs",
)
# Topic configs a DLQ may set: how much is kept and how it is stored. Not cleanup.policy
# (compaction drops dead letters), nor anything that changes durability or the broker's
# behaviour for other topics' clients.
TOPIC_CONFIG_KEYS = (
    "compression.type",
    "max.message.bytes",
    "message.timestamp.type",
    "retention.bytes",
    "segment.bytes",
    "segment.ms",
)
CONFIG_KEYS_ALLOWED = CelRule(
    "self.all(key, key in [" + ", ".join(f"'{key}'" for key in TOPIC_CONFIG_KEYS) + "])",
    "spec.topic.config may only set " + ", ".join(TOPIC_CONFIG_KEYS) + " (retention.ms is "
    "spec.topic.retentionMs); remove the other keys",
)
CRITICAL_NOT_BELOW_WARN = CelRule(
    "self.criticalThreshold >= self.warnThreshold",
    "spec.alerting.criticalThreshold must be >= spec.alerting.warnThreshold",
    field_path=".criticalThreshold",
)
TOPIC_NAME_IMMUTABLE = CelRule(
    f"{_topic_name_cel('self')} == {_topic_name_cel('oldSelf')}",
    "spec.topic.name is immutable (it defaults to <sourceTopic>.dlq); "
    "create a new DeadLetterQueue to use another topic",
)
TOPIC_NAME_FITS_PARKED = CelRule(
    f"size({_topic_name_cel('self')}) <= {DLQ_TOPIC_NAME_MAX_LENGTH}",
    f"spec.topic.name (default <sourceTopic>.dlq) must be at most {DLQ_TOPIC_NAME_MAX_LENGTH} "
    f"characters, so that the parked topic <name>{PARKED_TOPIC_SUFFIX} fits Kafka's "
    f"{TOPIC_NAME_MAX_LENGTH}-character limit; set a shorter spec.topic.name",
)
TOPIC_NOT_SOURCE = CelRule(
    "!has(self.topic.name) || self.topic.name != self.sourceTopic",
    "spec.topic.name must differ from spec.sourceTopic; retries would loop forever",
    field_path=".topic.name",
)


class DeletionPolicy(StrEnum):
    """What happens to the Kafka topics when the DeadLetterQueue is deleted."""

    RETAIN = "Retain"
    DELETE = "Delete"


class AlertMetric(StrEnum):
    """Which count the alert thresholds are compared with."""

    UNRESOLVED = "unresolved"
    PENDING = "pending"
    PARKED = "parked"
    MESSAGES = "messages"


class AlertLevel(StrEnum):
    """How urgent the queue's state is.

    The value is the word of status, Events and payloads. Levels are ordered, so
    ``level > previous`` means "worse", and ``int(level)`` (0, 1, 2) is the value of the
    metric ``dlq_alert_level``.
    """

    OK = "OK"
    WARNING = "Warning"
    CRITICAL = "Critical"

    @property
    def label(self) -> str:
        """The word used in status, events and payloads."""
        return self.value

    @classmethod
    def from_label(cls, label: object) -> AlertLevel:
        """The level of a status word; anything unknown reads as OK."""
        return next((level for level in cls if level.value == label), cls.OK)

    def __int__(self) -> int:
        return _ALERT_LEVEL_ORDER[self]

    # By severity, not alphabetically as strings compare.
    def __lt__(self, other: str) -> bool:
        return int(self) < int(AlertLevel(other))

    def __le__(self, other: str) -> bool:
        return int(self) <= int(AlertLevel(other))

    def __gt__(self, other: str) -> bool:
        return int(self) > int(AlertLevel(other))

    def __ge__(self, other: str) -> bool:
        return int(self) >= int(AlertLevel(other))


_ALERT_LEVEL_ORDER = {level: rank for rank, level in enumerate(AlertLevel)}


class ParkedTopicSpec(SpecModel):
    """Overrides for the parked topic, where messages go once retries are exhausted."""

    retention_ms: int | None = Field(
        None,
        ge=-1,
        description="retention.ms of the parked topic; -1 keeps messages forever. "
        "Default: the same as spec.topic.retentionMs.",
    )
    partitions: int | None = Field(
        None,
        ge=1,
        le=10000,
        description="Partitions of the parked topic; can grow, never shrink. "
        "Default: the same as spec.topic.partitions.",
        json_schema_extra=cel_rules(PARKED_PARTITIONS_NEVER_SHRINK),
    )


class TopicSpec(SpecModel):
    """The Kafka dead-letter topic."""

    name: TopicName | None = Field(
        None,
        description="Name of the dead-letter topic; immutable. Default: <sourceTopic>.dlq. "
        "Another name must be granted to the namespace by the operator's topic grants.",
        json_schema_extra=cel_rules(not_internal_topic("spec.topic.name")),
    )
    adopt: bool = Field(
        False,
        description="Manage topics that exist already and that this DeadLetterQueue did not "
        "create. The operator then sets only retention.ms and the keys of spec.topic.config, "
        "keeps every other config of the topics, and never deletes them.",
    )
    partitions: int = Field(
        3,
        ge=1,
        le=10000,
        description="Number of partitions; can grow, never shrink.",
        json_schema_extra=cel_rules(PARTITIONS_NEVER_SHRINK),
    )
    replication_factor: int | None = Field(
        None,
        ge=1,
        le=32767,
        description="Replicas of each partition. Default: the broker's default.replication.factor.",
    )
    retention_ms: int = Field(
        604800000,
        ge=-1,
        description="How long messages are kept, in milliseconds (retention.ms); "
        "-1 keeps them forever. Default: 7 days.",
    )
    config: dict[str, str] = Field(
        {},
        description='Further topic configs, e.g. {"compression.type": "zstd"}: '
        + ", ".join(TOPIC_CONFIG_KEYS)
        + ".",
        json_schema_extra=cel_rules(RETENTION_NOT_IN_CONFIG, CONFIG_KEYS_ALLOWED),
    )
    parked: ParkedTopicSpec | None = Field(
        None, description="Overrides for the parked topic <name>.parked."
    )

    @model_validator(mode="after")
    def _config_keys_allowed(self) -> Self:
        if "retention.ms" in self.config:
            raise ValueError(RETENTION_NOT_IN_CONFIG.message)
        if not set(self.config) <= set(TOPIC_CONFIG_KEYS):
            raise ValueError(CONFIG_KEYS_ALLOWED.message)
        refuse_internal_topic("spec.topic.name", self.name)
        return self


class ResourceRequirements(SpecModel):
    """Compute resources of a container, as in a Pod spec."""

    requests: dict[str, Quantity] | None = Field(
        None, description='Minimum resources, e.g. {"cpu": "100m", "memory": "128Mi"}.'
    )
    limits: dict[str, Quantity] | None = Field(
        None, description='Maximum resources, e.g. {"memory": "256Mi"}.'
    )


class RetrySpec(SpecModel):
    """Automatic retries by a worker Deployment that republishes messages to the source topic."""

    policy_ref: ObjectRef | None = Field(
        None,
        description="The RetryPolicy to follow. Without it nothing is retried and no worker runs.",
    )
    replicas: int = Field(1, ge=0, le=100, description="Number of retry worker pods.")
    resources: ResourceRequirements | None = Field(
        None,
        description="Compute resources of each retry worker pod. Default: the operator's "
        "(chart value worker.resources).",
    )
    kafka_secret_ref: ObjectRef | None = Field(
        None,
        description="A Secret in this namespace with the workers' own Kafka credentials, "
        "under the keys username and password (SASL), tls.crt and tls.key (a client "
        "certificate), ca.crt (the brokers' CA). Without it workers connect without "
        "credentials, unless the operator shares its own (chart value "
        "worker.shareOperatorCredentials).",
    )


class AlertingSpec(SpecModel):
    """When the queue's size raises warnings and critical alerts."""

    model_config = ConfigDict(json_schema_extra=cel_rules(CRITICAL_NOT_BELOW_WARN))

    enabled: bool = Field(True, description="Whether alerts are raised at all.")
    metric: AlertMetric = Field(
        AlertMetric.UNRESOLVED,
        description="Which status count the thresholds apply to: unresolved (what still "
        "needs somebody), pending (not yet retried), parked, or messages (all retained).",
    )
    warn_threshold: int = Field(
        10, ge=0, description="The alert level is Warning from this many messages on."
    )
    critical_threshold: int = Field(
        50, ge=0, description="The alert level is Critical from this many messages on."
    )
    renotify_interval: Duration = Field(
        "1h",
        description="How often a standing alert is sent again, e.g. 30m or 1h.",
    )

    @model_validator(mode="after")
    def _critical_not_below_warn(self) -> Self:
        if self.critical_threshold < self.warn_threshold:
            raise ValueError(CRITICAL_NOT_BELOW_WARN.message)
        return self


class DeadLetterQueueSpec(SpecModel):
    """The desired dead-letter queue of one source topic."""

    model_config = ConfigDict(
        json_schema_extra=cel_rules(TOPIC_NAME_IMMUTABLE, TOPIC_NAME_FITS_PARKED, TOPIC_NOT_SOURCE)
    )

    source_topic: TopicName = Field(
        description="The topic whose failed messages this queue holds; immutable.",
        json_schema_extra=cel_rules(
            immutable("spec.sourceTopic", "create a new DeadLetterQueue to use another topic"),
            not_internal_topic("spec.sourceTopic"),
        ),
    )
    topic: TopicSpec = defaulted_object(TopicSpec, "The Kafka dead-letter topic.")
    retry: RetrySpec | None = Field(
        None, description="Automatic retries. Without it failed messages wait for a person."
    )
    alerting: AlertingSpec = defaulted_object(AlertingSpec, "When the queue's size raises alerts.")
    deletion_policy: DeletionPolicy = Field(
        DeletionPolicy.RETAIN,
        description="Retain keeps the Kafka topics when this object is deleted; "
        "Delete deletes them and every message in them.",
    )

    @property
    def topic_name(self) -> str:
        """The dead-letter topic in effect."""
        return self.topic.name or dlq_topic_for(self.source_topic)

    @property
    def parked_topic_name(self) -> str:
        """Where messages go once retries are exhausted."""
        return parked_topic_for(self.topic_name)

    @model_validator(mode="after")
    def _topic_name_usable(self) -> Self:
        refuse_internal_topic("spec.sourceTopic", self.source_topic)
        if self.topic.name == self.source_topic:
            raise ValueError(TOPIC_NOT_SOURCE.message)
        if len(self.topic_name) > DLQ_TOPIC_NAME_MAX_LENGTH:
            raise ValueError(TOPIC_NAME_FITS_PARKED.message)
        return self


class TopicStatus(StatusModel):
    """The dead-letter topic as last seen in Kafka."""

    name: str | None = Field(None, description="Name of the topic.")
    partitions: int | None = Field(None, description="Number of partitions.")
    replication_factor: int | None = Field(None, description="Replicas of each partition.")
    retention_ms: int | None = Field(None, description="retention.ms in effect.")


class DeadLetterQueueStatus(StatusModel):
    """The observed state of a DeadLetterQueue, written by the operator."""

    observed_generation: int | None = observed_generation_field()
    topic: TopicStatus | None = Field(None, description="The dead-letter topic in Kafka.")
    parked_topic: str | None = Field(None, description="Name of the parked topic.")
    created_topics: list[str] | None = Field(
        None,
        description="Topics this DeadLetterQueue created; deletionPolicy Delete deletes only "
        "these.",
    )
    managed_configs: list[str] | None = Field(
        None,
        description="Topic configs the operator sets; of an adopted topic, only these are "
        "ever changed or removed.",
    )
    worker_deployment: str | None = Field(
        None, description="Name of the retry worker Deployment, when retries are on."
    )
    messages: int | None = Field(
        None, description="Records the broker still retains on the dead-letter topic."
    )
    pending: int | None = Field(
        None, description="Records the retry worker has not handled yet; 0 when retries are off."
    )
    parked: int | None = Field(
        None, description="Records on the parked topic that nobody has dealt with."
    )
    unresolved: int | None = Field(
        None,
        description="Records that still need somebody: pending + parked with retries on; "
        "unresolved dead-letter records + parked with retries off.",
    )
    oldest_unresolved_at: Timestamp | None = Field(
        None,
        description="When the oldest unresolved message was dead-lettered (its age is the "
        "metric dlq_oldest_unresolved_age_seconds).",
    )
    inflow_per_minute: float | None = Field(
        None, description="New dead-letter records per minute since the previous check."
    )
    alert_level: AlertLevel | None = Field(None, description="Current alert level.")
    last_checked_at: Timestamp | None = Field(None, description="When the counts were measured.")
    last_notified_at: Timestamp | None = Field(None, description="When an alert was last sent.")
    conditions: Conditions = Field(default_factory=list)


_READY = '.status.conditions[?(@.type=="Ready")]'
_WORKER_READY = '.status.conditions[?(@.type=="WorkerReady")]'

DEAD_LETTER_QUEUE = ResourceKind(
    kind="DeadLetterQueue",
    plural="deadletterqueues",
    short_names=("dlq",),
    description="A dead-letter queue for one Kafka topic: the dead-letter topic, "
    "optional retries, and alerts on its size.",
    spec=DeadLetterQueueSpec,
    status=DeadLetterQueueStatus,
    printer_columns=(
        PrinterColumn(
            name="Source",
            json_path=".spec.sourceTopic",
            type="string",
            description="The source topic.",
        ),
        PrinterColumn(
            name="Topic",
            json_path=".status.topic.name",
            type="string",
            description="The dead-letter topic.",
        ),
        PrinterColumn(
            name="Partitions",
            json_path=".status.topic.partitions",
            type="integer",
            description="Its partitions.",
        ),
        PrinterColumn(
            name="Unresolved",
            json_path=".status.unresolved",
            type="integer",
            description="Messages needing attention.",
        ),
        PrinterColumn(
            name="Alert",
            json_path=".status.alertLevel",
            type="string",
            description="OK, Warning or Critical.",
        ),
        PrinterColumn(
            name="Worker",
            json_path=f"{_WORKER_READY}.reason",
            type="string",
            description="The retry worker: Available, Progressing, Unavailable or RetryDisabled.",
        ),
        PrinterColumn(
            name="Ready",
            json_path=f"{_READY}.status",
            type="string",
            description="Whether the queue is reconciled.",
        ),
        PrinterColumn(
            name="Reason",
            json_path=f"{_READY}.reason",
            type="string",
            description="Why it is (not) ready.",
            priority=1,
        ),
        AGE_COLUMN,
    ),
)
