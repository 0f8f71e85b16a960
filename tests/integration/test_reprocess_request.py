"""ReprocessRequest, run by the operator against the real broker and apiserver."""

from __future__ import annotations

import json
from collections import Counter

import pytest
from kafka import KafkaAdminClient, KafkaProducer
from kafka.admin import NewTopic
from kubernetes import client

from dlq_operator.reprocess.ratelimit import MAX_BATCH
from tests.integration.test_cli import dlq_admin
from tests.support import (
    GROUP,
    VERSION,
    create_object,
    dead_letter,
    headers_of,
    read_all,
    wait_for,
)


@pytest.fixture
def objects(api_client, operator):
    return client.CustomObjectsApi(api_client)


@pytest.fixture
def dead_letters(objects, kafka_bootstrap, namespace, topic_prefix):
    """A DLQ (no retries) named "orders" and a function that fills it with n dead letters."""
    source = f"{topic_prefix}orders"
    admin = KafkaAdminClient(bootstrap_servers=kafka_bootstrap)
    admin.create_topics([NewTopic(source, 3, 1)])
    admin.close()
    create_object(objects, namespace, "deadletterqueues", "orders", {"sourceTopic": source})

    def ready():
        obj = objects.get_namespaced_custom_object(
            GROUP, VERSION, namespace, "deadletterqueues", "orders"
        )
        return any(
            c["type"] == "Ready" and c["status"] == "True"
            for c in (obj.get("status") or {}).get("conditions", [])
        )

    wait_for(ready, what="DLQ ready")

    def fill(n: int, error_code: str = "PROCESSING_FAILED") -> str:
        producer = KafkaProducer(
            bootstrap_servers=kafka_bootstrap, acks="all", linger_ms=20, batch_size=256 * 1024
        )
        for i in range(n):
            producer.send(
                f"{source}.dlq", dead_letter(source, i, error_code, retry_count=2), partition=i % 3
            )
        producer.flush()
        producer.close()
        return source

    return fill


def request(objects, namespace: str, name: str, **spec) -> None:
    create_object(
        objects,
        namespace,
        "reprocessrequests",
        name,
        {"deadLetterQueueRef": {"name": "orders"}, **spec},
    )


def status_of(objects, namespace: str, name: str) -> dict:
    obj = objects.get_namespaced_custom_object(GROUP, VERSION, namespace, "reprocessrequests", name)
    return obj.get("status") or {}


def wait_phase(objects, namespace, name, phase, timeout=120) -> dict:
    return wait_for(
        lambda: (s := status_of(objects, namespace, name)).get("phase") == phase and s,
        timeout=timeout,
        what=f"{name} {phase}",
    )


def test_request_replays_what_it_matched(
    objects, dead_letters, kafka_bootstrap, namespace, kubectl
):
    source = dead_letters(30)
    request(objects, namespace, "all")
    status = wait_phase(objects, namespace, "all", "Succeeded")
    assert status["matched"] == status["replayed"] == 30
    assert status["startedAt"] and status["completedAt"]
    replayed = read_all(kafka_bootstrap, source)
    assert sorted(json.loads(r.value)["n"] for r in replayed) == list(range(30))
    assert {headers_of(r)["x-reprocessed-by"] for r in replayed} == {f"{namespace}/all"}
    assert {headers_of(r)["x-retry-count"] for r in replayed} == {"0"}
    row = kubectl("get", "rpr", "all", "-n", namespace, "--no-headers").stdout.split()
    assert row[1:5] == ["orders", "Succeeded", "30", "30"]
    # The DLQ's figures drop: what was replayed is resolved.
    wait_for(
        lambda: (
            (
                objects.get_namespaced_custom_object(
                    GROUP, VERSION, namespace, "deadletterqueues", "orders"
                ).get("status")
                or {}
            ).get("unresolved")
            == 0
        ),
        what="unresolved back to 0",
    )


