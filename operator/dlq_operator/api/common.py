"""Building blocks shared by the three kinds: base models, value types, CEL rules, conditions.

Every constraint is declared once, here or next to its field, so that the pydantic model
and the generated CRD agree: a pattern or bound becomes both a Python check and an OpenAPI
keyword, and a :class:`CelRule` becomes both an ``x-kubernetes-validations`` entry and (for
rules without ``oldSelf``) a ``model_validator`` that raises the same message.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from enum import StrEnum
from typing import Annotated, Any

from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    PlainSerializer,
    WithJsonSchema,
)
from pydantic.alias_generators import to_camel

from dlq_operator import API_GROUP, API_VERSION

_CAMEL_CASE = ConfigDict(alias_generator=to_camel, populate_by_name=True, serialize_by_alias=True)


class SpecModel(BaseModel):
    """Base of everything users write: unknown fields are errors, so typos are caught."""

    model_config = ConfigDict(**_CAMEL_CASE, extra="forbid")


class StatusModel(BaseModel):
    """Base of everything the operator writes: unknown fields are ignored when read back.

    kopf keeps its own bookkeeping in ``status``, and a newer operator's status must not
    break an older reader.
    """

    model_config = ConfigDict(**_CAMEL_CASE, extra="ignore")


@dataclass(frozen=True)
class CelRule:
    """One ``x-kubernetes-validations`` entry: a CEL ``rule`` and the ``message`` shown on failure.

    ``field_path`` (relative to the node the rule sits on) makes the API server report the
    error against that field rather than the whole object.
    """

    rule: str
    message: str
    field_path: str | None = None

    def as_schema(self) -> dict[str, str]:
        entry = {"rule": self.rule, "message": self.message}
        if self.field_path:
            entry["fieldPath"] = self.field_path
        return entry


def cel_rules(*rules: CelRule) -> dict[str, Any]:
    """JSON-schema extras that attach ``rules`` to a model or field."""
    return {"x-kubernetes-validations": [rule.as_schema() for rule in rules]}


def immutable(field_path: str, advice: str) -> CelRule:
    """The rule of a field that never changes after creation.

    A transition rule (one that reads ``oldSelf``) only runs when the field exists in both
    the old and the new object, so use this only on fields that are required or defaulted.
    """
    return CelRule("self == oldSelf", f"{field_path} is immutable; {advice}")


def unique_items(values: list[Any] | None) -> list[Any] | None:
    """Reject duplicates, as the API server does for an ``x-kubernetes-list-type: set`` list."""
    if values is not None:
        duplicates = sorted({str(value) for value in values if values.count(value) > 1})
        if duplicates:
            raise ValueError(f"duplicate entries: {', '.join(duplicates)}")
    return values


def model_defaults(model: type[BaseModel]) -> dict[str, Any]:
    """What ``model()`` holds, as the JSON a CRD ``default`` needs."""
    return model().model_dump(mode="json", exclude_none=True)


def defaulted_object(model: type[SpecModel], description: str, *rules: CelRule) -> Any:
    """A sub-object that is always present: omitted, it is ``model()``.

    The CRD default is the whole defaulted object, not ``{}``: the API server checks a
    default against the CEL rules without filling in the nested defaults first, so rules
    such as ``self.criticalThreshold >= self.warnThreshold`` need every field there.
    """
    extra: dict[str, Any] = {"default": model_defaults(model)}
    if rules:
        extra |= cel_rules(*rules)
    return Field(default_factory=model, description=description, json_schema_extra=extra)


# --- Kafka topic names -----------------------------------------------------------------------

TOPIC_NAME_PATTERN = r"^[a-zA-Z0-9._-]+$"
TOPIC_NAME_MAX_LENGTH = 249

TopicName = Annotated[
    str,
    Field(min_length=1, max_length=TOPIC_NAME_MAX_LENGTH, pattern=TOPIC_NAME_PATTERN),
]
# Kafka's own topics (__consumer_offsets, __transaction_state, ...) start with this.
INTERNAL_TOPIC_PREFIX = "__"


def not_internal_topic(field_path: str) -> CelRule:
    """The rule of a topic field that must never name one of Kafka's own topics."""
    return CelRule(
        f"!self.startsWith('{INTERNAL_TOPIC_PREFIX}')",
        f"{field_path} must not start with '{INTERNAL_TOPIC_PREFIX}': that is how Kafka's own "
        "topics (such as __consumer_offsets) are named; use one of your own topics",
    )


