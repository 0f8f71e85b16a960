"""Desired Kafka topics of a DeadLetterQueue, and the plan that brings a topic there.

Pure: the spec and what the broker reported (a :class:`TopicDescription`, whose
``configs`` hold only the topic's own, non-default values) go in, a :class:`TopicPlan`
comes out. A desired topic is the Kafka adapter's :class:`TopicSpec`, what
``TopicAdmin.create_topics`` takes; :func:`desired_topics` is the one translation from the
DeadLetterQueue's spec. The plan
never shrinks partitions or changes the replication factor (Kafka cannot do the first and
the second needs a reassignment this operator does not do); it refuses with ``NotSupported``
and leaves the topic untouched instead.

Of a topic the DLQ created, the spec is the whole truth of its dynamic configs:
``retention.ms`` plus ``spec.topic.config``. A config set on the topic by hand is drift; it
is set back to the spec's value, or removed when the spec does not name it. A topic that
existed before is touched only with ``spec.topic.adopt``, and then only in the configs the
operator set: the topic's own configs stay (see :class:`Ownership`).

Which topics a namespace may use at all is decided here too (:func:`access_refusal`,
:func:`topic_conflict`): one operator identity serves every team, so a DLQ must not be a
way into a topic that is not its own.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import NamedTuple

from dlq_operator import dlq_topic_for
from dlq_operator.api import DeadLetterQueueSpec
from dlq_operator.api.conditions import (
    ADOPTION_REQUIRED,
    NOT_SUPPORTED,
    TOO_MANY_PARTITIONS,
    TOPIC_NOT_GRANTED,
)
from dlq_operator.kafka import TopicDescription, TopicSpec
from dlq_operator.settings import Settings


@dataclass(frozen=True)
class TopicPlan:
    """What to do to one topic. An empty plan (``not plan.changes``) means it is in shape."""

    topic: TopicSpec
    create: bool = False
    grow_to: int | None = None
    set_configs: Mapping[str, str] = field(default_factory=dict)
    delete_configs: frozenset[str] = frozenset()
    refused: str | None = None  # why the topic cannot be brought to the spec
    refused_reason: str = NOT_SUPPORTED

    @property
    def changes(self) -> bool:
        return bool(self.create or self.grow_to or self.set_configs or self.delete_configs)

    def describe(self) -> str:
        """One line for an Event: what this plan changes."""
        if self.create:
            return f"created topic {self.topic.name} with {self.topic.partitions} partitions"
        parts = []
        if self.grow_to:
            parts.append(f"partitions -> {self.grow_to}")
        parts += [f"{key}={value}" for key, value in sorted(self.set_configs.items())]
        parts += [f"{key} removed" for key in sorted(self.delete_configs)]
        return f"updated topic {self.topic.name}: {', '.join(parts)}"


def desired_topics(spec: DeadLetterQueueSpec) -> list[TopicSpec]:
    """The dead-letter topic, and its parked topic when retries are on."""
    dlq_configs = {"retention.ms": str(spec.topic.retention_ms), **spec.topic.config}
    topics = [
        TopicSpec(
            name=spec.topic_name,
            partitions=spec.topic.partitions,
            replication_factor=spec.topic.replication_factor,
            configs=dlq_configs,
        )
    ]
    if spec.retry is not None and spec.retry.policy_ref is not None:
        parked = spec.topic.parked
        retention = parked.retention_ms if parked and parked.retention_ms is not None else None
        partitions = parked.partitions if parked and parked.partitions is not None else None
        topics.append(
            TopicSpec(
                name=spec.parked_topic_name,
                partitions=partitions or spec.topic.partitions,
                replication_factor=spec.topic.replication_factor,
                configs=dlq_configs
                | ({"retention.ms": str(retention)} if retention is not None else {}),
            )
        )
    return topics


@dataclass(frozen=True)
class Ownership:
    """What a DLQ holds of its topics, as its status remembers it."""

    created: frozenset[str] = frozenset()  # topics this DLQ created
    managed_configs: frozenset[str] = frozenset()  # config keys the operator set on them
    adopt: bool = False  # spec.topic.adopt: topics that existed before may be managed


def plan_topic(
    desired: TopicSpec, observed: TopicDescription | None, ownership: Ownership = Ownership()
) -> TopicPlan:
    """How to bring ``observed`` (None: the topic does not exist) to ``desired``."""
    if observed is None:
        return TopicPlan(desired, create=True)
    adopted = desired.name not in ownership.created
    if adopted and not ownership.adopt:
        return TopicPlan(
            desired,
            refused=f"topic {desired.name} exists and this DeadLetterQueue did not create it. "
            "Set spec.topic.adopt: true to manage it (its own configs are kept and it is never "
            "deleted), or name another topic.",
            refused_reason=ADOPTION_REQUIRED,
        )
    if observed.partitions > desired.partitions:
        return TopicPlan(
            desired,
            refused=f"topic {desired.name} has {observed.partitions} partitions and the spec "
            f"asks for {desired.partitions}; Kafka cannot remove partitions. Set "
            f"spec.topic.partitions to at least {observed.partitions}.",
        )
    if (
        desired.replication_factor is not None
        and desired.replication_factor != observed.replication_factor
    ):
        return TopicPlan(
            desired,
            refused=f"topic {desired.name} has replication factor "
            f"{observed.replication_factor} and the spec asks for "
            f"{desired.replication_factor}; changing it needs a partition reassignment, "
            f"which the operator does not do. Set spec.topic.replicationFactor to "
            f"{observed.replication_factor} or leave it out.",
        )
    return TopicPlan(
        desired,
        grow_to=desired.partitions if desired.partitions > observed.partitions else None,
        set_configs={
            key: value
            for key, value in desired.configs.items()
            if observed.configs.get(key) != value
        },
        # An adopted topic loses only configs the operator itself set before.
        delete_configs=(
            frozenset(observed.configs) & ownership.managed_configs
            if adopted
            else frozenset(observed.configs)
        )
        - frozenset(desired.configs),
    )


def access_refusal(
    namespace: str, spec: DeadLetterQueueSpec, settings: Settings
) -> tuple[str, str] | None:
    """(reason, message) when the operator's limits do not let the DLQ have its topics."""
    default_name = dlq_topic_for(spec.source_topic)
    refusal = settings.topic_refusal(namespace, "spec.topic.name", spec.topic_name, default_name)
    if refusal is not None:
        return TOPIC_NOT_GRANTED, refusal
    parked = spec.topic.parked.partitions if spec.topic.parked else None
    partitions = max(spec.topic.partitions, parked or 0)
    if partitions > settings.max_partitions:
        return (
            TOO_MANY_PARTITIONS,
            f"the spec asks for {partitions} partitions and the operator allows at most "
            f"{settings.max_partitions}. Ask for fewer, or ask the platform team to raise the "
            "limit (chart value tenancy.maxPartitions).",
        )
    return None


