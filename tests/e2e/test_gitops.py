"""GitOps as Flux and Argo CD do it, with the chart-installed operator on the platform's node:
objects applied together in any order, judged healthy by kstatus (Flux, kpt) and by the
Argo CD health scripts of examples/gitops, both run by ``gitops-check`` on the objects the
API server returns.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from kafka import KafkaAdminClient
from kafka.admin import NewTopic
from kubernetes import client

from dlq_operator.api.naming import PAUSED_ANNOTATION
from tests.e2e.chart import ROOT, Release
from tests.gitops import GITOPS_EXAMPLE, Health, gitops_check_path, health_verdicts
from tests.support import KINDS, create_object, get_object, wait_for

PLURALS = {kind: plural for plural, kind in KINDS.items()}


@pytest.fixture(scope="module")
def release_values() -> tuple[str, ...]:
    return (
        # No periodic status writes while a test compares resourceVersions: the monitor and
        # the resync run once an hour (the first check of a new DLQ still comes at once).
        "--set=monitor.intervalSeconds=3600",
        "--set=resyncIntervalSeconds=3600",
        # Each retry worker gets a NetworkPolicy (the local network plugin does not enforce
        # them; the API server validates them).
        "--set=networkPolicy.enabled=true",
    )


@pytest.fixture
def verdicts(tools_bin: Path) -> Callable[[list[dict[str, Any]]], list[Health]]:
    tool = gitops_check_path(tools_bin)
    return lambda found: health_verdicts(found, tool)


def observed(objects, namespace: str, kind: str, name: str) -> dict[str, Any] | None:
    """The object once the operator has written the status of its current generation."""
    obj = get_object(objects, namespace, PLURALS[kind], name)
    status = (obj or {}).get("status") or {}
    return (
        obj if obj and status.get("observedGeneration") == obj["metadata"]["generation"] else None
    )


def settled(release: Release, read: Callable[[], Any], what: str, quiet: float = 5) -> Any:
    """What ``read`` returns once it has stayed the same for ``quiet`` seconds."""
    seen: list[Any] = []

    def stable() -> Any:
        seen.append(read())
        return (
            seen[-1]
            if len(seen) > quiet and all(s == seen[-1] for s in seen[-int(quiet) :])
            else None
        )

    return release.wait(stable, what=what)


# -- each kind in each state ------------------------------------------------------------


def test_health_of_each_kind_in_each_state(
    release: Release, objects, verdicts, kafka_bootstrap: str, namespace: str, topic_prefix: str
) -> None:
    admin = KafkaAdminClient(bootstrap_servers=kafka_bootstrap)
    # A topic of 6 partitions that a DLQ adopts asking for 3: only a person can fix that.
    admin.create_topics(
        [NewTopic(f"{topic_prefix}wide.dlq", 6, 1), NewTopic(f"{topic_prefix}gone", 1, 1)]
    )
    admin.close()
    just_applied = create_object(objects, namespace, "retrypolicies", "standard", {})
    cases: dict[str, tuple[str, str, dict[str, Any]]] = {
        # name: (kind, what the state is, spec)
        "ready": ("DeadLetterQueue", "Ready", {"sourceTopic": f"{topic_prefix}ready"}),
        "waiting": (
            "DeadLetterQueue",
            "waits for its RetryPolicy",
            {"sourceTopic": f"{topic_prefix}waiting", "retry": {"policyRef": {"name": "later"}}},
        ),
        "stuck": (
            "DeadLetterQueue",
            "needs a person (NotSupported)",
            {"sourceTopic": f"{topic_prefix}wide", "topic": {"partitions": 3, "adopt": True}},
        ),
        "replayed": ("ReprocessRequest", "Succeeded", {"deadLetterQueueRef": {"name": "ready"}}),
        "early": (
            "ReprocessRequest",
            "waits for its DeadLetterQueue",
            {"deadLetterQueueRef": {"name": "coming"}},
        ),
        "refused": (
            "ReprocessRequest",
            "needs a person (Failed: a foreign target)",
            {"deadLetterQueueRef": {"name": "ready"}, "target": {"topic": f"{topic_prefix}gone"}},
        ),
    }
    for name, (kind, _, spec) in cases.items():
        create_object(objects, namespace, PLURALS[kind], name, spec)
    create_object(
        objects,
        namespace,
        "deadletterqueues",
        "paused",
        {"sourceTopic": f"{topic_prefix}paused"},
        annotations={PAUSED_ANNOTATION: "true"},
    )
    expected = {
        "ready": ("Current", "Healthy"),
        "waiting": ("InProgress", "Progressing"),
        "stuck": ("Failed", "Degraded"),
        "replayed": ("Current", "Healthy"),
        "early": ("InProgress", "Progressing"),
        "refused": ("Failed", "Degraded"),
    }
    phases = {"replayed": "Succeeded", "early": "Pending", "refused": "Failed"}

    def arrived() -> list[dict[str, Any]] | None:
        found = [observed(objects, namespace, kind, name) for name, (kind, _, _) in cases.items()]
        if any(obj is None for obj in found):
            return None
        done = all(
            (obj.get("status") or {}).get("phase") == phases[obj["metadata"]["name"]]
            for obj in found
            if obj["kind"] == "ReprocessRequest"
        )
        return found if done else None  # type: ignore[return-value]

    found = release.wait(arrived, what="every object in its state")
    policy = release.wait(
        lambda: observed(objects, namespace, "RetryPolicy", "standard"), what="policy observed"
    )
    paused = get_object(objects, namespace, "deadletterqueues", "paused")
    table = verdicts([just_applied, policy, *found, paused])
    rows = [
        ("RetryPolicy", "just applied, not yet seen by the operator", table[0]),
        ("RetryPolicy", "Ready", table[1]),
        *[
            (kind, state, health)
            for (kind, state, _), health in zip(cases.values(), table[2:-1], strict=True)
        ],
        ("DeadLetterQueue", "paused (dlq.orion.io/paused)", table[-1]),
    ]
    print("\n".join(f"| {kind} | {state} | {h.kstatus} | {h.argo} |" for kind, state, h in rows))
    # kstatus has nothing to go by before the first status: Current; Argo CD waits for it.
    assert table[0].pair == ("Current", "Progressing")
    assert table[1].pair == ("Current", "Healthy")
    assert {h.name: h.pair for h in table[2:-1]} == expected
    assert table[-1].argo == "Suspended"
    # The verdicts of a person's problem carry the message that names the fix.
    by_name = {h.name: h for h in table}
    assert "at least 6" in by_name["stuck"].kstatus_message
    assert "at least 6" in by_name["stuck"].argo_message
    assert "Leave spec.target.topic out" in by_name["refused"].argo_message


# -- the GitOps example repository --------------------------------------------------------


def example_objects() -> list[tuple[str, str]]:
    """(kind, name) of every object the example's kustomization applies."""
    found = []
    kustomization = yaml.safe_load((GITOPS_EXAMPLE / "kustomization.yaml").read_text())
    for resource in kustomization["resources"]:
        for doc in yaml.safe_load_all((GITOPS_EXAMPLE / resource).read_text()):
            if doc:
                found.append((doc["kind"], doc["metadata"]["name"]))
    return found


