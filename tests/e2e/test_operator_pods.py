"""The operator as users run it: the chart installed with helm, the operator and its retry
workers running as pods of the image under test on the platform's node.

The release is installed once for this module with the chart's defaults plus only the
image and Kafka values, so it serves every namespace; each test works in its own.
"""

from __future__ import annotations

import time
from typing import Any

from kafka import KafkaAdminClient, KafkaProducer
from kafka.admin import NewTopic
from kubernetes import client

from dlq_operator.api.naming import retry_group_name, worker_deployment_name
from tests.e2e.chart import Release, is_ready
from tests.support import (
    GROUP,
    VERSION,
    condition,
    create_object,
    dead_letter,
    get_object,
    headers_of,
    read_all,
)

WORKER_SELECTOR = "app.kubernetes.io/component=retry-worker"
# Retries at once: what a worker republishes shows up without waiting.
FAST_POLICY = {"maxRetries": 3, "backoff": {"initialDelay": "0s"}}


def dlq_with_worker(
    objects, kafka_bootstrap: str, namespace: str, source: str, policy: dict[str, Any]
) -> None:
    """A source topic, a RetryPolicy and a DLQ that retries into it."""
    admin = KafkaAdminClient(bootstrap_servers=kafka_bootstrap)
    admin.create_topics([NewTopic(source, 1, 1)])
    admin.close()
    create_object(objects, namespace, "retrypolicies", "policy", policy)
    create_object(
        objects,
        namespace,
        "deadletterqueues",
        "orders",
        {
            "sourceTopic": source,
            "topic": {"partitions": 3},
            "retry": {"policyRef": {"name": "policy"}},
        },
    )


def worker_pods(core: client.CoreV1Api, namespace: str) -> list[client.V1Pod]:
    return [
        p
        for p in core.list_namespaced_pod(namespace, label_selector=WORKER_SELECTOR).items
        if not p.metadata.deletion_timestamp
    ]


def ready_worker_pods(release: Release, namespace: str) -> list[client.V1Pod]:
    return release.wait(
        lambda: [p for p in worker_pods(release.core, namespace) if is_ready(p)], what="worker pod"
    )


def produce(bootstrap: str, topic: str, numbers: range) -> None:
    producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=5)
    for n in numbers:
        producer.send(topic, dead_letter(topic.removesuffix(".dlq"), n, "TIMEOUT"), partition=n % 3)
    producer.flush()
    producer.close()


def dead_letter_ids(bootstrap: str, topic: str) -> list[str]:
    return [headers_of(r).get("x-dlq-id", "") for r in read_all(bootstrap, topic)]


# -- (a) install --------------------------------------------------------------------------
def test_the_operator_pod_starts_ready_and_locked_down(release: Release) -> None:
    pod = release.ready_operator_pod()
    assert pod.spec.containers[0].image == release.image
    log = release.wait(
        lambda: (
            (text := release.operator_log()) and "Activity 'startup' succeeded" in text and text
        ),
        what="startup in the operator's log",
    )
    assert "Traceback" not in log
    # What the kubelet enforces from the chart's securityContext, seen from inside.
    probe = release.kubectl(
        "exec",
        "-n",
        release.namespace,
        pod.metadata.name,
        "--",
        "sh",
        "-c",
        "id -u; grep CapEff /proc/self/status; touch /probe 2>&1; true",
    ).stdout
    uid, capabilities, write = probe.strip().splitlines()
    assert uid == "10001"
    assert capabilities.split() == ["CapEff:", "0000000000000000"]
    assert "Read-only file system" in write


# -- (b) worker ---------------------------------------------------------------------------
def test_a_retrying_dlq_gets_a_worker_pod_that_republishes(
    release: Release, objects, kafka_bootstrap: str, namespace: str, topic_prefix: str
) -> None:
    source = f"{topic_prefix}orders"
    dlq_with_worker(objects, kafka_bootstrap, namespace, source, FAST_POLICY)
    dlq = release.wait(
        lambda: (
            (obj := get_object(objects, namespace, "deadletterqueues", "orders"))
            and condition(obj, "Ready").get("status") == "True"
            and obj
        ),
        what="DLQ Ready",
    )
    assert condition(dlq, "WorkerReady")["reason"] == "Available"
    (pod,) = ready_worker_pods(release, namespace)
    assert pod.spec.containers[0].image == release.image
    assert pod.metadata.owner_references[0].kind == "ReplicaSet"

    produce(kafka_bootstrap, f"{source}.dlq", range(20))
    republished = release.wait(
        lambda: len(ids := dead_letter_ids(kafka_bootstrap, source)) >= 20 and ids,
        what="20 records republished",
    )
    assert len(set(republished)) == 20
    # The consumer group that did it is the pod's: its member connects from the pod's IP.
    admin = KafkaAdminClient(bootstrap_servers=kafka_bootstrap)
    group = admin.describe_groups([retry_group_name(namespace, "orders")])
    admin.close()
    members = next(iter(group.values()))["members"]
    assert [m["client_host"].lstrip("/") for m in members] == [pod.status.pod_ip], members


