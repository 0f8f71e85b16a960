"""RetryPolicy: how often and how patiently dead messages are retried; shared by many DLQs."""

from __future__ import annotations

from typing import Annotated, Self

from pydantic import AfterValidator, ConfigDict, Field, model_validator

from dlq_operator.api.common import (
    AGE_COLUMN,
    CelRule,
    Conditions,
    Duration,
    PrinterColumn,
    ResourceKind,
    SpecModel,
    StatusModel,
    cel_rules,
    defaulted_object,
    observed_generation_field,
    parse_duration,
    unique_items,
)

MAX_DELAY_NOT_BELOW_INITIAL = CelRule(
    "duration(self.maxDelay) >= duration(self.initialDelay)",
    "spec.backoff.maxDelay must be >= spec.backoff.initialDelay",
    field_path=".maxDelay",
)


ErrorCode = Annotated[str, Field(min_length=1, max_length=256)]


class BackoffSpec(SpecModel):
    """Exponential backoff between retries.

    After n retries a message waits initialDelay * multiplier^n, at most maxDelay, spread
    by jitter.
    """

    model_config = ConfigDict(json_schema_extra=cel_rules(MAX_DELAY_NOT_BELOW_INITIAL))

    initial_delay: Duration = Field(
        "1s", description="Delay before the first retry, e.g. 500ms or 1s; 0s retries at once."
    )
    max_delay: Duration = Field("60s", description="Upper bound of any delay, e.g. 60s or 5m.")
    multiplier: float = Field(2.0, ge=1, description="Factor between consecutive delays.")
    jitter: float = Field(
        0.0,
        ge=0,
        le=1,
        description="Random spread of each delay as a fraction: 0.2 means +/- 20%, "
        "never beyond maxDelay.",
    )

    @model_validator(mode="after")
    def _max_delay_not_below_initial(self) -> Self:
        if parse_duration(self.max_delay) < parse_duration(self.initial_delay):
            raise ValueError(MAX_DELAY_NOT_BELOW_INITIAL.message)
        return self


class RetryPolicySpec(SpecModel):
    """How dead messages are retried."""

    max_retries: int = Field(
        3,
        ge=0,
        le=1000,
        description="Retries before a message is parked; 0 parks it at once.",
    )
    backoff: BackoffSpec = defaulted_object(BackoffSpec, "Delays between retries.")
    non_retryable_error_codes: Annotated[list[ErrorCode], AfterValidator(unique_items)] = Field(
        [],
        max_length=100,
        description="Error codes (the error-code header) that are parked without a retry.",
        json_schema_extra={"x-kubernetes-list-type": "set"},
    )


class RetryPolicyStatus(StatusModel):
    """The observed state of a RetryPolicy, written by the operator."""

    observed_generation: int | None = observed_generation_field()
    used_by: int | None = Field(
        None, description="Number of DeadLetterQueues in this namespace that use this policy."
    )
    conditions: Conditions = Field(default_factory=list)


RETRY_POLICY = ResourceKind(
    kind="RetryPolicy",
    plural="retrypolicies",
    short_names=("rp",),
    description="How dead messages are retried: how often, with which backoff, and which "
    "errors are never retried. Shared by the DeadLetterQueues that refer to it.",
    spec=RetryPolicySpec,
    status=RetryPolicyStatus,
    printer_columns=(
        PrinterColumn(
            name="MaxRetries",
            json_path=".spec.maxRetries",
            type="integer",
            description="Retries before parking.",
        ),
        PrinterColumn(
            name="InitialDelay",
            json_path=".spec.backoff.initialDelay",
            type="string",
            description="First delay.",
        ),
        PrinterColumn(
            name="MaxDelay",
            json_path=".spec.backoff.maxDelay",
            type="string",
            description="Longest delay.",
        ),
        PrinterColumn(
            name="UsedBy",
            json_path=".status.usedBy",
            type="integer",
            description="DeadLetterQueues using it.",
        ),
        AGE_COLUMN,
    ),
)
