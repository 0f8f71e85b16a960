"""ReprocessRequest: replay selected dead messages, once, with its progress kept in status."""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated, Self

from pydantic import AfterValidator, ConfigDict, Field, model_validator

from dlq_operator.api.common import (
    AGE_COLUMN,
    CelRule,
    Conditions,
    ObjectRef,
    PrinterColumn,
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
    unique_items,
)

_RECREATE = "create a new ReprocessRequest"

TO_OFFSET_NOT_BELOW_FROM = CelRule(
    "!has(self.fromOffset) || !has(self.toOffset) || self.toOffset >= self.fromOffset",
    "spec.selector.toOffset must be >= spec.selector.fromOffset",
    field_path=".toOffset",
)
# since/until are date-time strings, which CEL already sees as timestamps.
UNTIL_AFTER_SINCE = CelRule(
    "!has(self.since) || !has(self.until) || self.until > self.since",
    "spec.selector.until must be after spec.selector.since",
    field_path=".until",
)


class ReprocessSource(StrEnum):
    """Which topic messages are replayed from."""

    DLQ = "dlq"
    PARKED = "parked"


class ReprocessPhase(StrEnum):
    """Where a replay is in its life."""

    PENDING = "Pending"
    RUNNING = "Running"
    SUCCEEDED = "Succeeded"
    FAILED = "Failed"
    CANCELLED = "Cancelled"


# A request in one of these phases is over and never runs again.
TERMINAL_PHASES = frozenset(
    {ReprocessPhase.SUCCEEDED, ReprocessPhase.FAILED, ReprocessPhase.CANCELLED}
)


class MessageSelector(SpecModel):
    """Which messages to replay; every criterion given must match. Empty selects all."""

    model_config = ConfigDict(
        json_schema_extra=cel_rules(TO_OFFSET_NOT_BELOW_FROM, UNTIL_AFTER_SINCE)
    )

    partitions: Annotated[
        list[Annotated[int, Field(ge=0)]] | None, AfterValidator(unique_items)
    ] = Field(
        None,
        min_length=1,
        max_length=10000,
        description="Only these partitions of the topic replayed from. Default: all.",
        json_schema_extra={"x-kubernetes-list-type": "set"},
    )
    from_offset: int | None = Field(
        None, ge=0, description="Only offsets from this one on (inclusive), in each partition."
    )
    to_offset: int | None = Field(
        None, ge=0, description="Only offsets up to this one (inclusive), in each partition."
    )
    since: Timestamp | None = Field(
        None,
        description="Only messages put on the dead-letter topic at or after this time (RFC 3339).",
    )
    until: Timestamp | None = Field(
        None, description="Only messages put on the dead-letter topic before this time (RFC 3339)."
    )
    error_codes: Annotated[
        list[Annotated[str, Field(min_length=1, max_length=256)]] | None,
        AfterValidator(unique_items),
    ] = Field(
        None,
        min_length=1,
        max_length=100,
        description="Only messages with one of these error codes (the error-code header).",
        json_schema_extra={"x-kubernetes-list-type": "set"},
    )
    keys: Annotated[
        list[Annotated[str, Field(max_length=4096)]] | None, AfterValidator(unique_items)
    ] = Field(
        None,
        min_length=1,
        max_length=1000,
        description="Only messages with one of these keys (as UTF-8 text).",
        json_schema_extra={"x-kubernetes-list-type": "set"},
    )
    headers: dict[str, Annotated[str, Field(max_length=1024)]] | None = Field(
        None,
        min_length=1,
        max_length=32,
        description="Only messages that carry every one of these headers with exactly this value.",
    )
    max_messages: int | None = Field(
        None, ge=1, description="Replay at most this many messages. Default: no limit."
    )

    @model_validator(mode="after")
    def _ranges_in_order(self) -> Self:
        if (
            self.from_offset is not None
            and self.to_offset is not None
            and self.to_offset < self.from_offset
        ):
            raise ValueError(TO_OFFSET_NOT_BELOW_FROM.message)
        if self.since is not None and self.until is not None and self.until <= self.since:
            raise ValueError(UNTIL_AFTER_SINCE.message)
        return self


class ReprocessTarget(SpecModel):
    """Where replayed messages are produced."""

    topic: TopicName | None = Field(
        None,
        description="Produce every message to this topic: the DeadLetterQueue's sourceTopic, "
        "or a topic the operator's topic grants give the namespace. Default: the sourceTopic.",
        json_schema_extra=cel_rules(not_internal_topic("spec.target.topic")),
    )
    reset_retry_count: bool = Field(
        True, description="Start the retry count of replayed messages again from 0."
    )

    @model_validator(mode="after")
    def _not_internal(self) -> Self:
        refuse_internal_topic("spec.target.topic", self.topic)
        return self


