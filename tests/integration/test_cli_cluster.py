"""The commands of ``dlq-admin`` that read or write Kubernetes objects, against the real
kube-apiserver (no controller runs here: statuses are written by the test)."""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import yaml
from kafka import KafkaAdminClient
from kafka.admin import NewTopic

import local_platform
from tests.integration.test_cli import BIN, dead_letter, dlq_admin, write
from tests.support import read_all

Kubectl = Callable[..., subprocess.CompletedProcess[str]]


@pytest.fixture
def queues(crds: None, kubectl: Kubectl, namespace: str) -> Iterator[Callable[..., None]]:
    """Creates DeadLetterQueues with a status; deletes them at the end (namespaces are never
    finalized on this control plane, and an operator started later would reconcile them)."""
    created: list[str] = []

    def create(name: str, source_topic: str, status: dict | None = None, **spec: object) -> None:
        manifest = {
            "apiVersion": "dlq.orion.io/v1alpha1",
            "kind": "DeadLetterQueue",
            "metadata": {"name": name},
            "spec": {"sourceTopic": source_topic, **spec},
        }
        kubectl("apply", "-n", namespace, "-f", "-", input=json.dumps(manifest))
        created.append(name)
        if status is not None:
            kubectl(
                "patch", "dlq", name, "-n", namespace, "--subresource=status", "--type=merge",
                "-p", json.dumps({"status": status}),
            )  # fmt: skip

    yield create
    for name in created:
        kubectl("delete", "dlq", name, "-n", namespace, "--wait=false", check=False)
    kubectl("delete", "rpr", "--all", "-n", namespace, "--wait=false", check=False)


READY = {
    "type": "Ready",
    "status": "True",
    "reason": "Reconciled",
    "message": "topic and worker in place",
    "lastTransitionTime": "2026-03-01T12:00:00Z",
}


def test_stats_shows_every_queue_with_its_figures(
    kafka_bootstrap: str, queues, namespace: str, kubectl: Kubectl
) -> None:
    queues(
        "orders",
        "orders",
        {
            "topic": {"name": "orders.dlq", "partitions": 3},
            "messages": 57,
            "pending": 12,
            "parked": 45,
            "unresolved": 57,
            "alertLevel": "Critical",
            "lastCheckedAt": "2026-03-01T12:00:00Z",
            "conditions": [READY],
        },
    )
    queues("payments", "payments")  # not reconciled yet: no status at all
    shown = dlq_admin(kafka_bootstrap, "stats", "-n", namespace, "-o", "json")
    assert shown.returncode == 0, shown.stderr
    assert json.loads(shown.stdout) == [
        {
            "namespace": namespace,
            "name": "orders",
            "topic": "orders.dlq",
            "messages": 57,
            "pending": 12,
            "parked": 45,
            "unresolved": 57,
            "alertLevel": "Critical",
            "lastCheckedAt": "2026-03-01T12:00:00Z",
            "ready": "True",
            "reason": "Reconciled",
        },
        {
            "namespace": namespace,
            "name": "payments",
            "topic": "payments.dlq",
            "messages": None,
            "pending": None,
            "parked": None,
            "unresolved": None,
            "alertLevel": None,
            "lastCheckedAt": None,
            "ready": None,
            "reason": None,
        },
    ]
    table = dlq_admin(kafka_bootstrap, "stats", "-n", namespace).stdout
    rows = {row[0]: row for row in map(str.split, table.splitlines()) if row}
    assert rows["orders"][:7] == ["orders", "orders.dlq", "57", "12", "45", "57", "Critical"]
    assert rows["orders"][-1] == "True"
    assert rows["payments"] == ["payments", "payments.dlq", "-", "-", "-", "-", "-", "-", "-"]
    everywhere = dlq_admin(kafka_bootstrap, "stats", "-A", "-o", "yaml")
    assert everywhere.returncode == 0, everywhere.stderr
    assert {"namespace": namespace, "name": "orders"}.items() <= next(
        q for q in yaml.safe_load(everywhere.stdout) if q["namespace"] == namespace
    ).items()


def test_stats_in_the_kubeconfig_namespace(
    kafka_bootstrap: str, queues, namespace: str, kubeconfig: Path, tmp_path: Path
) -> None:
    queues("orders", "orders")
    config = yaml.safe_load(kubeconfig.read_text())
    for context in config["contexts"]:
        context["context"]["namespace"] = namespace
    scoped = tmp_path / "kubeconfig"
    scoped.write_text(yaml.safe_dump(config))
    shown = dlq_admin(kafka_bootstrap, "stats", "-o", "json", env={"KUBECONFIG": str(scoped)})
    assert shown.returncode == 0, shown.stderr
    assert [q["name"] for q in json.loads(shown.stdout)] == ["orders"]


