"""The chart's RBAC: enough for the real operator, and nothing more.

Sufficient: the operator runs as a process here, authenticated as the chart's
ServiceAccount (a client certificate from the platform's CA for the user and groups the
API server derives from the pod's token: ``system:serviceaccount:<ns>:<name>``,
``system:serviceaccounts``), with the environment the chart's Deployment sets. It then
takes a DeadLetterQueue with retries through its whole life, a RetryPolicy and a
ReprocessRequest too, without a single 403 in its log.

Least privilege: ``kubectl auth can-i --as`` that ServiceAccount, for what it must and
must not be able to do, in both modes (all namespaces, and a list of namespaces).

The operator serves only the test's namespace, so it never meets other tests' objects.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import pytest
from kubernetes import client

import local_platform
from dlq_operator.api.naming import worker_deployment_name
from tests.e2e.chart import Helm
from tests.support import GROUP, VERSION, create_object, get_object, wait_for

T = TypeVar("T")
DLQ = "deadletterqueues.dlq.orion.io"
POLICY = "retrypolicies.dlq.orion.io"
REQUEST = "reprocessrequests.dlq.orion.io"
CRD = "customresourcedefinitions.apiextensions.k8s.io"
ALL = "--all-namespaces"
# A namespace the operator is never given in these tests.
ELSEWHERE = "default"


@dataclass(frozen=True)
class Release:
    """An installed release; its objects, the ServiceAccount included, are all ``name``."""

    name: str
    namespace: str

    @property
    def user(self) -> str:
        """The user name the API server gives the release's ServiceAccount."""
        return f"system:serviceaccount:{self.namespace}:{self.name}"


@pytest.fixture(scope="module")
def helm(tools_bin: Path, kubeconfig: Path, tmp_path_factory: pytest.TempPathFactory) -> Helm:
    return Helm(tools_bin / "helm", kubeconfig, tmp_path_factory.mktemp("helm"))


def _installed(
    helm: Helm, api_client: client.ApiClient, unique: str, *args: str
) -> Iterator[Release]:
    release = Release(f"dlq-{unique}", f"dlq-system-{unique}")
    # A short full name keeps the ServiceAccount's user name within the 64 characters of a
    # certificate's common name (tokens have no such limit).
    # Its pod never starts (the image is never pulled): the operator under test here is a
    # process with the release's identity.
    helm.install(
        release.name,
        release.namespace,
        f"--set=fullnameOverride={release.name}",
        "--set=image.pullPolicy=Never",
        *args,
    )
    yield release
    helm.uninstall(release.name, release.namespace)
    client.CoreV1Api(api_client).delete_namespace(release.namespace)


@pytest.fixture
def cluster_wide_release(helm, api_client, kafka_bootstrap, unique) -> Iterator[Release]:
    """The chart with its defaults: it serves all namespaces."""
    yield from _installed(
        helm, api_client, unique, f"--set=kafka.bootstrapServers={kafka_bootstrap}"
    )


@pytest.fixture
def namespaced_release(
    helm, api_client, pod_kafka_bootstrap, operator_image, namespace, unique
) -> Iterator[Release]:
    """The chart serving only the test's namespace, with fast depth checks and resyncs, and
    retry workers of the image under test."""
    repository, _, tag = operator_image.rpartition(":")
    yield from _installed(
        helm,
        api_client,
        unique,
        f"--set=kafka.bootstrapServers={pod_kafka_bootstrap}",
        f"--set=workerImage.repository={repository}",
        f"--set=workerImage.tag={tag}",
        f"--set-json=watchNamespaces={json.dumps([namespace])}",
        "--set=monitor.intervalSeconds=2",
        "--set=resyncIntervalSeconds=5",
    )


# -- least privilege ----------------------------------------------------------------------
def can_i(kubectl, release: Release, verb: str, resource: str, where: str) -> bool:
    """``kubectl auth can-i`` as the release's ServiceAccount; ``where`` is a namespace,
    ALL, or "" for a cluster-scoped resource. ``resource`` may end in /subresource."""
    resource, _, subresource = resource.partition("/")
    scope = [] if not where else [ALL] if where == ALL else ["--namespace", where]
    result = kubectl(
        "auth",
        "can-i",
        verb,
        resource,
        *([f"--subresource={subresource}"] if subresource else []),
        *scope,
        f"--as={release.user}",
        check=False,
    )
    answer = result.stdout.strip()
    assert answer in ("yes", "no"), result.stderr
    return answer == "yes"