class RateLimit(SpecModel):
    """How fast messages are replayed."""

    messages_per_second: float = Field(
        0.0, ge=0, description="Upper bound of messages produced per second; 0 means unthrottled."
    )


class ReprocessRequestSpec(SpecModel):
    """The replay to run. Immutable once created, except suspend."""

    dead_letter_queue_ref: ObjectRef = Field(
        description="The DeadLetterQueue to replay from; immutable.",
        json_schema_extra=cel_rules(immutable("spec.deadLetterQueueRef", _RECREATE)),
    )
    source: ReprocessSource = Field(
        ReprocessSource.DLQ,
        description="Replay from the dead-letter topic (dlq) or from its parked topic (parked); "
        "immutable.",
        json_schema_extra=cel_rules(immutable("spec.source", _RECREATE)),
    )
    selector: MessageSelector = defaulted_object(
        MessageSelector,
        "Which messages to replay; immutable.",
        immutable("spec.selector", _RECREATE),
    )
    target: ReprocessTarget = defaulted_object(
        ReprocessTarget,
        "Where replayed messages go; immutable.",
        immutable("spec.target", _RECREATE),
    )
    rate_limit: RateLimit = defaulted_object(
        RateLimit,
        "How fast messages are replayed; immutable.",
        immutable("spec.rateLimit", _RECREATE),
    )
    dry_run: bool = Field(
        False,
        description="Only count matching messages and show samples; produce nothing. Immutable.",
        json_schema_extra=cel_rules(immutable("spec.dryRun", _RECREATE)),
    )
    suspend: bool = Field(
        False, description="Pause the replay; set back to false to go on from the checkpoint."
    )


class PartitionCheckpoint(StatusModel):
    """How far the replay got in one partition."""

    partition: int = Field(ge=0, description="Partition of the topic replayed from.")
    next_offset: int = Field(ge=0, description="The next offset to look at.")
    end_offset: int = Field(
        ge=0, description="The offset (exclusive) where the replay of this partition stops."
    )


class ReplaySample(StatusModel):
    """A message a dry run would replay."""

    partition: int = Field(description="Partition of the message.")
    offset: int = Field(description="Offset of the message.")
    key: str | None = Field(None, description="Key of the message, as UTF-8 text.")
    error_code: str | None = Field(None, description="Its error code.")
    original_topic: str | None = Field(None, description="The topic it would be replayed to.")


class ReprocessRequestStatus(StatusModel):
    """The observed state of a ReprocessRequest, written by the operator; survives restarts."""

    observed_generation: int | None = observed_generation_field()
    phase: ReprocessPhase | None = Field(None, description="Where the replay is in its life.")
    matched: int | None = Field(None, description="Messages that matched the selector so far.")
    replayed: int | None = Field(None, description="Messages produced to their target.")
    skipped: int | None = Field(
        None, description="Messages looked at that did not match the selector."
    )
    failed: int | None = Field(None, description="Messages that could not be replayed.")
    checkpoint: list[PartitionCheckpoint] | None = Field(
        None,
        description="Progress per partition, so that a restarted operator goes on from here.",
        json_schema_extra={
            "x-kubernetes-list-type": "map",
            "x-kubernetes-list-map-keys": ["partition"],
        },
    )
    started_at: Timestamp | None = Field(None, description="When the replay started.")
    completed_at: Timestamp | None = Field(None, description="When the replay ended.")
    message: str | None = Field(None, description="A human-readable summary of the outcome.")
    samples: list[ReplaySample] | None = Field(
        None, description="A few of the matching messages, in a dry run."
    )
    conditions: Conditions = Field(default_factory=list)


REPROCESS_REQUEST = ResourceKind(
    kind="ReprocessRequest",
    plural="reprocessrequests",
    short_names=("rpr",),
    description="A one-off replay of selected dead messages from a DeadLetterQueue, "
    "rate-limited, optionally as a dry run.",
    spec=ReprocessRequestSpec,
    status=ReprocessRequestStatus,
    printer_columns=(
        PrinterColumn(
            name="DLQ",
            json_path=".spec.deadLetterQueueRef.name",
            type="string",
            description="The DeadLetterQueue.",
        ),
        PrinterColumn(
            name="Phase",
            json_path=".status.phase",
            type="string",
            description="Where the replay is.",
        ),
        PrinterColumn(
            name="Replayed",
            json_path=".status.replayed",
            type="integer",
            description="Messages replayed.",
        ),
        PrinterColumn(
            name="Matched",
            json_path=".status.matched",
            type="integer",
            description="Messages matched.",
        ),
        PrinterColumn(
            name="DryRun",
            json_path=".spec.dryRun",
            type="boolean",
            description="Whether nothing is produced.",
            priority=1,
        ),
        AGE_COLUMN,
    ),
)
