"""What the API server admits, as a table shared by the unit tests (the pydantic models) and
the integration tests (the generated CRDs on a real kube-apiserver).

Each case is a spec sent to the API server, on create (``old`` is None) or as an update of
``old``. ``field`` and ``message`` are what the rejection must name: the field path and,
for a CEL rule, its message.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class AdmissionCase:
    name: str
    kind: str
    spec: dict[str, Any]
    old: dict[str, Any] | None = None
    field: str | None = None
    message: str | None = None

    @property
    def admitted(self) -> bool:
        return self.field is None and self.message is None


def dlq(**spec: Any) -> dict[str, Any]:
    return {"sourceTopic": "orders", **spec}


def rpr(**spec: Any) -> dict[str, Any]:
    return {"deadLetterQueueRef": {"name": "orders"}, **spec}


DLQ_CASES = [
    AdmissionCase("minimal", "DeadLetterQueue", dlq()),
    AdmissionCase(
        "everything set",
        "DeadLetterQueue",
        dlq(
            topic={
                "name": "orders-dead",
                "partitions": 6,
                "replicationFactor": 3,
                "retentionMs": -1,
                "config": {"compression.type": "zstd", "max.message.bytes": "2097152"},
                "adopt": True,
                "parked": {"retentionMs": 1000, "partitions": 2},
            },
            retry={
                "policyRef": {"name": "default"},
                "replicas": 2,
                "resources": {"requests": {"cpu": "100m", "memory": "128Mi"}, "limits": {"cpu": 1}},
            },
            alerting={
                "enabled": False,
                "metric": "parked",
                "warnThreshold": 0,
                "criticalThreshold": 0,
                "renotifyInterval": "1h30m",
            },
            deletionPolicy="Delete",
        ),
    ),
    AdmissionCase("no sourceTopic", "DeadLetterQueue", {}, field="spec.sourceTopic"),
    AdmissionCase(
        "sourceTopic with a space",
        "DeadLetterQueue",
        dlq(sourceTopic="a b"),
        field="spec.sourceTopic",
    ),
    AdmissionCase(
        "sourceTopic too long",
        "DeadLetterQueue",
        dlq(sourceTopic="t" * 250),
        field="spec.sourceTopic",
    ),
    AdmissionCase("sourceTopic of 238 characters", "DeadLetterQueue", dlq(sourceTopic="t" * 238)),
    AdmissionCase(
        "sourceTopic leaves no room for .dlq.parked",
        "DeadLetterQueue",
        dlq(sourceTopic="t" * 239),
        message="spec.topic.name (default <sourceTopic>.dlq) must be at most 242 characters",
    ),
    AdmissionCase(
        "long sourceTopic with a short topic name",
        "DeadLetterQueue",
        dlq(sourceTopic="t" * 249, topic={"name": "t.dlq"}),
    ),
    AdmissionCase(
        "topic name is the source topic",
        "DeadLetterQueue",
        dlq(topic={"name": "orders"}),
        field="spec.topic.name",
        message="spec.topic.name must differ from spec.sourceTopic",
    ),
    AdmissionCase(
        "zero partitions",
        "DeadLetterQueue",
        dlq(topic={"partitions": 0}),
        field="spec.topic.partitions",
    ),
    AdmissionCase(
        "too many partitions",
        "DeadLetterQueue",
        dlq(topic={"partitions": 10001}),
        field="spec.topic.partitions",
    ),
    AdmissionCase(
        "retention below -1",
        "DeadLetterQueue",
        dlq(topic={"retentionMs": -2}),
        field="spec.topic.retentionMs",
    ),
    AdmissionCase(
        "replication factor 0",
        "DeadLetterQueue",
        dlq(topic={"replicationFactor": 0}),
        field="spec.topic.replicationFactor",
    ),
    AdmissionCase(
        "retention.ms in config",
        "DeadLetterQueue",
        dlq(topic={"config": {"retention.ms": "1"}}),
        message="spec.topic.config must not set retention.ms; use spec.topic.retentionMs",
    ),
    AdmissionCase(
        "a config outside the allow-list",
        "DeadLetterQueue",
        dlq(topic={"config": {"compression.type": "lz4", "cleanup.policy": "compact"}}),
        message="spec.topic.config may only set compression.type, max.message.bytes, "
        "message.timestamp.type, retention.bytes, segment.bytes, segment.ms (retention.ms is "
        "spec.topic.retentionMs); remove the other keys",
    ),
    AdmissionCase(
        "a Kafka-internal topic as the dead-letter topic",
        "DeadLetterQueue",
        dlq(topic={"name": "__consumer_offsets"}),
        field="spec.topic.name",
        message="spec.topic.name must not start with '__': that is how Kafka's own topics "
        "(such as __consumer_offsets) are named; use one of your own topics",
    ),
    AdmissionCase(
        "a Kafka-internal topic as the source topic",
        "DeadLetterQueue",
        {"sourceTopic": "__transaction_state"},
        field="spec.sourceTopic",
        message="spec.sourceTopic must not start with '__': that is how Kafka's own topics "
        "(such as __consumer_offsets) are named; use one of your own topics",
    ),
    AdmissionCase(
        "parked partitions 0",
        "DeadLetterQueue",
        dlq(topic={"parked": {"partitions": 0}}),
        field="spec.topic.parked.partitions",
    ),
    AdmissionCase(
        "policyRef without a name",
        "DeadLetterQueue",
        dlq(retry={"policyRef": {}}),
        field="spec.retry.policyRef.name",
    ),
    AdmissionCase(
        "policyRef name not a Kubernetes name",
        "DeadLetterQueue",
        dlq(retry={"policyRef": {"name": "Bad_Name"}}),
        field="spec.retry.policyRef.name",
    ),
    AdmissionCase(
        "too many replicas",
        "DeadLetterQueue",
        dlq(retry={"replicas": 101}),
        field="spec.retry.replicas",
    ),
    AdmissionCase(
        "bad resource quantity",
        "DeadLetterQueue",
        dlq(retry={"resources": {"requests": {"cpu": "lots"}}}),
        field="spec.retry.resources.requests.cpu",
    ),
    AdmissionCase(
        "critical below warn",
        "DeadLetterQueue",
        dlq(alerting={"warnThreshold": 10, "criticalThreshold": 5}),
        field="spec.alerting.criticalThreshold",
        message="spec.alerting.criticalThreshold must be >= spec.alerting.warnThreshold",
    ),
    AdmissionCase(
        "warn above the default critical",
        "DeadLetterQueue",
        dlq(alerting={"warnThreshold": 60}),
        message="spec.alerting.criticalThreshold must be >= spec.alerting.warnThreshold",
    ),
    AdmissionCase(
        "negative warn",
        "DeadLetterQueue",
        dlq(alerting={"warnThreshold": -1}),
        field="spec.alerting.warnThreshold",
    ),
    AdmissionCase(
        "unknown alert metric",
        "DeadLetterQueue",
        dlq(alerting={"metric": "lag"}),
        field="spec.alerting.metric",
    ),
    AdmissionCase(
        "renotify in days",
        "DeadLetterQueue",
        dlq(alerting={"renotifyInterval": "1d"}),
        field="spec.alerting.renotifyInterval",
    ),
    AdmissionCase(
        "renotify without a unit",
        "DeadLetterQueue",
        dlq(alerting={"renotifyInterval": "90"}),
        field="spec.alerting.renotifyInterval",
    ),
    AdmissionCase(
        "unknown deletion policy",
        "DeadLetterQueue",
        dlq(deletionPolicy="Orphan"),
        field="spec.deletionPolicy",
    ),
    AdmissionCase(
        "sourceTopic changed",
        "DeadLetterQueue",
        dlq(sourceTopic="payments"),
        old=dlq(),
        field="spec.sourceTopic",
        message="spec.sourceTopic is immutable",
    ),
    AdmissionCase("partitions grow", "DeadLetterQueue", dlq(topic={"partitions": 6}), old=dlq()),
    AdmissionCase(
        "partitions shrink",
        "DeadLetterQueue",
        dlq(topic={"partitions": 2}),
        old=dlq(),
        field="spec.topic.partitions",
        message="spec.topic.partitions cannot decrease",
    ),
    AdmissionCase(
        "parked partitions shrink",
        "DeadLetterQueue",
        dlq(topic={"parked": {"partitions": 2}}),
        old=dlq(topic={"parked": {"partitions": 4}}),
        field="spec.topic.parked.partitions",
        message="spec.topic.parked.partitions cannot decrease",
    ),
    AdmissionCase(
        "topic name set where there was none",
        "DeadLetterQueue",
        dlq(topic={"name": "orders-dead"}),
        old=dlq(),
        message="spec.topic.name is immutable",
    ),
    AdmissionCase(
        "topic name set to its default",
        "DeadLetterQueue",
        dlq(topic={"name": "orders.dlq"}),
        old=dlq(),
    ),
    AdmissionCase(
        "topic name changed",
        "DeadLetterQueue",
        dlq(topic={"name": "orders-dead-2"}),
        old=dlq(topic={"name": "orders-dead"}),
        message="spec.topic.name is immutable",
    ),
    AdmissionCase(
        "topic name removed",
        "DeadLetterQueue",
        dlq(),
        old=dlq(topic={"name": "orders-dead"}),
        message="spec.topic.name is immutable",
    ),
    AdmissionCase(
        "topic name removed where it was the default",
        "DeadLetterQueue",
        dlq(),
        old=dlq(topic={"name": "orders.dlq"}),
    ),
    AdmissionCase(
        "thresholds, retries and policy changed",
        "DeadLetterQueue",
        dlq(alerting={"warnThreshold": 1, "criticalThreshold": 2}, retry={"replicas": 3}),
        old=dlq(topic={"name": "orders.dlq"}, deletionPolicy="Delete"),
    ),
]

RETRY_POLICY_CASES = [
    AdmissionCase("empty", "RetryPolicy", {}),
    AdmissionCase(
        "everything set",
        "RetryPolicy",
        {
            "maxRetries": 0,
            "backoff": {"initialDelay": "1.5s", "maxDelay": "1h30m", "multiplier": 1, "jitter": 1},
            "nonRetryableErrorCodes": ["SCHEMA_INVALID", "UNAUTHORIZED"],
        },
    ),
    AdmissionCase(
        "zero backoff", "RetryPolicy", {"backoff": {"initialDelay": "0s", "maxDelay": "0s"}}
    ),
    AdmissionCase("negative retries", "RetryPolicy", {"maxRetries": -1}, field="spec.maxRetries"),
    AdmissionCase("too many retries", "RetryPolicy", {"maxRetries": 1001}, field="spec.maxRetries"),
    AdmissionCase(
        "maxDelay below initialDelay",
        "RetryPolicy",
        {"backoff": {"initialDelay": "1s", "maxDelay": "500ms"}},
        field="spec.backoff.maxDelay",
        message="spec.backoff.maxDelay must be >= spec.backoff.initialDelay",
    ),
    AdmissionCase(
        "initialDelay above the default maxDelay",
        "RetryPolicy",
        {"backoff": {"initialDelay": "2m"}},
        message="spec.backoff.maxDelay must be >= spec.backoff.initialDelay",
    ),
    AdmissionCase(
        "mixed units compare by length",
        "RetryPolicy",
        {"backoff": {"initialDelay": "90s", "maxDelay": "1m31s"}},
    ),
    AdmissionCase(
        "unknown unit",
        "RetryPolicy",
        {"backoff": {"initialDelay": "1x"}},
        field="spec.backoff.initialDelay",
    ),
    AdmissionCase(
        "negative delay",
        "RetryPolicy",
        {"backoff": {"initialDelay": "-1s"}},
        field="spec.backoff.initialDelay",
    ),
    AdmissionCase(
        "empty delay", "RetryPolicy", {"backoff": {"maxDelay": ""}}, field="spec.backoff.maxDelay"
    ),
    AdmissionCase(
        "multiplier below 1",
        "RetryPolicy",
        {"backoff": {"multiplier": 0.5}},
        field="spec.backoff.multiplier",
    ),
    AdmissionCase(
        "jitter above 1", "RetryPolicy", {"backoff": {"jitter": 1.5}}, field="spec.backoff.jitter"
    ),
    AdmissionCase(
        "duplicate error codes",
        "RetryPolicy",
        {"nonRetryableErrorCodes": ["A", "A"]},
        field="spec.nonRetryableErrorCodes",
    ),
    AdmissionCase(
        "too many error codes",
        "RetryPolicy",
        {"nonRetryableErrorCodes": [f"E{i}" for i in range(101)]},
        field="spec.nonRetryableErrorCodes",
    ),
    AdmissionCase(
        "everything may change",
        "RetryPolicy",
        {"maxRetries": 9, "backoff": {"initialDelay": "5s"}},
        old={},
    ),
]

_SELECTOR = {
    "partitions": [0, 2],
    "fromOffset": 10,
    "toOffset": 10,
    "since": "2026-01-01T00:00:00Z",
    "until": "2026-01-02T00:00:00+02:00",
    "errorCodes": ["TIMEOUT"],
    "keys": ["order-1"],
    "headers": {"tenant": "acme"},
    "maxMessages": 100,
}

REPROCESS_REQUEST_CASES = [
    AdmissionCase("minimal", "ReprocessRequest", rpr()),
    AdmissionCase(
        "everything set",
        "ReprocessRequest",
        rpr(
            source="parked",
            selector=_SELECTOR,
            target={"topic": "orders-replay", "resetRetryCount": False},
            rateLimit={"messagesPerSecond": 50.5},
            dryRun=True,
            suspend=True,
        ),
    ),
    AdmissionCase("no reference", "ReprocessRequest", {}, field="spec.deadLetterQueueRef"),
    AdmissionCase(
        "a Kafka-internal target",
        "ReprocessRequest",
        rpr(target={"topic": "__consumer_offsets"}),
        field="spec.target.topic",
        message="spec.target.topic must not start with '__': that is how Kafka's own topics "
        "(such as __consumer_offsets) are named; use one of your own topics",
    ),
    AdmissionCase("unknown source", "ReprocessRequest", rpr(source="archive"), field="spec.source"),
    AdmissionCase(
        "offsets reversed",
        "ReprocessRequest",
        rpr(selector={"fromOffset": 10, "toOffset": 9}),
        field="spec.selector.toOffset",
        message="spec.selector.toOffset must be >= spec.selector.fromOffset",
    ),
    AdmissionCase("only toOffset", "ReprocessRequest", rpr(selector={"toOffset": 9})),
    AdmissionCase(
        "times reversed",
        "ReprocessRequest",
        rpr(selector={"since": "2026-01-02T00:00:00Z", "until": "2026-01-01T00:00:00Z"}),
        field="spec.selector.until",
        message="spec.selector.until must be after spec.selector.since",
    ),
    AdmissionCase(
        "empty time range",
        "ReprocessRequest",
        rpr(selector={"since": "2026-01-01T00:00:00Z", "until": "2026-01-01T01:00:00+01:00"}),
        message="spec.selector.until must be after spec.selector.since",
    ),
    AdmissionCase(
        "negative partition",
        "ReprocessRequest",
        rpr(selector={"partitions": [-1]}),
        field="spec.selector.partitions",
    ),
    AdmissionCase(
        "no partitions",
        "ReprocessRequest",
        rpr(selector={"partitions": []}),
        field="spec.selector.partitions",
    ),
    AdmissionCase(
        "duplicate partitions",
        "ReprocessRequest",
        rpr(selector={"partitions": [1, 1]}),
        field="spec.selector.partitions",
    ),
    AdmissionCase(
        "maxMessages 0",
        "ReprocessRequest",
        rpr(selector={"maxMessages": 0}),
        field="spec.selector.maxMessages",
    ),
    AdmissionCase(
        "negative rate",
        "ReprocessRequest",
        rpr(rateLimit={"messagesPerSecond": -1}),
        field="spec.rateLimit.messagesPerSecond",
    ),
    AdmissionCase(
        "bad target topic",
        "ReprocessRequest",
        rpr(target={"topic": "a/b"}),
        field="spec.target.topic",
    ),
    AdmissionCase("suspended and resumed", "ReprocessRequest", rpr(suspend=True), old=rpr()),
    AdmissionCase(
        "unchanged", "ReprocessRequest", rpr(selector=_SELECTOR), old=rpr(selector=_SELECTOR)
    ),
    AdmissionCase(
        "reference changed",
        "ReprocessRequest",
        {"deadLetterQueueRef": {"name": "payments"}},
        old=rpr(),
        field="spec.deadLetterQueueRef",
        message="spec.deadLetterQueueRef is immutable",
    ),
    AdmissionCase(
        "source changed",
        "ReprocessRequest",
        rpr(source="parked"),
        old=rpr(),
        field="spec.source",
        message="spec.source is immutable",
    ),
    AdmissionCase(
        "selector changed",
        "ReprocessRequest",
        rpr(selector={"maxMessages": 5}),
        old=rpr(),
        field="spec.selector",
        message="spec.selector is immutable",
    ),
    AdmissionCase(
        "target changed",
        "ReprocessRequest",
        rpr(target={"resetRetryCount": False}),
        old=rpr(),
        field="spec.target",
        message="spec.target is immutable",
    ),
    AdmissionCase(
        "rate changed",
        "ReprocessRequest",
        rpr(rateLimit={"messagesPerSecond": 5}),
        old=rpr(),
        field="spec.rateLimit",
        message="spec.rateLimit is immutable",
    ),
    AdmissionCase(
        "dry run turned off",
        "ReprocessRequest",
        rpr(dryRun=False),
        old=rpr(dryRun=True),
        field="spec.dryRun",
        message="spec.dryRun is immutable",
    ),
]

CASES = DLQ_CASES + RETRY_POLICY_CASES + REPROCESS_REQUEST_CASES
