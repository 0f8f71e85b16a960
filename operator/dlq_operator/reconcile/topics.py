"""Desired Kafka topics of a DeadLetterQueue, and the plan that brings a topic there.

Pure: the spec and what the broker reported (a :class:`TopicDescription`, whose
``configs`` hold only the topic's own, non-default values) go in, a :class:`TopicPlan`
comes out. The plan
never shrinks partitions or changes the replication factor (Kafka cannot do the first and
the second needs a reassignment this operator does not do); it refuses with ``NotSupported``
and leaves the topic untouched instead.

The spec is the whole truth of a topic's dynamic configs: ``retention.ms`` plus
``spec.topic.config``. A config set on the topic by hand is drift; it is set back to the
spec's value, or removed when the spec does not name it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from dlq_operator.api import DeadLetterQueueSpec
from dlq_operator.kafka import TopicDescription


@dataclass(frozen=True)
class DesiredTopic:
    name: str
    partitions: int
    replication_factor: int | None  # None: the broker's default
    configs: Mapping[str, str]


@dataclass(frozen=True)
class TopicPlan:
    """What to do to one topic. An empty plan (``not plan.changes``) means it is in shape."""

    topic: DesiredTopic
    create: bool = False
    grow_to: int | None = None
    set_configs: Mapping[str, str] = field(default_factory=dict)
    delete_configs: frozenset[str] = frozenset()
    refused: str | None = None  # why the topic cannot be brought to the spec

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


def desired_topics(spec: DeadLetterQueueSpec) -> list[DesiredTopic]:
    """The dead-letter topic, and its parked topic when retries are on."""
    dlq_configs = {"retention.ms": str(spec.topic.retention_ms), **spec.topic.config}
    topics = [
        DesiredTopic(
            spec.topic_name, spec.topic.partitions, spec.topic.replication_factor, dlq_configs
        )
    ]
    if spec.retry is not None and spec.retry.policy_ref is not None:
        parked = spec.topic.parked
        retention = parked.retention_ms if parked and parked.retention_ms is not None else None
        partitions = parked.partitions if parked and parked.partitions is not None else None
        topics.append(
            DesiredTopic(
                spec.parked_topic_name,
                partitions or spec.topic.partitions,
                spec.topic.replication_factor,
                dlq_configs | ({"retention.ms": str(retention)} if retention is not None else {}),
            )
        )
    return topics


def plan_topic(desired: DesiredTopic, observed: TopicDescription | None) -> TopicPlan:
    """How to bring ``observed`` (None: the topic does not exist) to ``desired``."""
    if observed is None:
        return TopicPlan(desired, create=True)
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
        delete_configs=frozenset(observed.configs) - frozenset(desired.configs),
    )


def topic_claim_winner(claims: list[tuple[str, str, str]]) -> tuple[str, str, str] | None:
    """Of several DLQs claiming one topic, the one that keeps it: the oldest.

    A claim is ``(creationTimestamp, namespace, name)``; ties break on namespace and name so
    that every replica of the operator picks the same winner.
    """
    return min(claims) if claims else None