# -- (c) policy change --------------------------------------------------------------------
def test_a_policy_change_rolls_the_worker_to_a_new_replica_set(
    release: Release, api_client, objects, kafka_bootstrap: str, namespace: str, topic_prefix: str
) -> None:
    dlq_with_worker(objects, kafka_bootstrap, namespace, f"{topic_prefix}orders", {"maxRetries": 2})
    (old,) = ready_worker_pods(release, namespace)
    objects.patch_namespaced_custom_object(
        GROUP, VERSION, namespace, "retrypolicies", "policy", {"spec": {"maxRetries": 5}}
    )
    apps = client.AppsV1Api(api_client)

    def rolled() -> list[client.V1Pod] | None:
        pods = worker_pods(release.core, namespace)
        new = [p for p in pods if p.metadata.name != old.metadata.name and is_ready(p)]
        return new if new and all(p.metadata.name != old.metadata.name for p in pods) else None

    (new,) = release.wait(rolled, what="the old worker pod gone and a new one Ready")
    sets = apps.list_namespaced_replica_set(namespace, label_selector=WORKER_SELECTOR).items
    assert len(sets) == 2
    owner = {p.metadata.owner_references[0].name for p in (old, new)}
    assert len(owner) == 2, "the new pod belongs to a new ReplicaSet"
    env = {e.name: e.value for e in new.spec.containers[0].env}
    assert env["DLQ_WORKER_MAX_RETRIES"] == "5"


# -- (d) worker kill ----------------------------------------------------------------------
def test_killing_the_worker_mid_run_loses_nothing(
    release: Release, objects, kafka_bootstrap: str, namespace: str, topic_prefix: str
) -> None:
    source, total, batch = f"{topic_prefix}orders", 10_000, 500
    dlq_with_worker(objects, kafka_bootstrap, namespace, source, FAST_POLICY)
    (first,) = ready_worker_pods(release, namespace)
    killed_at = None
    for start in range(0, total, batch):
        produce(kafka_bootstrap, f"{source}.dlq", range(start, start + batch))
        if killed_at is None and start >= total // 2:
            killed_at = len(dead_letter_ids(kafka_bootstrap, source))
            release.kubectl("delete", "pod", "-n", namespace, first.metadata.name, "--wait=false")
        time.sleep(0.1)
    assert killed_at is not None and killed_at < total, "the kill came after the run"
    release.wait(
        lambda: [
            p
            for p in worker_pods(release.core, namespace)
            if p.metadata.name != first.metadata.name and is_ready(p)
        ],
        what="a replacement worker pod",
    )

    def handled() -> tuple[set[str], int] | None:
        republished = dead_letter_ids(kafka_bootstrap, source)
        parked = dead_letter_ids(kafka_bootstrap, f"{source}.dlq.parked")
        ids = set(republished) | set(parked)
        return (ids, len(republished) + len(parked)) if len(ids) >= total else None

    ids, records = release.wait(handled, what=f"all {total} records handled", timeout=300)
    expected = {f"{source}.dlq/{n % 3}/{n // 3}" for n in range(total)}
    assert ids == expected
    print(f"killed after {killed_at} republished; {records - total} handled twice, 0 lost")


# -- (e) operator kill --------------------------------------------------------------------
def test_a_force_deleted_operator_pod_comes_back_and_serves(
    release: Release, objects, namespace: str, topic_prefix: str
) -> None:
    old = release.ready_operator_pod()
    release.kubectl(
        "delete", "pod", "-n", release.namespace, old.metadata.name, "--force", "--grace-period=0"
    )
    create_object(
        objects, namespace, "deadletterqueues", "late", {"sourceTopic": f"{topic_prefix}late"}
    )
    new = release.ready_operator_pod(not_uid=old.metadata.uid)
    assert new.metadata.name != old.metadata.name
    release.wait_dlq_ready(
        objects, namespace, "late", what="the DLQ created while the operator was down Ready"
    )


# -- (f) broken worker --------------------------------------------------------------------
def test_a_worker_that_cannot_start_says_why_and_recovers(
    release: Release, objects, kafka_bootstrap: str, namespace: str, topic_prefix: str
) -> None:
    dlq_with_worker(objects, kafka_bootstrap, namespace, f"{topic_prefix}orders", {})

    def dlq() -> dict[str, Any] | None:
        return get_object(objects, namespace, "deadletterqueues", "orders")

    release.wait(lambda: condition(dlq(), "Ready").get("status") == "True", what="DLQ Ready")
    # An image nobody serves (a pull from loopback is refused at once).
    release.upgrade("--set=workerImage.repository=localhost/dlq-operator-missing")
    try:
        broken = release.wait(
            lambda: condition(dlq(), "WorkerReady").get("reason") == "Unavailable" and dlq(),
            what="WorkerReady Unavailable",
        )
        worker = condition(broken, "WorkerReady")
        assert worker["status"] == "False"
        assert any(r in worker["message"] for r in ("ImagePullBackOff", "ErrImagePull")), worker
        ready = condition(broken, "Ready")
        assert (ready["status"], ready["reason"]) == ("False", "Unavailable")
    finally:
        release.upgrade("--set=workerImage.repository=")
    release.wait(
        lambda: (
            condition(dlq(), "Ready").get("status") == "True"
            and condition(dlq(), "WorkerReady").get("reason") == "Available"
        ),
        what="DLQ Ready again with the image fixed",
    )


# -- (g) namespace delete -----------------------------------------------------------------
def test_deleting_the_namespace_collects_the_worker(
    release: Release, api_client, objects, kafka_bootstrap: str, unique: str, topic_prefix: str
) -> None:
    namespace = f"gone-{unique}"
    release.core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=namespace)))
    dlq_with_worker(objects, kafka_bootstrap, namespace, f"{topic_prefix}orders", {})
    ready_worker_pods(release, namespace)
    apps = client.AppsV1Api(api_client)
    assert apps.read_namespaced_deployment(worker_deployment_name("orders"), namespace)
    release.core.delete_namespace(namespace)

    def gone() -> bool:
        try:
            release.core.read_namespace(namespace)
        except client.ApiException as exc:
            if exc.status == 404:
                return True
            raise
        return False

    release.wait(gone, what="the namespace finished terminating", timeout=180)
    assert not apps.list_namespaced_deployment(namespace).items
    assert not apps.list_namespaced_replica_set(namespace).items
    assert not release.core.list_namespaced_pod(namespace).items