@pytest.fixture
def example_namespace(api_client: client.ApiClient, kafka_bootstrap: str) -> Iterator[str]:
    """The example's own namespace, gone again afterwards with its topics (so that the next
    apply finds a fresh broker, as a new cluster would)."""
    namespace = yaml.safe_load((GITOPS_EXAMPLE / "kustomization.yaml").read_text())["namespace"]
    core = client.CoreV1Api(api_client)

    def clean() -> None:
        names = {ns.metadata.name for ns in core.list_namespace().items}
        if namespace in names:
            core.delete_namespace(namespace)
        wait_for(
            lambda: namespace not in {ns.metadata.name for ns in core.list_namespace().items},
            timeout=120,
            what=f"namespace {namespace} gone",
        )
        admin = KafkaAdminClient(bootstrap_servers=kafka_bootstrap)
        ours = [t for t in admin.list_topics() if t.startswith("orion.events.")]
        if ours:
            admin.delete_topics(ours)
        admin.close()

    clean()
    yield namespace
    clean()


def resource_versions(objects, namespace: str) -> dict[tuple[str, str], str]:
    return {
        (kind, name): get_object(objects, namespace, PLURALS[kind], name)["metadata"][
            "resourceVersion"
        ]
        for kind, name in example_objects()
        if kind in PLURALS
    }


