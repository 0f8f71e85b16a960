"""DeadLetterQueue and RetryPolicy reconciliation, against the real broker and apiserver.

The operator runs as a process (``dlq-operator run``); the tests act like a user (write
objects, change topics by hand) and check what the broker and the API server then hold.
"""

from __future__ import annotations

import pytest
from kafka import KafkaAdminClient
from kafka.admin import ConfigResource, ConfigResourceType, NewTopic
from kubernetes import client

from tests.support import GROUP, VERSION, condition, create_object, get_object, wait_for


@pytest.fixture
def admin(kafka_bootstrap: str):
    admin = KafkaAdminClient(bootstrap_servers=kafka_bootstrap)
    yield admin
    admin.close()


@pytest.fixture
def objects(api_client, operator):
    return client.CustomObjectsApi(api_client)


def patch_spec(objects, namespace: str, plural: str, name: str, spec: dict) -> None:
    objects.patch_namespaced_custom_object(GROUP, VERSION, namespace, plural, name, {"spec": spec})


def wait_ready(
    objects,
    namespace: str,
    name: str,
    status: str = "True",
    reason: str | None = None,
    timeout: float = 60,
) -> dict:
    def check():
        obj = get_object(objects, namespace, "deadletterqueues", name)
        ready = condition(obj, "Ready")
        matches = ready.get("status") == status and reason in (None, ready.get("reason"))
        current = (
            matches and obj["status"].get("observedGeneration") == obj["metadata"]["generation"]
        )
        return obj if current else None

    return wait_for(check, timeout=timeout, what=f"{name} Ready={status} {reason or ''}")


def topic_state(admin: KafkaAdminClient, topic: str) -> tuple[int, dict[str, str]] | None:
    """(partitions, configs set on the topic) as the broker reports them; None if absent."""
    if topic not in admin.list_topics():
        return None
    (info,) = admin.describe_topics([topic])
    configs = admin.describe_configs([ConfigResource(ConfigResourceType.TOPIC, topic)])
    dynamic = {
        key: entry["value"]
        for key, entry in configs["topic"][topic].items()
        if entry["config_source"] == "DYNAMIC_TOPIC_CONFIG"
    }
    return len(info["partitions"]), dynamic


def test_dlq_creates_topic_and_reports_ready(objects, admin, namespace, topic_prefix, kubectl):
    source = f"{topic_prefix}orders"
    create_object(
        objects,
        namespace,
        "deadletterqueues",
        "orders",
        {
            "sourceTopic": source,
            "topic": {
                "partitions": 4,
                "retentionMs": 3600000,
                "config": {"max.message.bytes": "2097152"},
            },
        },
    )
    obj = wait_ready(objects, namespace, "orders")

    partitions, configs = topic_state(admin, f"{source}.dlq")
    assert partitions == 4
    assert configs["retention.ms"] == "3600000"
    assert configs["max.message.bytes"] == "2097152"
    assert obj["status"]["topic"] == {
        "name": f"{source}.dlq",
        "partitions": 4,
        "replicationFactor": 1,
        "retentionMs": 3600000,
    }
    assert condition(obj, "TopicReady")["status"] == "True"
    assert condition(obj, "Reconciling")["status"] == condition(obj, "Stalled")["status"] == "False"
    # Without a policy there is no parked topic and no worker.
    assert topic_state(admin, f"{source}.dlq.parked") is None

    row = kubectl("get", "dlq", "orders", "-n", namespace, "--no-headers").stdout.split()
    assert row[:4] == ["orders", source, f"{source}.dlq", "4"]
    assert "True" in row


def test_spec_changes_reach_the_broker(objects, admin, namespace, topic_prefix):
    source = f"{topic_prefix}payments"
    create_object(
        objects,
        namespace,
        "deadletterqueues",
        "payments",
        {"sourceTopic": source},
    )
    wait_ready(objects, namespace, "payments")
    assert topic_state(admin, f"{source}.dlq")[0] == 3

    patch_spec(
        objects,
        namespace,
        "deadletterqueues",
        "payments",
        {"topic": {"partitions": 5, "retentionMs": 86400000}},
    )
    obj = wait_ready(objects, namespace, "payments")
    partitions, configs = topic_state(admin, f"{source}.dlq")
    assert (partitions, configs["retention.ms"]) == (5, "86400000")
    assert obj["status"]["topic"]["partitions"] == 5


