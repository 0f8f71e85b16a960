"""Desired topics and topic plans (pure)."""

from __future__ import annotations

import pytest

from dlq_operator.api import DeadLetterQueueSpec
from dlq_operator.api.conditions import ADOPTION_REQUIRED, TOO_MANY_PARTITIONS, TOPIC_NOT_GRANTED
from dlq_operator.kafka import TopicDescription
from dlq_operator.kafka import TopicSpec as DesiredTopic
from dlq_operator.reconcile.topics import (
    Ownership,
    TopicClaim,
    access_refusal,
    desired_topics,
    plan_topic,
    topic_conflict,
)
from dlq_operator.settings import Settings, TopicGrant

WEEK = "604800000"


def spec(**fields) -> DeadLetterQueueSpec:
    return DeadLetterQueueSpec.model_validate({"sourceTopic": "orders", **fields})


def test_without_retry_only_the_dead_letter_topic() -> None:
    assert desired_topics(spec()) == [DesiredTopic("orders.dlq", 3, None, {"retention.ms": WEEK})]


def test_with_retry_the_parked_topic_follows_the_dlq_unless_configured() -> None:
    topics = desired_topics(
        spec(
            topic={
                "partitions": 6,
                "retentionMs": 1000,
                "config": {"compression.type": "zstd"},
                "parked": {"retentionMs": -1},
            },
            retry={"policyRef": {"name": "standard"}},
        )
    )
    assert [(t.name, t.partitions, dict(t.configs)) for t in topics] == [
        ("orders.dlq", 6, {"retention.ms": "1000", "compression.type": "zstd"}),
        ("orders.dlq.parked", 6, {"retention.ms": "-1", "compression.type": "zstd"}),
    ]


def test_a_named_topic() -> None:
    assert desired_topics(spec(topic={"name": "orders-dead"}))[0].name == "orders-dead"


def observed(partitions: int = 3, rf: int = 1, **configs: str) -> TopicDescription:
    return TopicDescription("orders.dlq", partitions, rf, configs)


DESIRED = DesiredTopic("orders.dlq", 3, None, {"retention.ms": WEEK})
OWNED = Ownership(created=frozenset({"orders.dlq"}))  # the DLQ created the topic


def test_a_missing_topic_is_created() -> None:
    plan = plan_topic(DESIRED, None)
    assert plan.create and plan.changes
    assert plan.describe() == "created topic orders.dlq with 3 partitions"


def test_a_topic_in_shape_needs_nothing() -> None:
    plan = plan_topic(DESIRED, observed(**{"retention.ms": WEEK}), OWNED)
    assert not plan.changes and plan.refused is None


def test_drift_is_set_back_and_strangers_removed() -> None:
    plan = plan_topic(
        DESIRED, observed(**{"retention.ms": "1000", "cleanup.policy": "compact"}), OWNED
    )
    assert dict(plan.set_configs) == {"retention.ms": WEEK}
    assert plan.delete_configs == {"cleanup.policy"}
    assert plan.describe() == (
        f"updated topic orders.dlq: retention.ms={WEEK}, cleanup.policy removed"
    )


def test_partitions_grow() -> None:
    plan = plan_topic(
        DesiredTopic("orders.dlq", 5, None, {"retention.ms": WEEK}),
        observed(**{"retention.ms": WEEK}),
        OWNED,
    )
    assert plan.grow_to == 5 and not plan.create


@pytest.mark.parametrize(
    ("topic", "words"),
    [
        (observed(partitions=6), "at least 6"),
        (observed(rf=3), "replication factor 3"),
    ],
)
def test_what_kafka_cannot_do_is_refused_untouched(topic, words) -> None:
    desired = DesiredTopic("orders.dlq", 3, 1, {"retention.ms": WEEK})
    plan = plan_topic(desired, topic, OWNED)
    assert plan.refused is not None and words in plan.refused
    assert not plan.changes


def test_a_topic_the_dlq_did_not_create_needs_adopt() -> None:
    plan = plan_topic(DESIRED, observed(**{"cleanup.policy": "compact"}))
    assert plan.refused_reason == ADOPTION_REQUIRED and not plan.changes
    assert plan.refused is not None and "spec.topic.adopt: true" in plan.refused


def test_an_adopted_topic_keeps_the_configs_the_operator_did_not_set() -> None:
    own = {"cleanup.policy": "compact", "min.insync.replicas": "2"}
    adopted = Ownership(adopt=True)
    plan = plan_topic(DESIRED, observed(**own, **{"retention.ms": "1000"}), adopted)
    assert dict(plan.set_configs) == {"retention.ms": WEEK}
    assert plan.delete_configs == frozenset()
    # Once the operator set a key, leaving it out of the spec removes it again.
    was_managed = Ownership(adopt=True, managed_configs=frozenset({"retention.ms", "segment.ms"}))
    plan = plan_topic(
        DESIRED, observed(**own, **{"retention.ms": WEEK, "segment.ms": "1"}), was_managed
    )
    assert plan.delete_configs == {"segment.ms"}


GRANTS = Settings(
    topic_grants=[TopicGrant(namespaces=["team-*"], topics=["shared.dead.*"])], max_partitions=12
)


@pytest.mark.parametrize(
    ("namespace", "topic", "reason"),
    [
        ("team-a", {"name": "orders.dlq"}, None),  # the default name needs no grant
        ("team-a", {"name": "shared.dead.orders"}, None),
        ("other", {"name": "shared.dead.orders"}, TOPIC_NOT_GRANTED),
        ("team-a", {"name": "payments"}, TOPIC_NOT_GRANTED),
        ("team-a", {"partitions": 12}, None),
        ("team-a", {"partitions": 13}, TOO_MANY_PARTITIONS),
        ("team-a", {"parked": {"partitions": 100}}, TOO_MANY_PARTITIONS),
    ],
)
def test_access_refusals_name_the_fix(namespace, topic, reason) -> None:
    refusal = access_refusal(namespace, spec(topic=topic), GRANTS)
    assert (refusal and refusal[0]) == reason
    if refusal:
        assert "chart value tenancy." in refusal[1]


MINE = ("2026-01-02T00:00:00Z", "b", "mine")


def claim(created: str, topic: str, role: str, name: str = "other") -> TopicClaim:
    return TopicClaim(created, "a", name, topic, role)


@pytest.mark.parametrize(
    ("claims", "words"),
    [
        # An older DLQ already uses the topic this one would write dead letters to.
        ([claim("2026-01-01T00:00:00Z", "orders.dlq", "dead-letter")], "dead-letter topic of"),
        ([claim("2026-01-01T00:00:00Z", "orders.dlq", "source")], "source topic of"),
        ([claim("2026-01-01T00:00:00Z", "orders", "dead-letter")], "another spec.sourceTopic"),
        # Two DLQs of one source topic do not conflict; a younger DLQ loses, not this one.
        ([claim("2026-01-01T00:00:00Z", "orders", "source")], None),
        ([claim("2026-01-03T00:00:00Z", "orders.dlq", "dead-letter")], None),
        ([TopicClaim(*MINE, "orders.dlq", "dead-letter")], None),
    ],
)
def test_topics_of_another_dlq_go_to_the_oldest(claims, words) -> None:
    conflict = topic_conflict(MINE, spec(), claims)
    assert (conflict is None) == (words is None)
    if words:
        assert words in conflict and "a/other" in conflict


def test_claim_ties_break_on_namespace_and_name() -> None:
    same_time = claim(MINE[0], "orders.dlq", "dead-letter")  # namespace "a" < "b"
    assert topic_conflict(MINE, spec(), [same_time]) is not None
