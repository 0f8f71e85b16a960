"""The models as domain code and the CLI use them (admission rules: test_api_admission)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from pydantic import ValidationError

from dlq_operator.api import (
    AlertLevel,
    AlertMetric,
    DeadLetterQueueSpec,
    DeadLetterQueueStatus,
    DeletionPolicy,
    MessageSelector,
    ReprocessPhase,
    ReprocessRequestSpec,
    ReprocessRequestStatus,
    RetryPolicySpec,
    RetryPolicyStatus,
)


def test_dead_letter_queue_defaults() -> None:
    spec = DeadLetterQueueSpec.model_validate({"sourceTopic": "orders"})
    assert spec.source_topic == "orders"
    assert spec.topic.partitions == 3
    assert spec.topic.retention_ms == 604800000
    assert spec.topic.replication_factor is None
    assert spec.topic.config == {}
    assert spec.retry is None
    assert spec.alerting.enabled
    assert spec.alerting.metric is AlertMetric.UNRESOLVED
    assert (spec.alerting.warn_threshold, spec.alerting.critical_threshold) == (10, 50)
    assert spec.alerting.renotify_interval == "1h"
    assert spec.deletion_policy is DeletionPolicy.RETAIN


def test_topic_names() -> None:
    spec = DeadLetterQueueSpec.model_validate({"sourceTopic": "orders"})
    assert (spec.topic_name, spec.parked_topic_name) == ("orders.dlq", "orders.dlq.parked")
    named = DeadLetterQueueSpec.model_validate({"sourceTopic": "orders", "topic": {"name": "dead"}})
    assert (named.topic_name, named.parked_topic_name) == ("dead", "dead.parked")


def test_snake_case_names_are_accepted_and_camel_case_is_dumped() -> None:
    spec = DeadLetterQueueSpec(source_topic="orders", deletion_policy=DeletionPolicy.DELETE)
    dumped = spec.model_dump(mode="json", exclude_none=True)
    assert dumped["sourceTopic"] == "orders"
    assert dumped["deletionPolicy"] == "Delete"
    assert dumped["alerting"]["renotifyInterval"] == "1h"


def test_defaults_are_not_shared_between_objects() -> None:
    first = DeadLetterQueueSpec(source_topic="a")
    first.topic.config["cleanup.policy"] = "delete"
    assert DeadLetterQueueSpec(source_topic="b").topic.config == {}


@pytest.mark.parametrize(
    "spec",
    [
        {"sourceTopic": "orders", "topics": {}},
        {"sourceTopic": "orders", "topic": {"partition": 3}},
        {"sourceTopic": "orders", "alerting": {"warn": 1}},
    ],
)
def test_unknown_spec_fields_are_errors(spec: dict) -> None:
    with pytest.raises(ValidationError, match="Extra inputs are not permitted"):
        DeadLetterQueueSpec.model_validate(spec)


def test_resource_quantities_as_strings_or_integers() -> None:
    spec = DeadLetterQueueSpec.model_validate(
        {"sourceTopic": "orders", "retry": {"resources": {"limits": {"cpu": 2, "memory": "1Gi"}}}}
    )
    assert spec.retry is not None and spec.retry.resources is not None
    assert spec.retry.resources.limits == {"cpu": 2, "memory": "1Gi"}


def test_retry_policy_defaults() -> None:
    spec = RetryPolicySpec.model_validate({})
    assert spec.max_retries == 3
    assert (spec.backoff.initial_delay, spec.backoff.max_delay) == ("1s", "60s")
    assert (spec.backoff.multiplier, spec.backoff.jitter) == (2.0, 0.0)
    assert spec.non_retryable_error_codes == []


def test_reprocess_request_defaults() -> None:
    spec = ReprocessRequestSpec.model_validate({"deadLetterQueueRef": {"name": "orders"}})
    assert spec.dead_letter_queue_ref.name == "orders"
    assert spec.source == "dlq"
    assert spec.selector == MessageSelector()
    assert spec.target.topic is None and spec.target.reset_retry_count
    assert spec.rate_limit.messages_per_second == 0
    assert not spec.dry_run and not spec.suspend


def test_selector_times_must_carry_a_timezone() -> None:
    """CEL's timestamp comparison needs an offset; a local time would mean different instants."""
    with pytest.raises(ValidationError, match="timezone"):
        MessageSelector.model_validate({"since": "2026-01-01T00:00:00"})
    selector = MessageSelector.model_validate({"since": "2026-01-01T02:00:00+02:00"})
    assert selector.since == datetime(2026, 1, 1, tzinfo=UTC)
    assert selector.model_dump(mode="json", exclude_none=True) == {"since": "2026-01-01T00:00:00Z"}


def test_status_ignores_what_it_does_not_know() -> None:
    """kopf keeps its progress in status.kopf; reading a status must not fail on it."""
    status = DeadLetterQueueStatus.model_validate(
        {
            "kopf": {"progress": {}},
            "alertLevel": "Warning",
            "unresolved": 12,
            "lastCheckedAt": "2026-01-01T00:00:00Z",
            "conditions": [
                {
                    "type": "Ready",
                    "status": "True",
                    "reason": "Reconciled",
                    "message": "",
                    "lastTransitionTime": "2026-01-01T00:00:00Z",
                }
            ],
        }
    )
    assert status.alert_level is AlertLevel.WARNING
    assert status.conditions[0].type == "Ready"
    assert "kopf" not in status.model_dump()


def test_status_dumps_as_a_patch() -> None:
    status = ReprocessRequestStatus(
        observed_generation=2,
        phase=ReprocessPhase.RUNNING,
        matched=5,
        checkpoint=[{"partition": 0, "nextOffset": 10, "endOffset": 20}],
        started_at=datetime(2026, 1, 1, 0, 0, 0, 500, tzinfo=UTC),
    )
    assert status.model_dump(mode="json", exclude_none=True) == {
        "observedGeneration": 2,
        "phase": "Running",
        "matched": 5,
        "checkpoint": [{"partition": 0, "nextOffset": 10, "endOffset": 20}],
        "startedAt": "2026-01-01T00:00:00.000500Z",
        "conditions": [],
    }


def test_empty_status_reads() -> None:
    assert RetryPolicyStatus.model_validate({}).conditions == []


def test_spec_times_keep_their_fraction_of_a_second() -> None:
    selector = MessageSelector.model_validate({"until": "2026-01-01T00:00:00.250+00:00"})
    assert selector.model_dump(mode="json", exclude_none=True) == {
        "until": "2026-01-01T00:00:00.250000Z"
    }