def operator_needs(where: str) -> list[tuple[str, str, str]]:
    """What the operator does to namespaced resources where it serves them."""
    return [
        *[(verb, DLQ, where) for verb in ("get", "list", "watch", "patch")],
        *[(verb, kind, where) for kind in (POLICY, REQUEST) for verb in ("list", "watch", "patch")],
        *[("patch", f"{kind}/status", where) for kind in (DLQ, POLICY, REQUEST)],
        ("update", f"{DLQ}/finalizers", where),
        *[
            (verb, "deployments.apps", where)
            for verb in ("get", "list", "watch", "create", "patch", "delete")
        ],
        ("list", "pods", where),
        ("create", "events", where),
    ]


def operator_never_needs(where: str) -> list[tuple[str, str, str]]:
    """Things an operator compromise must not give, where it serves and anywhere."""
    return [
        ("get", "secrets", where),
        ("list", "secrets", ALL),
        ("get", "configmaps", where),
        ("create", "pods", where),
        ("get", "pods/log", where),
        ("create", "pods/exec", where),
        ("create", "serviceaccounts/token", where),
        ("update", "deployments.apps", where),
        ("create", DLQ, where),
        ("update", DLQ, where),
        ("delete", DLQ, where),
        ("delete", POLICY, where),
        ("delete", REQUEST, where),
        ("patch", "events", where),
        ("delete", "namespaces", ""),
        ("create", "namespaces", ""),
        ("update", CRD, ""),
        ("delete", CRD, ""),
        ("create", "clusterrolebindings.rbac.authorization.k8s.io", ""),
        ("escalate", "clusterroles.rbac.authorization.k8s.io", ""),
        ("impersonate", "users", ""),
    ]


def assert_permissions(
    kubectl,
    release: Release,
    allowed: list[tuple[str, str, str]],
    denied: list[tuple[str, str, str]],
) -> None:
    wrong = [f"can {c}" for c in denied if can_i(kubectl, release, *c)]
    wrong += [f"cannot {c}" for c in allowed if not can_i(kubectl, release, *c)]
    assert not wrong, "\n".join(wrong)


def test_cluster_wide_rbac_is_exactly_what_the_operator_uses(
    kubectl, cluster_wide_release: Release, namespace: str
) -> None:
    assert_permissions(
        kubectl,
        cluster_wide_release,
        allowed=[
            *operator_needs(ALL),
            *operator_needs(namespace),
            ("list", CRD, ""),
            ("watch", CRD, ""),
        ],
        denied=[
            *operator_never_needs(namespace),
            # Serving all namespaces, kopf does not need to follow them.
            ("list", "namespaces", ""),
        ],
    )


def test_namespaced_rbac_holds_only_in_the_served_namespaces(
    kubectl, namespaced_release: Release, namespace: str
) -> None:
    assert_permissions(
        kubectl,
        namespaced_release,
        allowed=[
            *operator_needs(namespace),
            ("list", CRD, ""),
            ("watch", CRD, ""),
            ("list", "namespaces", ""),
            ("watch", "namespaces", ""),
        ],
        denied=[
            *operator_never_needs(namespace),
            *operator_needs(ELSEWHERE),
            *[(verb, kind, ALL) for verb in ("list", "watch") for kind in (DLQ, POLICY, REQUEST)],
        ],
    )


# -- sufficient ---------------------------------------------------------------------------
@dataclass
class OperatorRun:
    process: subprocess.Popen[bytes]
    log: Path

    def text(self) -> str:
        return self.log.read_text(errors="replace")

    def wait(self, predicate: Callable[[], T], what: str, timeout: float = 90) -> T:
        """wait_for, with the operator's log in the failure."""
        try:
            return wait_for(predicate, timeout=timeout, what=what)
        except pytest.fail.Exception as exc:
            tail = "\n".join(self.text().splitlines()[-40:])
            pytest.fail(f"{exc}\n--- operator log (last lines) ---\n{tail}", pytrace=False)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


@pytest.fixture
def operator_as_the_chart(
    platform: local_platform.Platform,
    namespaced_release: Release,
    api_client: client.ApiClient,
    tmp_path: Path,
    unique: str,
) -> Iterator[OperatorRun]:
    """`dlq-operator run` as the chart's ServiceAccount, with the chart's environment."""
    user = f"sa-{unique}"
    release = namespaced_release
    platform.issue_cert(
        user,
        f"/O=system:serviceaccounts/O=system:serviceaccounts:{release.namespace}/CN={release.user}",
    )
    kubeconfig = platform.write_kubeconfig(tmp_path / "kubeconfig", user)
    deployment = client.AppsV1Api(api_client).read_namespaced_deployment(
        release.name, release.namespace
    )
    chart_env = {item.name: item.value for item in deployment.spec.template.spec.containers[0].env}
    env = {
        **os.environ,
        **chart_env,
        "KUBECONFIG": str(kubeconfig),
        # The pod's ports are the pod's own; here they must be free on this machine.
        "DLQ_HEALTH_PORT": str(local_platform.free_port()),
        "DLQ_METRICS_PORT": str(local_platform.free_port()),
    }
    log = tmp_path / "operator.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [str(Path(sys.executable).parent / "dlq-operator"), "run"],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    run = OperatorRun(process, log)
    yield run
    run.stop()