def test_selective_and_dry_run(objects, dead_letters, kafka_bootstrap, namespace):
    source = dead_letters(10, "TIMEOUT")
    dead_letters(5, "VALIDATION")
    request(objects, namespace, "dry", dryRun=True)
    status = wait_phase(objects, namespace, "dry", "Succeeded")
    assert (status["matched"], status["replayed"]) == (15, 0)
    assert status["samples"]
    assert read_all(kafka_bootstrap, source) == []

    request(
        objects,
        namespace,
        "validation",
        selector={"errorCodes": ["VALIDATION"]},
        target={"topic": f"{source}"},
    )
    status = wait_phase(objects, namespace, "validation", "Succeeded")
    assert (status["matched"], status["replayed"], status["skipped"]) == (5, 5, 10)
    assert len(read_all(kafka_bootstrap, source)) == 5


def test_suspend_cancels_and_a_second_request_waits(
    objects, dead_letters, namespace, kafka_bootstrap
):
    source = dead_letters(600)
    request(objects, namespace, "slow", rateLimit={"messagesPerSecond": 20})
    wait_phase(objects, namespace, "slow", "Running")
    request(objects, namespace, "next", selector={"maxMessages": 3})
    waiting = wait_phase(objects, namespace, "next", "Pending")
    ready = next(c for c in waiting["conditions"] if c["type"] == "Ready")
    assert ready["reason"] == "WaitingForOtherRequest" and "slow" in ready["message"]
    # Running is written before the replay's clients connect: suspend once a batch is saved.
    wait_for(
        lambda: status_of(objects, namespace, "slow").get("replayed", 0) > 0,
        what="slow's first checkpoint",
    )

    objects.patch_namespaced_custom_object(
        GROUP, VERSION, namespace, "reprocessrequests", "slow", {"spec": {"suspend": True}}
    )
    cancelled = wait_phase(objects, namespace, "slow", "Cancelled")
    assert 0 < cancelled["replayed"] < 600
    # Cancelled is what its spec asked for: Ready, neither in progress nor stalled.
    assert {c["type"]: c["status"] for c in cancelled["conditions"]} == {
        "Ready": "True",
        "Reconciling": "False",
        "Stalled": "False",
    }
    done = wait_phase(objects, namespace, "next", "Succeeded")
    assert done["replayed"] == 3
    assert len(read_all(kafka_bootstrap, source)) == cancelled["replayed"] + 3


def test_operator_killed_mid_replay_resumes(
    objects, dead_letters, kafka_bootstrap, namespace, operator
):
    total = 50_000
    source = dead_letters(total)
    request(objects, namespace, "big")
    wait_for(
        lambda: status_of(objects, namespace, "big").get("replayed", 0) >= 5_000,
        timeout=180,
        interval=0.1,
        what="a tenth replayed",
    )
    operator.stop(kill=True)
    operator.start()
    status = wait_phase(objects, namespace, "big", "Succeeded", timeout=300)
    assert status["replayed"] == status["matched"] == total

    replayed = Counter(headers_of(r)["x-dlq-id"] for r in read_all(kafka_bootstrap, source))
    assert len(replayed) == total, "no record missing"
    repeats = sum(n - 1 for n in replayed.values())
    # At most the batch in flight at the kill (MAX_BATCH records when unthrottled) comes twice.
    assert repeats <= MAX_BATCH
    assert max(replayed.values()) <= 2


def test_a_request_for_a_queue_that_does_not_exist_yet_waits_for_it(
    objects, kafka_bootstrap, namespace, topic_prefix
):
    source = f"{topic_prefix}early"
    request(objects, namespace, "early")
    waiting = wait_phase(objects, namespace, "early", "Pending")
    ready = next(c for c in waiting["conditions"] if c["type"] == "Ready")
    assert ready["reason"] == "WaitingForDeadLetterQueue" and "orders" in ready["message"]
    reconciling = next(c for c in waiting["conditions"] if c["type"] == "Reconciling")
    assert (reconciling["status"], reconciling["reason"]) == ("True", "WaitingForDeadLetterQueue")

    admin = KafkaAdminClient(bootstrap_servers=kafka_bootstrap)
    admin.create_topics([NewTopic(source, 1, 1)])
    admin.close()
    create_object(objects, namespace, "deadletterqueues", "orders", {"sourceTopic": source})
    done = wait_phase(objects, namespace, "early", "Succeeded")
    assert done["replayed"] == 0
    assert {c["type"]: c["status"] for c in done["conditions"]} == {
        "Ready": "True",
        "Reconciling": "False",
        "Stalled": "False",
    }


