"""One operator, many teams, on the platform's authenticated broker (SASL_SSL with SCRAM
users, mTLS, ACLs enforced by StandardAuthorizer): the chart-installed operator is the
broker's admin, each team's retry worker is a principal of its own whose ACLs cover only
its topics and group, and no secret shows anywhere a person or a log collector looks.
"""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from kafka import KafkaConsumer, KafkaProducer
from kafka.admin import KafkaAdminClient, NewTopic
from kafka.errors import TopicAuthorizationFailedError

import local_platform
from dlq_operator.api.naming import retry_group_name
from dlq_operator.settings import KafkaSettings
from tests.e2e.chart import Release
from tests.support import create_object, dead_letter, get_object

OPERATOR_SECRET = "dlq-operator-kafka"
SINK_SECRET = "dlq-alert-webhook"
# A webhook URL is a bearer credential (Slack's are): its token must never show either.
WEBHOOK_TOKEN = "T0KEN-4b1d-never-log-me"
# Retries at once; records that retried once already are parked.
FAST_POLICY = {"maxRetries": 1, "backoff": {"initialDelay": "0s"}}


@pytest.fixture(scope="module")
def admin_credentials(platform: local_platform.Platform) -> Path:
    """The broker admin's credentials (a directory of Secret keys): the operator's."""
    return platform.kafka_admin_credentials


@pytest.fixture(scope="module")
def admin_settings(admin_credentials: Path) -> KafkaSettings:
    return KafkaSettings(credentials_dir=admin_credentials)


@pytest.fixture(scope="module")
def release_values(
    admin_credentials: Path, admin_settings: KafkaSettings, module_kubectl
) -> tuple[str, ...]:
    """The operator as the broker's admin over SASL_SSL, its credentials and an alert
    webhook in Secrets (created before the pod can start: it waits for its volumes)."""
    module_kubectl("create", "namespace", "dlq-system", check=False)
    module_kubectl(
        "delete", "secret", "-n", "dlq-system", OPERATOR_SECRET, SINK_SECRET, check=False
    )
    module_kubectl(
        "create",
        "secret",
        "generic",
        OPERATOR_SECRET,
        "-n",
        "dlq-system",
        f"--from-file={admin_credentials}",
    )
    module_kubectl(
        "create",
        "secret",
        "generic",
        SINK_SECRET,
        "-n",
        "dlq-system",
        # Nothing listens there: every delivery fails, and failures are what get logged.
        f"--from-literal=url=http://127.0.0.1:9/hooks/{WEBHOOK_TOKEN}",
    )
    sinks = [{"kind": "generic", "name": "team-hook", "existingSecret": SINK_SECRET, "key": "url"}]
    return (
        f"--set=kafka.bootstrapServers={admin_settings.bootstrap_servers}",
        "--set=kafka.securityProtocol=SASL_SSL",
        "--set=kafka.sasl.mechanism=SCRAM-SHA-512",
        f"--set=kafka.existingSecret={OPERATOR_SECRET}",
        f"--set-json=alertSinks={json.dumps(sinks)}",
        "--set=monitor.intervalSeconds=3",
        "--set=resyncIntervalSeconds=10",
        "--set=debug=true",
    )


@dataclass
class Tenant:
    """A team: its namespace, its topics (all named with its prefix) and its principal."""

    namespace: str
    prefix: str
    principal: str
    secret: str  # the Secret with its worker's Kafka credentials


def team(
    platform: local_platform.Platform,
    kubectl: Callable[..., Any],
    namespace: str,
    prefix: str,
    principal: str,
    credentials: Path,
) -> Tenant:
    """ACLs for ``principal`` on the team's topics and its workers' groups only, and a
    Secret in its namespace made from ``credentials``."""
    platform.allow_kafka(f"User:{principal}", topics=prefix, groups=retry_group_name(namespace, ""))
    secret = f"{principal}-kafka"
    kubectl("create", "secret", "generic", secret, "-n", namespace, f"--from-file={credentials}")
    return Tenant(namespace, prefix, principal, secret)


@pytest.fixture
def scram_team(platform, kubectl, namespace: str, topic_prefix: str, tmp_path: Path) -> Tenant:
    principal = f"team-{topic_prefix.strip('-.')}"[:60]
    password = platform.add_kafka_user(principal)
    credentials = tmp_path / "scram"
    credentials.mkdir()
    (credentials / "username").write_text(principal)
    (credentials / "password").write_text(password)
    (credentials / "ca.crt").write_text((platform.pki / "ca.crt").read_text())
    return team(platform, kubectl, namespace, topic_prefix, principal, credentials)