@pytest.mark.parametrize("mode", [(), ("--server-side",)], ids=["client-side", "server-side"])
def test_the_gitops_example_applies_in_one_go_becomes_current_and_stays(
    release: Release, objects, verdicts, kubectl, example_namespace: str, mode: tuple[str, ...]
) -> None:
    apply = ("apply", "-k", str(GITOPS_EXAMPLE), *mode)
    kubectl(*apply)
    wanted = [(kind, name) for kind, name in example_objects() if kind in PLURALS]
    assert sorted(kind for kind, _ in wanted) == ["DeadLetterQueue"] * 4 + ["RetryPolicy"]

    def current() -> list[Health] | None:
        found = [observed(objects, example_namespace, kind, name) for kind, name in wanted]
        if any(obj is None for obj in found):
            return None
        health = verdicts(found)  # type: ignore[arg-type]
        return health if all(h.pair == ("Current", "Healthy") for h in health) else None

    release.wait(current, what="every object of the example Current and Healthy")
    policies = client.NetworkingV1Api(objects.api_client).list_namespaced_network_policy(
        example_namespace
    )
    assert sorted(p.metadata.name for p in policies.items) == sorted(
        f"{name}-retry-worker" for kind, name in wanted if kind == "DeadLetterQueue"
    )
    before = settled(release, lambda: resource_versions(objects, example_namespace), "quiet")
    again = kubectl(*apply)
    after = resource_versions(objects, example_namespace)
    assert after == before, "a second apply moved a resourceVersion"
    if not mode:
        assert all(line.endswith("unchanged") for line in again.stdout.splitlines()), again.stdout


def test_every_other_example_becomes_current(
    release: Release, objects, verdicts, kubectl, kafka_bootstrap: str, namespace: str
) -> None:
    """examples/0*: the manifests a user copies first, applied as they are."""
    manifests = sorted(ROOT.glob("examples/0*/*.yaml"))
    admin = KafkaAdminClient(bootstrap_servers=kafka_bootstrap)
    # The sample consumer's topics would be made by the application; here they are made up front.
    sources = [
        doc["spec"]["sourceTopic"]
        for path in manifests
        for doc in yaml.safe_load_all(path.read_text())
        if doc and doc["kind"] == "DeadLetterQueue"
    ]
    existing = set(admin.list_topics())
    missing = [NewTopic(t, 1, 1) for t in sources if t not in existing]
    if missing:
        admin.create_topics(missing)
    for topic in [t for s in sources for t in (f"{s}.dlq", f"{s}.dlq.parked")]:
        if topic in existing:
            admin.delete_topics([topic])  # left by an earlier run: this is a fresh start
    admin.close()
    for path in manifests:
        kubectl("apply", "-n", namespace, "-f", str(path))
    applied = [
        (doc["kind"], doc["metadata"]["name"])
        for path in manifests
        for doc in yaml.safe_load_all(path.read_text())
        if doc
    ]
    assert {kind for kind, _ in applied} == set(PLURALS)

    def current() -> list[Health] | None:
        found = [observed(objects, namespace, kind, name) for kind, name in applied]
        if any(obj is None for obj in found):
            return None
        health = verdicts(found)  # type: ignore[arg-type]
        return health if all(h.kstatus == "Current" for h in health) else None

    health = release.wait(current, what="every example Current")
    print(json.dumps({h.name: h.pair for h in health}))
    assert all(h.argo == "Healthy" for h in health)