def _deployment(apps: client.AppsV1Api, namespace: str, name: str) -> client.V1Deployment | None:
    try:
        return apps.read_namespaced_deployment(name, namespace)
    except client.ApiException as exc:
        if exc.status == 404:
            return None
        raise


def test_operator_runs_on_the_chart_rbac_alone(
    operator_as_the_chart: OperatorRun,
    api_client: client.ApiClient,
    namespace: str,
    topic_prefix: str,
) -> None:
    operator = operator_as_the_chart
    objects = client.CustomObjectsApi(api_client)
    apps, core = client.AppsV1Api(api_client), client.CoreV1Api(api_client)
    create_object(objects, namespace, "retrypolicies", "standard", {"maxRetries": 2})
    create_object(
        objects,
        namespace,
        "deadletterqueues",
        "orders",
        {"sourceTopic": f"{topic_prefix}orders", "retry": {"policyRef": {"name": "standard"}}},
    )

    def status(plural: str, name: str) -> dict[str, Any]:
        return (get_object(objects, namespace, plural, name) or {}).get("status") or {}

    def condition(type_: str) -> str | None:
        conditions = status("deadletterqueues", "orders").get("conditions") or []
        return next((c["status"] for c in conditions if c["type"] == type_), None)

    def event_reasons() -> set[str]:
        events = core.list_namespaced_event(namespace, field_selector="involvedObject.name=orders")
        return {event.reason for event in events.items}

    # kopf's watch, finalizer and status patches; topics; the worker Deployment.
    operator.wait(lambda: condition("Ready") == "True", what="DeadLetterQueue Ready")
    dlq = get_object(objects, namespace, "deadletterqueues", "orders")
    worker = _deployment(apps, namespace, worker_deployment_name("orders"))
    assert worker is not None and dlq is not None
    assert [ref.uid for ref in worker.metadata.owner_references] == [dlq["metadata"]["uid"]]
    operator.wait(lambda: "WorkerCreated" in event_reasons(), what="a WorkerCreated Event")
    # The depth monitor's status patch.
    operator.wait(lambda: condition("DepthKnown") == "True", what="depth figures in the status")
    # RetryPolicy status, through kopf.
    operator.wait(
        lambda: status("retrypolicies", "standard").get("usedBy") == 1, what="RetryPolicy used"
    )
    # A replay: reads the DLQ, writes its own status, posts Events.
    create_object(
        objects,
        namespace,
        "reprocessrequests",
        "replay",
        {"deadLetterQueueRef": {"name": "orders"}, "dryRun": True},
    )
    operator.wait(
        lambda: status("reprocessrequests", "replay").get("phase") == "Succeeded",
        what="ReprocessRequest Succeeded",
    )
    # Deletion: the finalizer removes the worker, then lets the DLQ go.
    objects.delete_namespaced_custom_object(GROUP, VERSION, namespace, "deadletterqueues", "orders")
    operator.wait(
        lambda: (
            get_object(objects, namespace, "deadletterqueues", "orders") is None
            and _deployment(apps, namespace, worker_deployment_name("orders")) is None
        ),
        what="DLQ and its worker deleted",
    )
    # Whatever finalizers kopf put on the others come off too.
    for plural, name in (("reprocessrequests", "replay"), ("retrypolicies", "standard")):
        objects.delete_namespaced_custom_object(GROUP, VERSION, namespace, plural, name)
        operator.wait(
            lambda plural=plural, name=name: get_object(objects, namespace, plural, name) is None,
            what=f"{plural} {name} deleted",
        )

    operator.stop()
    log = operator.text()
    # It serves this namespace only, so these are the test's objects: this operator, not
    # another one, did the work.
    for done in (
        "Handler 'changed'",
        "Handler 'reconcile'",
        "Daemon 'replay'",
        "Handler 'finalize'",
    ):
        assert f"{done} succeeded" in log, done
    refused = [
        line
        for line in log.splitlines()
        # A 403 status, not the milliseconds of a log timestamp ("05:03:34,403").
        if re.search(r"(?<![\d,.:])403\b|forbidden|not enough permissions", line, re.IGNORECASE)
    ]
    assert not refused, "\n".join(refused)
