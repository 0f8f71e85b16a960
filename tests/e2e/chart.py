"""The Helm chart under test and the built helm binary that renders and installs it."""

from __future__ import annotations

import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import pytest
import yaml
from kubernetes import client

from tests.support import GROUP, KINDS, condition, get_object, wait_for

T = TypeVar("T")
OPERATOR_SELECTOR = "app.kubernetes.io/component=operator"

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "charts" / "dlq-operator"
CRD_NAMES = {f"{plural}.{GROUP}" for plural in KINDS}


def platform_kube_version() -> str:
    """The local platform's Kubernetes version. ``helm template`` and ``helm lint`` do not
    ask a cluster, so they are told, to satisfy the chart's ``kubeVersion``."""
    for line in (ROOT / "hack" / "versions.env").read_text().splitlines():
        key, _, value = line.partition("=")
        if key == "KUBERNETES_VERSION":
            return value.strip()
    raise LookupError("KUBERNETES_VERSION is not in hack/versions.env")


class Helm:
    """helm with its own cache and config directories, pointed at the platform."""

    def __init__(self, binary: Path, kubeconfig: Path, home: Path) -> None:
        self.binary = binary
        self.kubeconfig = kubeconfig
        self.env = {
            "PATH": "/usr/bin:/bin",
            "HOME": str(home),
            "HELM_CACHE_HOME": str(home / "cache"),
            "HELM_CONFIG_HOME": str(home / "config"),
            "HELM_DATA_HOME": str(home / "data"),
        }

    def run(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(
            [str(self.binary), "--kubeconfig", str(self.kubeconfig), *args],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        if check and result.returncode != 0:
            raise AssertionError(f"helm {' '.join(args)} failed:\n{result.stdout}{result.stderr}")
        return result

    def template(self, *args: str, release: str = "dlq") -> list[dict[str, Any]]:
        """The manifests ``helm template`` renders, parsed."""
        out = self.run(
            "template", release, str(CHART), "--kube-version", platform_kube_version(), *args
        ).stdout
        return [doc for doc in yaml.safe_load_all(out) if doc]

    def install(self, release: str, namespace: str, *args: str) -> None:
        self.run(
            "install", release, str(CHART), "--namespace", namespace, "--create-namespace", *args
        )

    def uninstall(self, release: str, namespace: str) -> None:
        self.run("uninstall", release, "--namespace", namespace, "--wait", "--timeout", "60s")


def find(manifests: list[dict[str, Any]], kind: str, name: str | None = None) -> dict[str, Any]:
    """The one manifest of ``kind`` (and ``name``)."""
    found = [
        m
        for m in manifests
        if m["kind"] == kind and (name is None or m["metadata"]["name"] == name)
    ]
    assert len(found) == 1, f"expected one {kind} {name or ''}, got {len(found)}"
    return found[0]


def container_env(deployment: dict[str, Any]) -> dict[str, str]:
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    return {item["name"]: item["value"] for item in container["env"]}


@dataclass
class Release:
    """The installed chart, and what the tests need to look at its pods."""

    helm: Helm
    name: str
    namespace: str
    image: str
    bootstrap: str
    core: client.CoreV1Api
    kubectl: Callable[..., subprocess.CompletedProcess[str]]

    def operator_pods(self) -> list[client.V1Pod]:
        return self.core.list_namespaced_pod(self.namespace, label_selector=OPERATOR_SELECTOR).items

    def ready_operator_pod(self, timeout: float = 180, not_uid: str | None = None) -> client.V1Pod:
        def ready() -> client.V1Pod | None:
            return next(
                (
                    p
                    for p in self.operator_pods()
                    if is_ready(p)
                    and p.metadata.uid != not_uid
                    and not p.metadata.deletion_timestamp
                ),
                None,
            )

        return self.wait(ready, what="the operator pod Ready", timeout=timeout)

    def operator_log(self) -> str:
        pods = self.operator_pods()
        if not pods:
            return "(no operator pod)"
        result = self.kubectl("logs", "-n", self.namespace, pods[-1].metadata.name, check=False)
        return result.stdout + result.stderr

    def wait(self, predicate: Callable[[], T], what: str, timeout: float = 180) -> T:
        """wait_for, with the operator's log and the pods' states in the failure."""
        try:
            return wait_for(predicate, timeout=timeout, interval=0.5, what=what)
        except pytest.fail.Exception as exc:
            pods = self.kubectl("get", "pods", "-A", "-o", "wide", check=False).stdout
            tail = "\n".join(self.operator_log().splitlines()[-40:])
            pytest.fail(f"{exc}\n--- pods ---\n{pods}\n--- operator log ---\n{tail}", pytrace=False)

    def wait_dlq_ready(self, objects: Any, namespace: str, name: str, what: str) -> None:
        """Waits until the DeadLetterQueue says Ready=True."""

        def ready() -> bool:
            dlq = get_object(objects, namespace, "deadletterqueues", name)
            return condition(dlq, "Ready").get("status") == "True"

        self.wait(ready, what=what)

    def upgrade(self, *values: str) -> None:
        self.helm.run(
            "upgrade", self.name, str(CHART), "-n", self.namespace, "--reuse-values", *values
        )


def is_ready(pod: client.V1Pod) -> bool:
    conditions = pod.status.conditions or []
    return pod.status.phase == "Running" and any(
        c.type == "Ready" and c.status == "True" for c in conditions
    )
