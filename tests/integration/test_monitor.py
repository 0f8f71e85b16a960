"""Depth monitoring and alerting, against the real broker and apiserver, with webhooks
received by a real HTTP server on loopback (the session operator checks every 2 s)."""

from __future__ import annotations

import json
import urllib.request
from datetime import UTC, datetime

import pytest
from kafka import KafkaAdminClient, KafkaProducer, TopicPartition
from kafka.admin import NewTopic
from kubernetes import client

from tests.support import GROUP, VERSION, create_object, wait_for

PLURAL = "deadletterqueues"


@pytest.fixture
def objects(api_client, operator):
    return client.CustomObjectsApi(api_client)


def status_of(objects, namespace: str, name: str) -> dict:
    obj = objects.get_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, name)
    return obj.get("status") or {}


def events_of(api_client, namespace: str, name: str) -> list[str]:
    events = client.CoreV1Api(api_client).list_namespaced_event(namespace).items
    return [
        e.reason
        # Creation timestamps have whole seconds; one etcd's revisions order them exactly.
        for e in sorted(events, key=lambda e: int(e.metadata.resource_version))
        if e.involved_object.name == name and e.reason.startswith("Depth")
    ]


def metric(operator, name: str, **labels: str) -> float:
    url = f"http://127.0.0.1:{operator.env['DLQ_METRICS_PORT']}/metrics"
    with urllib.request.urlopen(url, timeout=5) as response:
        text = response.read().decode()
    total = 0.0
    for line in text.splitlines():
        if line.startswith(name) and all(f'{k}="{v}"' in line for k, v in labels.items()):
            total += float(line.split()[-1])
    return total


def cycles(operator) -> float:
    return metric(operator, "dlq_check_duration_seconds_count")


def wait_cycles(operator, n: int) -> None:
    start = cycles(operator)
    wait_for(lambda: cycles(operator) >= start + n, timeout=60, what=f"{n} monitor cycles")


def produce(bootstrap: str, topic: str, n: int) -> None:
    producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all")
    for i in range(n):
        producer.send(topic, json.dumps({"n": i}).encode(), partition=i % 3)
    producer.flush()
    producer.close()


def create_dlq(objects, namespace: str, name: str, spec: dict) -> None:
    create_object(objects, namespace, PLURAL, name, spec)


def wait_status(objects, namespace, name, what, **expected):
    def matches():
        status = status_of(objects, namespace, name)
        return status if all(status.get(k) == v for k, v in expected.items()) else None

    return wait_for(matches, timeout=60, what=what)


def test_alert_levels_notify_once_and_resolve(
    objects, api_client, operator, alert_receiver, kafka_bootstrap, namespace, topic_prefix
):
    source = f"{topic_prefix}alerts"
    create_dlq(
        objects,
        namespace,
        "alerts",
        {"sourceTopic": source, "alerting": {"warnThreshold": 5, "criticalThreshold": 10}},
    )
    wait_status(objects, namespace, "alerts", "first check", messages=0, alertLevel="OK")

    produced_from = datetime.now(UTC).replace(microsecond=0)
    produce(kafka_bootstrap, f"{source}.dlq", 6)
    status = wait_status(
        objects, namespace, "alerts", "warning", messages=6, unresolved=6, alertLevel="Warning"
    )
    # The oldest unresolved record: when it was dead-lettered, and its age as a metric.
    oldest = datetime.fromisoformat(status["oldestUnresolvedAt"])
    assert produced_from <= oldest <= datetime.now(UTC)
    assert metric(operator, "dlq_oldest_unresolved_age_seconds", namespace=namespace) > 0
    produce(kafka_bootstrap, f"{source}.dlq", 6)
    status = wait_status(
        objects, namespace, "alerts", "critical", unresolved=12, alertLevel="Critical"
    )
    alert = next(c for c in status["conditions"] if c["type"] == "DepthAlert")
    assert (alert["status"], alert["reason"]) == ("True", "DepthCritical")

    # Staying critical: nothing more is sent before the renotify interval (1h by default).
    wait_cycles(operator, 3)
    assert events_of(api_client, namespace, "alerts") == ["DepthWarning", "DepthCritical"]
    generic = alert_receiver.received("/generic", namespace)
    assert [(g["kind"], g["level"]) for g in generic] == [
        ("firing", "Warning"),
        ("firing", "Critical"),
    ]
    assert len(alert_receiver.received("/slack", namespace)) == 2
    assert (
        alert_receiver.received("/am/api/v2/alerts", namespace)[-1][0]["labels"]["severity"]
        == "critical"
    )

    # Draining (a purge moves the low watermark) resolves the alert.
    admin = KafkaAdminClient(bootstrap_servers=kafka_bootstrap)
    # -1: up to the high watermark, as DeleteRecords defines it.
    admin.delete_records({TopicPartition(f"{source}.dlq", p): -1 for p in range(3)})
    admin.close()
    wait_status(
        objects,
        namespace,
        "alerts",
        "recovered",
        messages=0,
        unresolved=0,
        alertLevel="OK",
        oldestUnresolvedAt=None,
    )
    wait_for(
        lambda: events_of(api_client, namespace, "alerts")[-1:] == ["DepthRecovered"],
        what="DepthRecovered event",
    )
    resolved = wait_for(
        lambda: [
            g for g in alert_receiver.received("/generic", namespace) if g["kind"] == "resolved"
        ],
        what="resolved webhook",
    )
    assert len(resolved) == 1

    # Firing alerts carry an endsAt too (their expiry): the resolve ends the critical alert now.
    def alertmanager_resolved():
        last = alert_receiver.received("/am/api/v2/alerts", namespace)[-1]
        return [
            (a["labels"]["severity"], datetime.fromisoformat(a["endsAt"]) <= datetime.now(UTC))
            for a in last
        ] == [("critical", True)]

    wait_for(alertmanager_resolved, what="Alertmanager resolve of the critical alert")