def test_via_cluster_creates_the_request_with_the_same_selector(
    kafka_bootstrap: str, queues, namespace: str, kubectl: Kubectl
) -> None:
    queues("orders", "orders")
    created = dlq_admin(
        kafka_bootstrap, "reprocess", "orders.dlq", "--source", "parked",
        "--via-cluster", "-n", namespace, "--dlq", "orders", "--name", "replay-timeouts",
        "--partition", "0", "--partition", "2", "--from-offset", "10", "--to-offset", "20",
        "--since", "2026-03-01T09:00:00Z", "--until", "2026-03-01T11:00:00+01:00",
        "--error-code", "TIMEOUT", "--key", "k1", "--header", "tenant=t1", "--max", "5",
        "--rate", "50", "--dry-run", "--target-topic", "orders.retry", "--keep-retry-count",
    )  # fmt: skip
    assert created.returncode == 0, created.stderr
    assert created.stdout.strip() == "reprocessrequest.dlq.orion.io/replay-timeouts created"
    stored = json.loads(
        kubectl("get", "rpr", "replay-timeouts", "-n", namespace, "-o", "json").stdout
    )
    assert stored["spec"] == {
        "deadLetterQueueRef": {"name": "orders"},
        "source": "parked",
        "selector": {
            "partitions": [0, 2],
            "fromOffset": 10,
            "toOffset": 20,
            "since": "2026-03-01T09:00:00Z",
            "until": "2026-03-01T10:00:00Z",
            "errorCodes": ["TIMEOUT"],
            "keys": ["k1"],
            "headers": {"tenant": "t1"},
            "maxMessages": 5,
        },
        "target": {"topic": "orders.retry", "resetRetryCount": False},
        "rateLimit": {"messagesPerSecond": 50},
        "dryRun": True,
        "suspend": False,
    }


def test_via_cluster_one_record_with_a_generated_name(
    kafka_bootstrap: str, queues, namespace: str, kubectl: Kubectl
) -> None:
    queues("orders", "orders", topic={"name": "orders-failures"})
    created = dlq_admin(
        kafka_bootstrap, "reprocess", "orders-failures", "1:7",
        "--via-cluster", "-n", namespace, "--dlq", "orders", "-o", "json",
    )  # fmt: skip
    assert created.returncode == 0, created.stderr
    request = json.loads(created.stdout)
    assert request["metadata"]["name"].startswith("orders-replay-")
    assert "managedFields" not in request["metadata"]
    stored = json.loads(
        kubectl("get", "rpr", request["metadata"]["name"], "-n", namespace, "-o", "json").stdout
    )
    assert stored["spec"]["source"] == "dlq"
    assert stored["spec"]["selector"] == {"partitions": [1], "fromOffset": 7, "toOffset": 7}
    assert stored["spec"]["target"] == {"resetRetryCount": True}


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (["other.dlq", "--dlq", "orders"], 2, "other.dlq is not a topic of DeadLetterQueue"),
        (["orders.dlq", "--dlq", "missing"], 8, "DeadLetterQueue {ns}/missing not found"),
        (["orders.dlq"], 2, "--via-cluster needs --dlq NAME"),
        (["orders.dlq", "7", "--dlq", "orders"], 2, "needs the record as PARTITION:OFFSET"),
    ],
)
def test_via_cluster_refusals(
    kafka_bootstrap: str, queues, namespace: str, args: list[str], code: int, message: str
) -> None:
    queues("orders", "orders")
    failed = dlq_admin(kafka_bootstrap, "reprocess", *args, "--via-cluster", "-n", namespace)
    assert failed.returncode == code, failed.stderr
    assert message.format(ns=namespace) in failed.stderr


def patch_request_status(kubectl: Kubectl, namespace: str, name: str, status: dict) -> None:
    kubectl(
        "patch", "rpr", name, "-n", namespace, "--subresource=status", "--type=merge",
        "-p", json.dumps({"status": status}),
    )  # fmt: skip