def test_adopting_a_bigger_topic_is_refused_and_left_alone(objects, admin, namespace, topic_prefix):
    source = f"{topic_prefix}legacy"
    admin.create_topics([NewTopic(f"{source}.dlq", num_partitions=6, replication_factor=1)])
    create_object(
        objects,
        namespace,
        "deadletterqueues",
        "legacy",
        {"sourceTopic": source, "topic": {"partitions": 3, "adopt": True}},
    )
    obj = wait_ready(objects, namespace, "legacy", status="False", reason="NotSupported")
    assert "at least 6" in condition(obj, "Ready")["message"]
    # Only a person can fix it: Stalled (Flux and kpt fail fast), not Reconciling.
    stalled = condition(obj, "Stalled")
    assert (stalled["status"], stalled["reason"]) == ("True", "NotSupported")
    assert "at least 6" in stalled["message"]
    assert condition(obj, "Reconciling")["status"] == "False"
    assert topic_state(admin, f"{source}.dlq")[0] == 6


def test_manual_config_change_is_corrected(objects, admin, namespace, topic_prefix):
    source = f"{topic_prefix}drift"
    topic = f"{source}.dlq"
    create_object(
        objects,
        namespace,
        "deadletterqueues",
        "drift",
        {"sourceTopic": source, "topic": {"retentionMs": 7200000}},
    )
    wait_ready(objects, namespace, "drift")
    admin.alter_configs(
        [
            ConfigResource(
                ConfigResourceType.TOPIC,
                topic,
                configs={"retention.ms": "1000", "cleanup.policy": "compact"},
            )
        ]
    )

    def corrected():
        _, configs = topic_state(admin, topic)
        return configs.get("retention.ms") == "7200000" and "cleanup.policy" not in configs

    wait_for(corrected, timeout=30, what="drift corrected by the resync")


def deployment(api_client, namespace: str, name: str):
    try:
        return client.AppsV1Api(api_client).read_namespaced_deployment(name, namespace)
    except client.ApiException as exc:
        if exc.status == 404:
            return None
        raise


def config_hash(dep) -> str | None:
    return (
        (dep.spec.template.metadata.annotations or {}).get("dlq.orion.io/config-hash")
        if dep
        else None
    )


def test_retry_policy_attach_change_detach(objects, admin, api_client, namespace, topic_prefix):
    source = f"{topic_prefix}rfq"
    worker = "rfq-retry-worker"
    create_object(objects, namespace, "deadletterqueues", "rfq", {"sourceTopic": source})
    create_object(
        objects,
        namespace,
        "deadletterqueues",
        "bystander",
        {"sourceTopic": f"{source}-other", "retry": {"policyRef": {"name": "other"}}},
    )
    wait_ready(objects, namespace, "rfq")

    # Attach a policy that does not exist yet.
    patch_spec(
        objects,
        namespace,
        "deadletterqueues",
        "rfq",
        {"retry": {"policyRef": {"name": "standard"}}},
    )
    obj = wait_ready(objects, namespace, "rfq", status="False", reason="PolicyNotFound")
    # The policy may still be coming (GitOps applies in any order): waiting, not stalled.
    assert (condition(obj, "Reconciling")["status"], condition(obj, "Stalled")["status"]) == (
        "True",
        "False",
    )
    assert deployment(api_client, namespace, worker) is None
    assert topic_state(admin, f"{source}.dlq.parked") is not None

    # It recovers by itself once the policy exists.
    create_object(
        objects,
        namespace,
        "retrypolicies",
        "standard",
        {"maxRetries": 3, "backoff": {"initialDelay": "1s"}},
    )
    create_object(objects, namespace, "retrypolicies", "other", {"maxRetries": 1})
    obj = wait_ready(objects, namespace, "rfq")
    assert obj["status"]["workerDeployment"] == worker
    dep = wait_for(lambda: deployment(api_client, namespace, worker), what="worker Deployment")
    env = {e.name: e.value for e in dep.spec.template.spec.containers[0].env}
    assert env["DLQ_WORKER_DLQ_TOPIC"] == f"{source}.dlq"
    assert env["DLQ_WORKER_MAX_RETRIES"] == "3"
    assert dep.metadata.owner_references[0].name == "rfq"
    assert dep.metadata.labels["app.kubernetes.io/instance"] == "rfq"
    first_hash = config_hash(dep)
    bystander_hash = wait_for(
        lambda: config_hash(deployment(api_client, namespace, "bystander-retry-worker")),
        what="bystander worker",
    )

    # A policy change rolls exactly the workers that use it.
    patch_spec(objects, namespace, "retrypolicies", "standard", {"maxRetries": 5})
    wait_for(
        lambda: config_hash(deployment(api_client, namespace, worker)) not in (None, first_hash),
        what="worker template hash changed",
    )
    dep = deployment(api_client, namespace, worker)
    env = {e.name: e.value for e in dep.spec.template.spec.containers[0].env}
    assert env["DLQ_WORKER_MAX_RETRIES"] == "5"
    assert (
        config_hash(deployment(api_client, namespace, "bystander-retry-worker")) == bystander_hash
    )
    wait_for(
        lambda: (
            (get_object(objects, namespace, "retrypolicies", "standard").get("status") or {}).get(
                "usedBy"
            )
            == 1
        ),
        what="usedBy 1",
    )

    # Detach: the worker goes (a merge patch with null removes spec.retry).
    patch_spec(objects, namespace, "deadletterqueues", "rfq", {"retry": None})
    wait_for(lambda: deployment(api_client, namespace, worker) is None, what="worker removed")
    wait_ready(objects, namespace, "rfq")