ONE_COMMIT = {
    "policy": ("RetryPolicy", "standard", {"maxRetries": 2}),
    "queue": ("DeadLetterQueue", "orders", {"retry": {"policyRef": {"name": "standard"}}}),
    "request": ("ReprocessRequest", "replay", {"deadLetterQueueRef": {"name": "orders"}}),
}


@pytest.mark.parametrize(
    "order",
    [
        ("policy", "queue", "request"),
        ("policy", "request", "queue"),
        ("queue", "policy", "request"),
        ("queue", "request", "policy"),
        ("request", "policy", "queue"),
        ("request", "queue", "policy"),
    ],
)
def test_one_apply_of_policy_queue_and_request_in_any_order_succeeds(
    objects, kubectl, namespace, topic_prefix, order
):
    documents = []
    for part in order:
        kind, name, spec = ONE_COMMIT[part]
        if kind == "DeadLetterQueue":
            spec = {**spec, "sourceTopic": f"{topic_prefix}orders"}
        documents.append(
            json.dumps(
                {
                    "apiVersion": f"{GROUP}/{VERSION}",
                    "kind": kind,
                    "metadata": {"name": name},
                    "spec": spec,
                }
            )
        )
    kubectl("apply", "-n", namespace, "-f", "-", input="\n---\n".join(documents))
    done = wait_phase(objects, namespace, "replay", "Succeeded")
    assert done["phase"] == "Succeeded"


def test_a_request_cannot_replay_into_another_teams_topic(
    objects, dead_letters, kafka_bootstrap, namespace, topic_prefix
):
    theirs = f"{topic_prefix}payments"
    admin = KafkaAdminClient(bootstrap_servers=kafka_bootstrap)
    admin.create_topics([NewTopic(theirs, 1, 1)])
    admin.close()
    source = dead_letters(5)
    request(objects, namespace, "sneaky", target={"topic": theirs})
    failed = wait_phase(objects, namespace, "sneaky", "Failed")
    # Needs a person (kstatus Stalled); the message says what to change.
    stalled = next(c for c in failed["conditions"] if c["type"] == "Stalled")
    assert stalled["status"] == "True"
    assert f"spec.target.topic {theirs} is not {source}" in stalled["message"]
    assert "Leave spec.target.topic out" in stalled["message"]
    assert read_all(kafka_bootstrap, theirs) == [], "the other team's topic received nothing"


def test_dlq_admin_via_the_cluster_cannot_replay_into_another_teams_topic(
    objects, dead_letters, kafka_bootstrap, namespace, topic_prefix, kubeconfig
):
    """`dlq-admin reprocess --via-cluster` makes a ReprocessRequest, so the operator's check
    holds for it too; --watch reports the refusal and exits 1."""
    theirs = f"{topic_prefix}payments"
    admin = KafkaAdminClient(bootstrap_servers=kafka_bootstrap)
    admin.create_topics([NewTopic(theirs, 1, 1)])
    admin.close()
    source = dead_letters(3)
    watched = dlq_admin(
        kafka_bootstrap, "reprocess", f"{source}.dlq", "--via-cluster", "-n", namespace,
        "--dlq", "orders", "--name", "cli-sneaky", "--target-topic", theirs, "--watch",
        env={"KUBECONFIG": str(kubeconfig)},
    )  # fmt: skip
    assert watched.returncode == 1, watched.stderr
    assert "Failed" in watched.stdout
    assert f"spec.target.topic {theirs} is not {source}" in watched.stdout + watched.stderr
    assert read_all(kafka_bootstrap, theirs) == []