class TopicClaim(NamedTuple):
    """One DLQ's use of one topic; claims order by age (then namespace and name)."""

    created: str  # creationTimestamp
    namespace: str
    name: str
    topic: str
    role: str  # "source", "dead-letter" or "parked"


def claimed_topics(spec: DeadLetterQueueSpec) -> dict[str, str]:
    """topic -> the role it plays for the DLQ. The parked topic is reserved even while
    retries are off: turning them on must not find it taken."""
    return {
        spec.source_topic: "source",
        spec.topic_name: "dead-letter",
        spec.parked_topic_name: "parked",
    }


def topic_conflict(
    mine: tuple[str, str, str], spec: DeadLetterQueueSpec, claims: Iterable[TopicClaim]
) -> str | None:
    """Why the DLQ ``mine`` (creationTimestamp, namespace, name) must leave its topics to
    an older DLQ that uses one of them too; None when it keeps them.

    Only DLQs of one source topic share a topic; any other overlap (a DLQ whose dead-letter
    topic is another's source, or two DLQs on one dead-letter topic) goes to the oldest, so
    that every replica of the operator decides alike.
    """
    roles = claimed_topics(spec)
    for claim in sorted(claims):
        role = roles.get(claim.topic)
        if role is None or claim[1:3] == mine[1:] or claim[:3] > mine:
            continue
        if role == claim.role == "source":
            continue
        fix = (
            "choose another spec.sourceTopic"
            if role == "source"
            else "give this one another spec.topic.name"
        )
        return (
            f"topic {claim.topic} is already the {claim.role} topic of DeadLetterQueue "
            f"{claim.namespace}/{claim.name}; {fix}"
        )
    return None