@pytest.mark.parametrize("policy", ["Retain", "Delete"])
def test_deletion_policy(objects, admin, api_client, namespace, topic_prefix, policy):
    source = f"{topic_prefix}del{policy.lower()}"
    create_object(objects, namespace, "retrypolicies", "p", {})
    create_object(
        objects,
        namespace,
        "deadletterqueues",
        "gone",
        {"sourceTopic": source, "deletionPolicy": policy, "retry": {"policyRef": {"name": "p"}}},
    )
    wait_ready(objects, namespace, "gone")
    wait_for(lambda: deployment(api_client, namespace, "gone-retry-worker"), what="worker")

    objects.delete_namespaced_custom_object(GROUP, VERSION, namespace, "deadletterqueues", "gone")
    wait_for(
        lambda: get_object(objects, namespace, "deadletterqueues", "gone") is None,
        what="DLQ gone (finalizer released)",
    )
    assert deployment(api_client, namespace, "gone-retry-worker") is None
    topics = set(admin.list_topics())
    expected_present = policy == "Retain"
    assert (f"{source}.dlq" in topics) is expected_present
    assert (f"{source}.dlq.parked" in topics) is expected_present


def test_second_claim_on_a_topic_conflicts(objects, admin, namespace, topic_prefix, api_client):
    source = f"{topic_prefix}shared"
    create_object(objects, namespace, "deadletterqueues", "first", {"sourceTopic": source})
    wait_ready(objects, namespace, "first")
    other_ns = f"{namespace}-b"
    client.CoreV1Api(api_client).create_namespace(
        client.V1Namespace(metadata=client.V1ObjectMeta(name=other_ns))
    )
    create_object(
        objects,
        other_ns,
        "deadletterqueues",
        "second",
        {"sourceTopic": source, "topic": {"partitions": 1}},
    )
    obj = wait_ready(objects, other_ns, "second", status="False", reason="TopicConflict")
    assert f"{namespace}/first" in condition(obj, "Ready")["message"]
    assert condition(obj, "Stalled")["reason"] == "TopicConflict"
    assert condition(obj, "Stalled")["status"] == "True"
    assert (
        condition(get_object(objects, namespace, "deadletterqueues", "first"), "Ready")["status"]
        == "True"
    )
    assert topic_state(admin, f"{source}.dlq")[0] == 3

    # The older one goes away: the newer one takes the topic over.
    objects.delete_namespaced_custom_object(GROUP, VERSION, namespace, "deadletterqueues", "first")
    # The topic outlives the first one (Retain), and the second did not create it.
    wait_ready(objects, other_ns, "second", status="False", reason="AdoptionRequired")


def test_paused_dlq_is_left_alone(objects, admin, namespace, topic_prefix):
    source = f"{topic_prefix}paused"
    create_object(
        objects,
        namespace,
        "deadletterqueues",
        "paused",
        {"sourceTopic": source},
        annotations={"dlq.orion.io/paused": "true"},
    )
    create_object(
        objects,
        namespace,
        "deadletterqueues",
        "marker",
        {"sourceTopic": f"{source}-marker"},
    )
    wait_ready(objects, namespace, "marker")
    assert topic_state(admin, f"{source}.dlq") is None
    objects.patch_namespaced_custom_object(
        GROUP,
        VERSION,
        namespace,
        "deadletterqueues",
        "paused",
        {"metadata": {"annotations": {"dlq.orion.io/paused": None}}},
    )
    wait_ready(objects, namespace, "paused")
    assert topic_state(admin, f"{source}.dlq") is not None


def test_kafka_outage_shows_and_heals(objects, admin, platform, namespace, topic_prefix):
    source = f"{topic_prefix}outage"
    platform.stop("kafka")
    try:
        create_object(
            objects,
            namespace,
            "deadletterqueues",
            "outage",
            {"sourceTopic": source},
        )
        obj = wait_ready(objects, namespace, "outage", status="False", reason="KafkaUnavailable")
        assert "Kafka is unreachable" in condition(obj, "Ready")["message"]
    finally:
        platform.start("kafka")
    wait_ready(objects, namespace, "outage", timeout=90)
    assert topic_state(admin, f"{source}.dlq")[0] == 3


