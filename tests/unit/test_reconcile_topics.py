"""Desired topics and topic plans (pure)."""

from __future__ import annotations

import pytest

from dlq_operator.api import DeadLetterQueueSpec
from dlq_operator.kafka import TopicDescription
from dlq_operator.reconcile.topics import (
    DesiredTopic,
    desired_topics,
    plan_topic,
    topic_claim_winner,
)

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
                "config": {"cleanup.policy": "delete"},
                "parked": {"retentionMs": -1},
            },
            retry={"policyRef": {"name": "standard"}},
        )
    )
    assert [(t.name, t.partitions, dict(t.configs)) for t in topics] == [
        ("orders.dlq", 6, {"retention.ms": "1000", "cleanup.policy": "delete"}),
        ("orders.dlq.parked", 6, {"retention.ms": "-1", "cleanup.policy": "delete"}),
    ]


def test_a_named_topic() -> None:
    assert desired_topics(spec(topic={"name": "orders-dead"}))[0].name == "orders-dead"


def observed(partitions: int = 3, rf: int = 1, **configs: str) -> TopicDescription:
    return TopicDescription("orders.dlq", partitions, rf, configs)


DESIRED = DesiredTopic("orders.dlq", 3, None, {"retention.ms": WEEK})


def test_a_missing_topic_is_created() -> None:
    plan = plan_topic(DESIRED, None)
    assert plan.create and plan.changes
    assert plan.describe() == "created topic orders.dlq with 3 partitions"


def test_a_topic_in_shape_needs_nothing() -> None:
    plan = plan_topic(DESIRED, observed(**{"retention.ms": WEEK}))
    assert not plan.changes and plan.refused is None


def test_drift_is_set_back_and_strangers_removed() -> None:
    plan = plan_topic(DESIRED, observed(**{"retention.ms": "1000", "cleanup.policy": "compact"}))
    assert dict(plan.set_configs) == {"retention.ms": WEEK}
    assert plan.delete_configs == {"cleanup.policy"}
    assert plan.describe() == (
        f"updated topic orders.dlq: retention.ms={WEEK}, cleanup.policy removed"
    )


def test_partitions_grow() -> None:
    plan = plan_topic(
        DesiredTopic("orders.dlq", 5, None, {"retention.ms": WEEK}),
        observed(**{"retention.ms": WEEK}),
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
    plan = plan_topic(desired, topic)
    assert plan.refused is not None and words in plan.refused
    assert not plan.changes


def test_the_oldest_claim_wins_and_ties_are_stable() -> None:
    claims = [
        ("2026-01-02T00:00:00Z", "b", "x"),
        ("2026-01-01T00:00:00Z", "z", "y"),
        ("2026-01-01T00:00:00Z", "a", "y"),
    ]
    assert topic_claim_winner(claims) == ("2026-01-01T00:00:00Z", "a", "y")
    assert topic_claim_winner([]) is None
