"""examples/gitops/ as Flux, Argo CD and `kubectl apply -k` will read it, checked without a
cluster: the objects against the CRDs' OpenAPI schemas and the API models (whose CEL rules
match the API server's), the original design's queues, the Flux and Argo CD objects in the
shape those tools document, and the argocd-cm snippet against the health scripts."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic import BaseModel

from dlq_operator.api import DeadLetterQueueSpec, ReprocessRequestSpec, RetryPolicySpec
from tests.gitops import ARGO_HEALTH_SCRIPTS, GITOPS_EXAMPLE, ROOT, crd_schema_errors

SPEC_MODELS: dict[str, type[BaseModel]] = {
    "DeadLetterQueue": DeadLetterQueueSpec,
    "RetryPolicy": RetryPolicySpec,
    "ReprocessRequest": ReprocessRequestSpec,
}
# The original design's DLQ topics and alert thresholds (warning, critical). It names none
# for position; the example writes out the operator's defaults.
SEED = {
    "orion.events.rfq": (10, 50),
    "orion.events.trade": (5, 20),
    "orion.events.market-data": (100, 500),
    "orion.events.position": (10, 50),
}
SEVEN_DAYS_MS = 7 * 24 * 3600 * 1000


def documents(path: Path) -> list[dict[str, Any]]:
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc]


def kustomization() -> dict[str, Any]:
    return yaml.safe_load((GITOPS_EXAMPLE / "kustomization.yaml").read_text())


def example_objects() -> list[dict[str, Any]]:
    """What the kustomization applies, each object in its namespace."""
    k = kustomization()
    objects = [doc for name in k["resources"] for doc in documents(GITOPS_EXAMPLE / name)]
    for obj in objects:
        if obj["kind"] != "Namespace":
            obj["metadata"].setdefault("namespace", k["namespace"])
    return objects


def project_objects() -> list[dict[str, Any]]:
    return [obj for obj in example_objects() if obj["apiVersion"].startswith("dlq.orion.io/")]


def test_the_kustomization_lists_every_manifest_and_its_namespace() -> None:
    k = kustomization()
    assert (k["apiVersion"], k["kind"]) == ("kustomize.config.k8s.io/v1beta1", "Kustomization")
    manifests = {p.name for p in GITOPS_EXAMPLE.glob("*.yaml")} - {"kustomization.yaml"}
    assert sorted(k["resources"]) == sorted(manifests)
    namespaces = [obj for obj in example_objects() if obj["kind"] == "Namespace"]
    assert [ns["metadata"]["name"] for ns in namespaces] == [k["namespace"]]
    assert {obj["metadata"].get("namespace", k["namespace"]) for obj in example_objects()} == {
        k["namespace"]
    }


@pytest.mark.parametrize(
    "obj", project_objects(), ids=lambda o: f"{o['kind']}/{o['metadata']['name']}"
)
def test_objects_follow_the_crd_schemas_and_rules(obj: dict[str, Any]) -> None:
    assert crd_schema_errors(obj) == []
    SPEC_MODELS[obj["kind"]].model_validate(obj["spec"])


def test_the_original_designs_queues_share_one_retry_policy() -> None:
    objects = project_objects()
    policies = {o["metadata"]["name"]: o["spec"] for o in objects if o["kind"] == "RetryPolicy"}
    assert list(policies.values()) == [
        {"maxRetries": 3, "backoff": {"initialDelay": "1s", "maxDelay": "60s", "multiplier": 2}}
    ]
    queues = {
        o["spec"]["sourceTopic"]: o["spec"] for o in objects if o["kind"] == "DeadLetterQueue"
    }
    assert sorted(queues) == sorted(SEED)
    for topic, spec in queues.items():
        assert spec["topic"] == {"partitions": 3, "retentionMs": SEVEN_DAYS_MS}, topic
        alerting = spec["alerting"]
        assert (alerting["warnThreshold"], alerting["criticalThreshold"]) == SEED[topic], topic
        assert spec["retry"]["policyRef"]["name"] in policies, topic
        assert spec["deletionPolicy"] == "Retain", topic


def test_flux_applies_the_example_and_waits_for_its_health() -> None:
    source, sync = documents(GITOPS_EXAMPLE / "flux" / "sync.yaml")
    assert (source["apiVersion"], source["kind"]) == (
        "source.toolkit.fluxcd.io/v1",
        "GitRepository",
    )
    assert set(source["spec"]) >= {"interval", "url", "ref"}
    assert (sync["apiVersion"], sync["kind"]) == ("kustomize.toolkit.fluxcd.io/v1", "Kustomization")
    spec = sync["spec"]
    assert spec["sourceRef"] == {"kind": "GitRepository", "name": source["metadata"]["name"]}
    assert sync["metadata"]["namespace"] == source["metadata"]["namespace"]
    assert (ROOT / spec["path"]).resolve() == GITOPS_EXAMPLE
    assert (spec["prune"], spec["wait"]) == (True, True)
    assert set(spec) >= {"interval", "timeout"}


def test_argo_cd_syncs_the_example_from_the_same_repository() -> None:
    (app,) = documents(GITOPS_EXAMPLE / "argocd" / "application.yaml")
    (source, _) = documents(GITOPS_EXAMPLE / "flux" / "sync.yaml")
    assert (app["apiVersion"], app["kind"]) == ("argoproj.io/v1alpha1", "Application")
    spec = app["spec"]
    assert spec["source"]["repoURL"] == source["spec"]["url"]
    assert (ROOT / spec["source"]["path"]).resolve() == GITOPS_EXAMPLE
    assert spec["destination"] == {
        "server": "https://kubernetes.default.svc",
        "namespace": kustomization()["namespace"],
    }
    assert set(spec) >= {"project", "syncPolicy"}


def test_argocd_cm_embeds_the_health_scripts_byte_for_byte() -> None:
    (cm,) = documents(GITOPS_EXAMPLE / "argocd" / "argocd-cm.yaml")
    assert (cm["kind"], cm["metadata"]["name"], cm["metadata"]["namespace"]) == (
        "ConfigMap",
        "argocd-cm",
        "argocd",
    )
    expected = {
        f"resource.customizations.health.dlq.orion.io_{kind}": script
        for kind, script in ARGO_HEALTH_SCRIPTS.items()
    }
    assert sorted(cm["data"]) == sorted(expected)
    for key, script in expected.items():
        assert cm["data"][key] == script.read_text(), (
            f"argocd-cm.yaml's {key} differs from {script.relative_to(ROOT)}: copy the script "
            "into the key (a literal block, indented 4 spaces)"
        )