# -- one operator, many teams: a DLQ is no way into a topic that is not its own -----------


def test_a_dlq_cannot_take_the_source_topic_of_another(objects, admin, namespace, topic_prefix):
    source = f"{topic_prefix}orders"
    create_object(objects, namespace, "deadletterqueues", "orders", {"sourceTopic": source})
    wait_ready(objects, namespace, "orders")
    admin.create_topics([NewTopic(source, 1, 1)])
    create_object(
        objects,
        namespace,
        "deadletterqueues",
        "thief",
        {"sourceTopic": f"{topic_prefix}other", "topic": {"name": source}},
    )
    obj = wait_ready(objects, namespace, "thief", status="False", reason="TopicConflict")
    stalled = condition(obj, "Stalled")
    assert stalled["status"] == "True"
    assert (
        f"topic {source} is already the source topic of DeadLetterQueue {namespace}/orders"
        in (stalled["message"])
    )
    assert topic_state(admin, source) == (1, {}), "the source topic was not touched"


def test_another_teams_topic_needs_a_grant(objects, admin, namespace, topic_prefix):
    theirs = f"{topic_prefix}payments"
    admin.create_topics([NewTopic(theirs, 2, 1, topic_configs={"cleanup.policy": "compact"})])
    create_object(
        objects,
        namespace,
        "deadletterqueues",
        "grabby",
        {"sourceTopic": f"{topic_prefix}mine", "topic": {"name": theirs, "retentionMs": 0}},
    )
    obj = wait_ready(objects, namespace, "grabby", status="False", reason="TopicNotGranted")
    assert "no topic grant" in condition(obj, "Ready")["message"]
    assert "tenancy.topicGrants" in condition(obj, "Ready")["message"]
    assert condition(obj, "Stalled")["status"] == "True"
    assert topic_state(admin, theirs) == (2, {"cleanup.policy": "compact"})


def test_too_many_partitions_are_refused(objects, admin, namespace, topic_prefix):
    source = f"{topic_prefix}wide"
    create_object(
        objects,
        namespace,
        "deadletterqueues",
        "wide",
        {"sourceTopic": source, "topic": {"partitions": 5000}},
    )
    obj = wait_ready(objects, namespace, "wide", status="False", reason="TooManyPartitions")
    assert "at most 100" in condition(obj, "Ready")["message"]
    assert topic_state(admin, f"{source}.dlq") is None


def test_an_existing_topic_is_adopted_only_on_request_and_keeps_its_configs(
    objects, admin, namespace, topic_prefix
):
    source = f"{topic_prefix}legacy"
    topic = f"{source}.dlq"
    own = {"cleanup.policy": "delete", "min.insync.replicas": "1", "segment.bytes": "1048576"}
    admin.create_topics([NewTopic(topic, 3, 1, topic_configs=own)])
    create_object(objects, namespace, "deadletterqueues", "legacy", {"sourceTopic": source})
    obj = wait_ready(objects, namespace, "legacy", status="False", reason="AdoptionRequired")
    assert "spec.topic.adopt: true" in condition(obj, "Ready")["message"]
    assert topic_state(admin, topic) == (3, own), "untouched without the opt-in"

    patch_spec(objects, namespace, "deadletterqueues", "legacy", {"topic": {"adopt": True}})
    wait_ready(objects, namespace, "legacy")
    week = {"retention.ms": "604800000"}
    assert topic_state(admin, topic) == (3, own | week)
    # Five resyncs, each proven by a drift it corrects; the topic's own configs stay.
    for _ in range(5):
        admin.alter_configs(
            [ConfigResource(ConfigResourceType.TOPIC, topic, configs={**own, "retention.ms": "1"})]
        )
        wait_for(
            lambda: topic_state(admin, topic) == (3, own | week),
            timeout=30,
            what="retention.ms set back, the topic's own configs kept",
        )

    # Delete keeps a topic the DLQ did not create.
    patch_spec(objects, namespace, "deadletterqueues", "legacy", {"deletionPolicy": "Delete"})
    wait_ready(objects, namespace, "legacy")
    objects.delete_namespaced_custom_object(GROUP, VERSION, namespace, "deadletterqueues", "legacy")
    wait_for(
        lambda: get_object(objects, namespace, "deadletterqueues", "legacy") is None,
        what="legacy deleted",
    )
    assert topic_state(admin, topic) == (3, own | week)