def refuse_internal_topic(field_path: str, topic: str | None) -> None:
    """What :func:`not_internal_topic` checks at admission, for the models."""
    if topic is not None and topic.startswith(INTERNAL_TOPIC_PREFIX):
        raise ValueError(not_internal_topic(field_path).message)


# --- Durations ---------------------------------------------------------------------------------

DURATION_PATTERN = r"^([0-9]+(\.[0-9]+)?(ms|s|m|h))+$"
_DURATION_PART = re.compile(r"([0-9]+(?:\.[0-9]+)?)(ms|s|m|h)")
_SECONDS_PER_UNIT = {"ms": Decimal("0.001"), "s": Decimal(1), "m": Decimal(60), "h": Decimal(3600)}
# Go's time.Duration (what CEL's duration() returns) is an int64 of nanoseconds.
_GO_DURATION_MAX = timedelta(microseconds=(2**63 - 1) // 1000)


def parse_duration(text: str) -> timedelta:
    """Parse a Go duration of units ``ms``, ``s``, ``m`` and ``h``, e.g. ``"1h30m"``, ``"500ms"``.

    Accepts what matches :data:`DURATION_PATTERN` (the CRD's pattern) and fits Go's
    ``time.Duration``, which CEL's ``duration()`` returns: what passes here passes the CRD.
    """
    if not re.fullmatch(DURATION_PATTERN, text):
        raise ValueError(
            f"invalid duration {text!r}: use numbers with units ms, s, m, h, e.g. 500ms, 1h30m"
        )
    seconds = sum(
        (
            Decimal(number) * _SECONDS_PER_UNIT[unit]
            for number, unit in _DURATION_PART.findall(text)
        ),
        Decimal(0),
    )
    if seconds > Decimal(_GO_DURATION_MAX.total_seconds()):
        raise ValueError(f"invalid duration {text!r}: longer than about 292 years")
    return timedelta(seconds=float(seconds))


def _check_duration(text: str) -> str:
    parse_duration(text)
    return text


Duration = Annotated[
    str,
    Field(pattern=DURATION_PATTERN, max_length=32),
    AfterValidator(_check_duration),
]
"""A duration string such as ``"1s"`` or ``"1h30m"``; kept as text so it round-trips unchanged."""


# --- Timestamps --------------------------------------------------------------------------------


@functools.lru_cache(maxsize=4096)  # a monitor cycle formats the same few moments for every DLQ
def format_timestamp(moment: datetime, *, whole_seconds: bool = False) -> str:
    """RFC 3339 in UTC, e.g. ``2026-01-01T00:00:00Z``; fractions of a second only when present.

    ``whole_seconds`` drops them: what the operator writes into a status has the precision
    of ``metav1.Time``, as the API server (and kubectl) show it.
    """
    utc = moment.astimezone(UTC)
    if whole_seconds or not utc.microsecond:
        return utc.strftime("%Y-%m-%dT%H:%M:%SZ")
    return utc.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def parse_timestamp(text: object) -> datetime | None:
    """The instant of an RFC 3339 string read back from a status; None for anything missing
    or malformed. A string without a zone is UTC, as the API server always writes."""
    if not isinstance(text, str):
        return None
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


Timestamp = Annotated[
    AwareDatetime,
    PlainSerializer(format_timestamp, return_type=str, when_used="json"),
]
"""A timezone-aware instant; a CRD ``date-time`` string, which CEL sees as a timestamp."""


# --- Resource quantities -----------------------------------------------------------------------

QUANTITY_PATTERN = (
    r"^(\+|-)?(([0-9]+(\.[0-9]*)?)|(\.[0-9]+))"
    r"(([KMGTPE]i)|[numkMGTPE]|([eE](\+|-)?(([0-9]+(\.[0-9]*)?)|(\.[0-9]+))))?$"
)


def _check_quantity(value: int | str) -> int | str:
    if isinstance(value, str) and not re.fullmatch(QUANTITY_PATTERN, value):
        raise ValueError(f"invalid quantity {value!r}: use e.g. 100m, 0.5, 256Mi, 1Gi")
    return value


Quantity = Annotated[
    int | str,
    AfterValidator(_check_quantity),
    WithJsonSchema({"x-kubernetes-int-or-string": True, "pattern": QUANTITY_PATTERN}),
]
"""A Kubernetes resource quantity such as ``500m`` or ``256Mi`` (an integer is accepted too)."""


# --- References --------------------------------------------------------------------------------

OBJECT_NAME_PATTERN = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$"


class ObjectRef(SpecModel):
    """A reference to another object in the same namespace."""

    name: str = Field(
        min_length=1,
        max_length=253,
        pattern=OBJECT_NAME_PATTERN,
        description="Name of the referenced object, in the same namespace.",
    )


# --- Conditions --------------------------------------------------------------------------------


class ConditionStatus(StrEnum):
    """Whether a condition holds."""

    TRUE = "True"
    FALSE = "False"
    UNKNOWN = "Unknown"


CONDITION_REASON_PATTERN = r"^[A-Za-z]([A-Za-z0-9_,:]*[A-Za-z0-9_])?$"


class Condition(StatusModel):
    """One aspect of the object's state, in the shape of a Kubernetes metav1.Condition."""

    type: str = Field(
        min_length=1,
        max_length=316,
        description="Type of the condition in CamelCase, e.g. Ready.",
    )
    status: ConditionStatus = Field(description="Status of the condition: True, False or Unknown.")
    reason: str = Field(
        min_length=1,
        max_length=1024,
        pattern=CONDITION_REASON_PATTERN,
        description="Machine-readable CamelCase reason for the last transition.",
    )
    message: str = Field(
        max_length=32768,
        description="Human-readable details about the last transition.",
    )
    last_transition_time: Timestamp = Field(
        description="When the status last changed from one value to another.",
    )
    observed_generation: int | None = Field(
        None,
        ge=0,
        description="metadata.generation of the object this condition was computed from.",
    )


Conditions = Annotated[
    list[Condition],
    Field(
        description="Current state of the object; Ready is always present once reconciled.",
        json_schema_extra={"x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["type"]},
    ),
]


def observed_generation_field() -> Any:
    """``status.observedGeneration``, the same on every kind."""
    return Field(None, ge=0, description="metadata.generation that this status was computed from.")


# --- Kinds -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class PrinterColumn:
    """A column of ``kubectl get``."""

    name: str
    json_path: str
    type: str
    description: str
    priority: int = 0


@dataclass(frozen=True)
class ResourceKind:
    """Everything about a kind besides its schema: names, columns, spec and status models."""

    kind: str
    plural: str
    short_names: tuple[str, ...]
    description: str
    spec: type[SpecModel]
    status: type[StatusModel]
    printer_columns: tuple[PrinterColumn, ...]
    # Not "dlq": kubectl expands a category before a short name, and `kubectl get dlq NAME`
    # must mean the DeadLetterQueue. `kubectl get dlq-operator` lists all three kinds.
    categories: tuple[str, ...] = ("dlq-operator",)

    @property
    def singular(self) -> str:
        return self.kind.lower()

    @property
    def api_version(self) -> str:
        """The ``apiVersion`` of the kind's objects: ``dlq.orion.io/v1alpha1``."""
        return f"{API_GROUP}/{API_VERSION}"


AGE_COLUMN = PrinterColumn(
    name="Age",
    json_path=".metadata.creationTimestamp",
    type="date",
    description="Time since the object was created.",
)