def test_retried_records_leave_unresolved_but_stay_in_messages(
    objects, api_client, operator, kafka_bootstrap, namespace, topic_prefix
):
    source = f"{topic_prefix}retried"
    admin = KafkaAdminClient(bootstrap_servers=kafka_bootstrap)
    admin.create_topics([NewTopic(source, 1, 1)])
    admin.close()
    create_object(objects, namespace, "retrypolicies", "fast", {"backoff": {"initialDelay": "0s"}})
    create_dlq(
        objects,
        namespace,
        "retried",
        {
            "sourceTopic": source,
            # No worker pod yet: the records wait, pending.
            "retry": {"policyRef": {"name": "fast"}, "replicas": 0},
            "alerting": {"warnThreshold": 100, "criticalThreshold": 200},
        },
    )
    apps = client.AppsV1Api(api_client)
    wait_for(lambda: apps.list_namespaced_deployment(namespace).items, what="worker Deployment")
    envelope = {
        "originalTopic": source,
        "originalPartition": 0,
        "originalOffset": "1",
        "originalTimestamp": "2026-01-01T00:00:00.000Z",
        "event": {"ok": True},
        "error": "boom",
        "consumerGroup": "svc",
        "processingTimestamp": "2026-01-01T00:00:00.000Z",
        "retryCount": 0,
        "metadata": {},
    }
    producer = KafkaProducer(bootstrap_servers=kafka_bootstrap, acks="all")
    for _ in range(7):
        producer.send(f"{source}.dlq", json.dumps(envelope).encode())
    producer.flush()
    producer.close()
    status = wait_status(
        objects, namespace, "retried", "pending", messages=7, pending=7, unresolved=7
    )
    assert status["oldestUnresolvedAt"]

    # The worker pod starts and republishes them.
    objects.patch_namespaced_custom_object(
        GROUP, VERSION, namespace, PLURAL, "retried", {"spec": {"retry": {"replicas": 1}}}
    )
    wait_status(
        objects,
        namespace,
        "retried",
        "retried",
        messages=7,
        pending=0,
        unresolved=0,
        parked=0,
        oldestUnresolvedAt=None,
    )


def test_failing_sink_is_counted_and_does_not_stop_events(
    objects, api_client, operator, alert_receiver, kafka_bootstrap, namespace, topic_prefix
):
    source = f"{topic_prefix}sinkfail"
    create_dlq(
        objects,
        namespace,
        "sinkfail",
        {"sourceTopic": source, "alerting": {"warnThreshold": 1, "criticalThreshold": 3}},
    )
    wait_status(objects, namespace, "sinkfail", "first check", alertLevel="OK")
    failures = metric(operator, "dlq_alert_sink_failures_total")
    alert_receiver.status = 500
    try:
        produce(kafka_bootstrap, f"{source}.dlq", 1)
        wait_status(objects, namespace, "sinkfail", "warning", alertLevel="Warning")
        wait_for(
            lambda: metric(operator, "dlq_alert_sink_failures_total") >= failures + 3,
            what="three failed sinks counted",
        )
    finally:
        alert_receiver.status = 200
    alert_receiver.stop()
    try:
        before = cycles(operator)
        produce(kafka_bootstrap, f"{source}.dlq", 2)
        wait_status(objects, namespace, "sinkfail", "critical", alertLevel="Critical")
        # Checks kept their schedule while the sinks were down.
        wait_for(lambda: cycles(operator) >= before + 3, what="cycles on time")
        wait_for(
            lambda: metric(operator, "dlq_alert_sink_failures_total") >= failures + 6,
            what="unreachable sinks counted",
        )
    finally:
        alert_receiver.start()
    assert events_of(api_client, namespace, "sinkfail") == ["DepthWarning", "DepthCritical"]


def test_broker_outage_marks_figures_stale_and_recovers(
    objects, operator, platform, kafka_bootstrap, namespace, topic_prefix
):
    source = f"{topic_prefix}stale"
    create_dlq(objects, namespace, "stale", {"sourceTopic": source})
    wait_status(objects, namespace, "stale", "first check", messages=0)
    platform.stop("kafka")
    try:

        def stale():
            status = status_of(objects, namespace, "stale")
            known = next((c for c in status.get("conditions", []) if c["type"] == "DepthKnown"), {})
            return status if known.get("status") == "False" else None

        status = wait_for(stale, timeout=90, what="DepthKnown=False")
        assert status["messages"] == 0, "figures are kept while stale"
    finally:
        platform.start("kafka")
    produce(kafka_bootstrap, f"{source}.dlq", 4)

    def fresh():
        status = status_of(objects, namespace, "stale")
        known = next((c for c in status.get("conditions", []) if c["type"] == "DepthKnown"), {})
        return status.get("messages") == 4 and known.get("status") == "True"

    wait_for(fresh, timeout=60, what="fresh figures, DepthKnown=True")


def test_quiet_cycles_write_nothing(objects, operator, namespace, topic_prefix, api_client):
    source = f"{topic_prefix}quiet"
    create_dlq(objects, namespace, "quiet", {"sourceTopic": source})
    # The second cycle adds the first inflow figure; from then on nothing changes.
    wait_status(objects, namespace, "quiet", "two checks", messages=0, inflowPerMinute=0)
    version = objects.get_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, "quiet")[
        "metadata"
    ]["resourceVersion"]
    wait_cycles(operator, 3)
    after = objects.get_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, "quiet")
    assert after["metadata"]["resourceVersion"] == version