def test_watch_follows_a_request_to_success(
    kafka_bootstrap: str, queues, namespace: str, kubectl: Kubectl
) -> None:
    queues("orders", "orders")
    dlq_admin(
        kafka_bootstrap, "reprocess", "orders.dlq", "--via-cluster", "-n", namespace,
        "--dlq", "orders", "--name", "r1",
    )  # fmt: skip
    watcher = subprocess.Popen(
        [str(BIN / "dlq-admin"), "watch", "r1", "-n", namespace, "-o", "json"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        running = {"phase": "Running", "matched": 40, "replayed": 20, "skipped": 0, "failed": 0}
        patch_request_status(kubectl, namespace, "r1", running)
        time.sleep(1.5)  # lets the watcher see Running; what it prints does not depend on it
        assert watcher.poll() is None
        done = running | {"phase": "Succeeded", "replayed": 40, "message": "40 messages replayed."}
        patch_request_status(kubectl, namespace, "r1", done)
        out, err = watcher.communicate(timeout=60)
    finally:
        watcher.kill()
    assert watcher.returncode == 0, err
    assert json.loads(out) | {"message": "40 messages replayed."} == done


@pytest.mark.parametrize("phase", ["Failed", "Cancelled"])
def test_watch_exits_non_zero_unless_it_succeeded(
    kafka_bootstrap: str, queues, namespace: str, kubectl: Kubectl, phase: str
) -> None:
    queues("orders", "orders")
    dlq_admin(
        kafka_bootstrap, "reprocess", "orders.dlq", "--via-cluster", "-n", namespace,
        "--dlq", "orders", "--name", "r1",
    )  # fmt: skip
    patch_request_status(
        kubectl, namespace, "r1", {"phase": phase, "matched": 3, "replayed": 1, "message": "boom"}
    )
    watched = dlq_admin(kafka_bootstrap, "watch", "r1", "-n", namespace)
    assert watched.returncode == 1
    assert phase in watched.stdout and "boom" in watched.stdout


def test_via_cluster_watch(kafka_bootstrap: str, queues, namespace: str, kubectl: Kubectl) -> None:
    """``--watch`` follows the request it created (here already finished by the test)."""
    queues("orders", "orders")
    watcher = subprocess.Popen(
        [
            str(BIN / "dlq-admin"), "reprocess", "orders.dlq",
            "--via-cluster", "-n", namespace, "--dlq", "orders", "--name", "r2", "--watch",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )  # fmt: skip
    try:
        kubectl("wait", "rpr/r2", "-n", namespace, "--for=create", "--timeout=60s")
        patch_request_status(kubectl, namespace, "r2", {"phase": "Succeeded", "matched": 0})
        out, err = watcher.communicate(timeout=60)
    finally:
        watcher.kill()
    assert watcher.returncode == 0, err
    assert "reprocessrequest.dlq.orion.io/r2 created" in err
    assert "Succeeded" in out


def test_unknown_request_exits_8_and_unreachable_api_server_7(
    kafka_bootstrap: str, crds: None, namespace: str, kubeconfig: Path, tmp_path: Path
) -> None:
    missing = dlq_admin(kafka_bootstrap, "watch", "nope", "-n", namespace)
    assert missing.returncode == 8
    assert missing.stderr.strip() == f"error: ReprocessRequest {namespace}/nope not found"

    config = yaml.safe_load(kubeconfig.read_text())
    for cluster in config["clusters"]:
        cluster["cluster"]["server"] = f"https://127.0.0.1:{local_platform.free_port()}"
    closed = tmp_path / "kubeconfig"
    closed.write_text(yaml.safe_dump(config))
    for command in (["stats"], ["watch", "r1", "-n", namespace]):
        failed = dlq_admin(kafka_bootstrap, *command, env={"KUBECONFIG": str(closed)})
        assert failed.returncode == 7, failed.stderr
        assert "API server unreachable" in failed.stderr and "Traceback" not in failed.stderr
    nothing = dlq_admin(kafka_bootstrap, "stats", env={"KUBECONFIG": str(tmp_path / "absent")})
    assert nothing.returncode == 7
    assert "no Kubernetes configuration found" in nothing.stderr


def test_a_local_replay_for_a_named_queue_resolves_what_it_replayed(
    kafka_bootstrap: str, queues, namespace: str, topic_prefix: str
) -> None:
    """With ``--dlq`` the replayed records count as resolved for that DeadLetterQueue."""
    source = f"{topic_prefix}orders"
    dlq = f"{source}.dlq"
    admin = KafkaAdminClient(bootstrap_servers=kafka_bootstrap)
    try:
        admin.create_topics([NewTopic(dlq, 2, 1), NewTopic(source, 1, 1)])
    finally:
        admin.close()
    write(kafka_bootstrap, dlq, [dead_letter(p, source, n) for p in (0, 1) for n in range(3)])
    queues("orders", source)
    done = dlq_admin(
        kafka_bootstrap, "reprocess", dlq, "--partition", "1", "--dlq", "orders", "-n", namespace
    )
    assert done.returncode == 0, done.stderr
    assert len(read_all(kafka_bootstrap, source)) == 3
    admin = KafkaAdminClient(bootstrap_servers=kafka_bootstrap)
    try:
        group = f"dlq-operator.resolved.{namespace}.orders"
        committed = admin.list_group_offsets(group)[group]
    finally:
        admin.close()
    assert {(tp.topic, tp.partition): at.offset for tp, at in committed.items()} == {(dlq, 1): 3}