def dlq_of(objects, tenant: Tenant, name: str, source: str, **alerting: int) -> None:
    create_object(objects, tenant.namespace, "retrypolicies", f"{name}-policy", FAST_POLICY)
    create_object(
        objects,
        tenant.namespace,
        "deadletterqueues",
        name,
        {
            "sourceTopic": source,
            "retry": {
                "policyRef": {"name": f"{name}-policy"},
                "kafkaSecretRef": {"name": tenant.secret},
            },
            **({"alerting": alerting} if alerting else {}),
        },
    )


def produce_dead_letters(settings: KafkaSettings, source: str, fresh: int, exhausted: int) -> None:
    producer = KafkaProducer(acks="all", **settings.client_config())
    for n in range(fresh + exhausted):
        producer.send(f"{source}.dlq", dead_letter(source, n, retry_count=0 if n < fresh else 5))
    producer.flush()
    producer.close()


def count(settings: KafkaSettings, topic: str) -> int:
    consumer = KafkaConsumer(
        topic, auto_offset_reset="earliest", consumer_timeout_ms=3000, **settings.client_config()
    )
    try:
        return sum(1 for _ in consumer)
    finally:
        consumer.close()


def dlq_admin(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        [str(Path(sys.executable).parent / "dlq-admin"), "--verbose", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert result.returncode == 0, f"dlq-admin {' '.join(args)}: {result.stderr[-2000:]}"
    return result


def test_the_whole_pipeline_runs_on_the_authenticated_broker_with_scoped_principals(
    release: Release,
    platform: local_platform.Platform,
    objects,
    scram_team: Tenant,
    admin_settings: KafkaSettings,
    admin_credentials: Path,
    kubeconfig: Path,
    module_kubectl,
    tmp_path: Path,
) -> None:
    release.ready_operator_pod()
    source = f"{scram_team.prefix}orders"
    admin = KafkaAdminClient(**admin_settings.client_config())
    admin.create_topics([NewTopic(source, 3, 1), NewTopic(f"{scram_team.prefix}x", 1, 1)])
    admin.close()
    dlq_of(objects, scram_team, "orders", source, warnThreshold=1, criticalThreshold=100)

    # 1. The retry pipeline: the worker, as the team's principal, republishes and parks.
    release.wait_dlq_ready(
        objects, scram_team.namespace, "orders", what="the DLQ Ready with its worker"
    )
    produce_dead_letters(admin_settings, source, fresh=5, exhausted=3)
    release.wait(lambda: count(admin_settings, source) == 5, what="5 republished by the worker")
    release.wait(
        lambda: count(admin_settings, f"{source}.dlq.parked") == 3, what="3 parked by the worker"
    )
    # 2. The depth monitor, as the admin: figures, and an alert sent to the (failing) webhook.
    status = release.wait(
        lambda: (
            (
                s := get_object(objects, scram_team.namespace, "deadletterqueues", "orders")[
                    "status"
                ]
            ).get("parked")
            == 3
            and s
        ),
        what="the monitor counts 3 parked",
    )
    assert status["alertLevel"] == "Warning"
    # 3. A ReprocessRequest replays the parked three to the source topic.
    create_object(
        objects,
        scram_team.namespace,
        "reprocessrequests",
        "again",
        {"deadLetterQueueRef": {"name": "orders"}, "source": "parked"},
    )
    done = release.wait(
        lambda: (
            (
                s := (
                    get_object(objects, scram_team.namespace, "reprocessrequests", "again") or {}
                ).get("status")
                or {}
            ).get("phase")
            == "Succeeded"
            and s
        ),
        what="the replay Succeeded",
    )
    assert done["replayed"] == 3
    release.wait(lambda: count(admin_settings, source) == 8, what="3 replayed to the source")

    # 4. dlq-admin as a person with the admin's credentials: list, reprocess, purge.
    cli_env = {
        **os.environ,
        "KUBECONFIG": str(kubeconfig),
        "DLQ_KAFKA_CREDENTIALS_DIR": str(admin_credentials),
    }
    cli_env.pop("KAFKA_BROKERS", None)
    cli_env["DLQ_KAFKA_BOOTSTRAP_SERVERS"] = admin_settings.bootstrap_servers
    listed = dlq_admin(cli_env, "list", f"{source}.dlq.parked", "-o", "json")
    assert len(json.loads(listed.stdout)) == 3
    replayed = dlq_admin(cli_env, "reprocess", f"{source}.dlq.parked", "-o", "json")
    assert json.loads(replayed.stdout)["replayed"] == 3
    purged = dlq_admin(cli_env, "purge", f"{source}.dlq.parked", "--confirm", "-o", "json")
    assert count(admin_settings, f"{source}.dlq.parked") == 0

    # 5. The team's principal can write nowhere but its own topics: the broker says no.
    team_settings = KafkaSettings(
        bootstrap_servers=admin_settings.bootstrap_servers,
        security_protocol="SASL_SSL",
        sasl_mechanism="SCRAM-SHA-512",
        credentials_dir=tmp_path / "scram",
    )
    producer = KafkaProducer(acks="all", max_block_ms=10000, **team_settings.client_config())
    producer.send(source, b"allowed").get(timeout=30)
    with pytest.raises(TopicAuthorizationFailedError) as refused:
        producer.send(f"other-team.{source}", b"not yours").get(timeout=30)
    producer.close()
    print(f"the broker to {scram_team.principal} writing elsewhere: {refused.value!r}")

    # 6. No secret anywhere people or log collectors look.
    secrets = {
        "operator SASL password": (admin_credentials / "password").read_text().strip(),
        "team SASL password": (tmp_path / "scram" / "password").read_text().strip(),
        "webhook token": WEBHOOK_TOKEN,
    }
    places = leak_places(release, module_kubectl, scram_team.namespace)
    places |= {
        f"dlq-admin {name}": out.stdout + out.stderr
        for name, out in (("list", listed), ("reprocess", replayed), ("purge", purged))
    }
    leaks = [
        f"{what} in {place}"
        for place, text in places.items()
        for what, secret in secrets.items()
        for form in (secret, base64.b64encode(secret.encode()).decode())
        if form in text
    ]
    print(f"scanned {len(places)} places for {len(secrets)} secrets: {len(leaks)} found")
    assert sum(len(text) for text in places.values()) > 10_000, "the places hold real output"
    assert leaks == []


def leak_places(release: Release, kubectl, namespace: str) -> dict[str, str]:
    """Every log, status, Event and ``-o yaml`` dump a person or a collector reads, by place."""
    places: dict[str, str] = {}
    for ns in (release.namespace, namespace):
        for kind in (
            "deadletterqueues",
            "retrypolicies",
            "reprocessrequests",
            "deployments",
            "replicasets",
            "pods",
            "events",
            "configmaps",
            "networkpolicies",
        ):
            places[f"kubectl get {kind} -n {ns} -o yaml"] = kubectl(
                "get", kind, "-n", ns, "-o", "yaml"
            ).stdout
        places[f"kubectl describe pods -n {ns}"] = kubectl("describe", "pods", "-n", ns).stdout
        for pod in kubectl("get", "pods", "-n", ns, "-o", "name").stdout.split():
            places[f"kubectl logs {pod} -n {ns}"] = kubectl(
                "logs", "-n", ns, pod, check=False
            ).stdout
    return places


def test_a_worker_reaches_an_mtls_broker_with_its_own_certificate(
    release: Release,
    platform: local_platform.Platform,
    objects,
    kubectl,
    namespace: str,
    topic_prefix: str,
    admin_settings: KafkaSettings,
) -> None:
    """The team's Secret holds a client certificate and the mTLS listener's address: the
    worker's principal is the certificate's CN, with no password anywhere."""
    principal = f"mtls-{topic_prefix.strip('-.')}"[:60]
    cert, _ = platform.kafka_client_cert(principal)
    assert not (cert.parent / "password").exists()
    tenant = team(platform, kubectl, namespace, topic_prefix, principal, cert.parent)
    source = f"{topic_prefix}trades"
    admin = KafkaAdminClient(**admin_settings.client_config())
    admin.create_topics([NewTopic(source, 1, 1)])
    admin.close()
    dlq_of(objects, tenant, "trades", source)
    release.wait_dlq_ready(objects, namespace, "trades", what="the DLQ Ready with its mTLS worker")
    produce_dead_letters(admin_settings, source, fresh=4, exhausted=0)
    release.wait(lambda: count(admin_settings, source) == 4, what="4 republished over mTLS")
