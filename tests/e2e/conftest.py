"""The chart installed as users install it, once per test module that asks for it."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from kubernetes import client

from tests.e2e.chart import Helm, Release
from tests.support import wait_for


@pytest.fixture(scope="module")
def module_kubectl(tools_bin: Path, kubeconfig: Path):
    def run(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(
            [str(tools_bin / "kubectl"), "--kubeconfig", str(kubeconfig), *args],
            capture_output=True,
            text=True,
            timeout=120,
        )
        if check and result.returncode:
            raise AssertionError(f"kubectl {' '.join(args)}: {result.stderr}")
        return result

    return run


@pytest.fixture
def objects(api_client: client.ApiClient) -> client.CustomObjectsApi:
    return client.CustomObjectsApi(api_client)


@pytest.fixture(scope="module")
def release_values() -> tuple[str, ...]:
    """Values beyond the image and Kafka; a module overrides this fixture for its own."""
    return ()


@pytest.fixture(scope="module")
def release(
    release_values: tuple[str, ...],
    tools_bin: Path,
    kubeconfig: Path,
    tmp_path_factory: pytest.TempPathFactory,
    api_client: client.ApiClient,
    operator_image: str,
    pod_kafka_bootstrap: str,
    module_kubectl,
) -> Iterator[Release]:
    """The chart with its defaults plus the image, Kafka and the module's
    ``release_values``; it serves every namespace, and each test works in its own."""
    helm = Helm(tools_bin / "helm", kubeconfig, tmp_path_factory.mktemp("helm"))
    repository, _, tag = operator_image.rpartition(":")
    installed = Release(
        helm,
        "dlq",
        "dlq-system",
        operator_image,
        pod_kafka_bootstrap,
        client.CoreV1Api(api_client),
        module_kubectl,
    )
    helm.install(
        installed.name,
        installed.namespace,
        f"--set=image.repository={repository}",
        f"--set=image.tag={tag}",
        f"--set=kafka.bootstrapServers={pod_kafka_bootstrap}",
        *release_values,
    )
    yield installed
    helm.uninstall(installed.name, installed.namespace)
    installed.core.delete_namespace(installed.namespace)
    # The next module installs into a namespace of the same name.
    wait_for(
        lambda: (
            installed.namespace
            not in {ns.metadata.name for ns in installed.core.list_namespace().items}
        ),
        timeout=120,
        what=f"namespace {installed.namespace} gone",
    )
