"""Shared test harness.

Tests are marked by folder (tests/unit -> ``unit``, ...). Integration and e2e tests get the
real local platform from ``hack/local_platform.py``: a fresh one per test session, or the
one already running when ``DLQ_PLATFORM_REUSE=1`` and ``DLQ_PLATFORM_DIR`` point at it.
A platform that cannot start fails those tests with the component's log; it never skips.
Retry workers, and the operator in the e2e tests, run as pods on the platform's node, from
the image of the code under test (``hack/image.py`` builds it from the Dockerfile).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

TESTS = Path(__file__).resolve().parent
ROOT = TESTS.parent
sys.path.insert(0, str(ROOT / "hack"))

import image  # noqa: E402
import local_platform  # noqa: E402
from tests.support import AlertReceiver, wait_for  # noqa: E402


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        kind = Path(item.fspath).relative_to(TESTS).parts[0]
        if kind in ("unit", "integration", "e2e"):
            item.add_marker(getattr(pytest.mark, kind))


@pytest.fixture(scope="session")
def platform(tmp_path_factory: pytest.TempPathFactory) -> Iterator[local_platform.Platform]:
    """The running local platform; its environment is exported for clients under test."""
    if os.environ.get("DLQ_PLATFORM_REUSE") == "1":
        running = local_platform.Platform()
        env = running.up(build=False)
        owned = False
    else:
        running = local_platform.Platform(tmp_path_factory.mktemp("platform"))
        try:
            env = running.up()
        except local_platform.PlatformError as exc:
            pytest.fail(f"the local platform did not start: {exc}", pytrace=False)
        owned = True
    saved = {key: os.environ.get(key) for key in env}
    os.environ.update(env)
    yield running
    for key, value in saved.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value
    if owned:
        running.down()


@pytest.fixture(scope="session")
def kafka_bootstrap(platform: local_platform.Platform) -> str:
    return platform.environment()["DLQ_KAFKA_BOOTSTRAP_SERVERS"]


@pytest.fixture(scope="session")
def pod_kafka_bootstrap(platform: local_platform.Platform) -> str:
    """Where pods reach the broker (the host reaches it there too)."""
    return platform.environment()["DLQ_POD_KAFKA_BOOTSTRAP_SERVERS"]


@pytest.fixture(scope="session")
def operator_image(platform: local_platform.Platform) -> str:
    """The image of the code under test, built from the Dockerfile and loaded into the node."""
    try:
        ref, archive = image.build_image()
        platform.load_image(archive)
    except (image.ImageError, local_platform.PlatformError) as exc:
        pytest.fail(f"the operator image could not be built and loaded: {exc}", pytrace=False)
    return ref


@pytest.fixture(scope="session")
def kubeconfig(platform: local_platform.Platform) -> Path:
    return platform.kubeconfig


@pytest.fixture(scope="session")
def tools_bin(platform: local_platform.Platform) -> Path:
    return Path(platform.environment()["DLQ_TOOLS_BIN"])


@pytest.fixture(scope="session")
def api_client(kubeconfig: Path):
    """A kubernetes ApiClient logged in as the platform admin."""
    from kubernetes import config

    return config.new_client_from_config(config_file=str(kubeconfig))


@pytest.fixture
def unique() -> str:
    """A short unique suffix for names of one test."""
    return uuid.uuid4().hex[:8]


@pytest.fixture
def namespace(api_client, unique: str) -> Iterator[str]:
    """A fresh namespace per test, deleted after it (its pods and objects go with it)."""
    from kubernetes import client

    name = f"t-{unique}"
    core = client.CoreV1Api(api_client)
    core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=name)))
    yield name
    core.delete_namespace(name)


@pytest.fixture
def topic_prefix(unique: str) -> str:
    """A unique topic prefix per test, so tests never see each other's records."""
    return f"t{unique}."


@pytest.fixture(scope="session")
def crds(api_client) -> None:
    """The generated CRDs, applied and established."""
    import yaml
    from kubernetes import client

    extensions = client.ApiextensionsV1Api(api_client)
    for path in sorted((ROOT / "crds").glob("*.yaml")):
        crd = yaml.safe_load(path.read_text())
        try:
            extensions.create_custom_resource_definition(crd)
        except client.ApiException as exc:
            if exc.status != 409:
                raise
            current = extensions.read_custom_resource_definition(crd["metadata"]["name"])
            crd["metadata"]["resourceVersion"] = current.metadata.resource_version
            extensions.replace_custom_resource_definition(crd["metadata"]["name"], crd)

        def established(name=crd["metadata"]["name"]) -> bool:
            status = extensions.read_custom_resource_definition(name).status
            return any(
                c.type == "Established" and c.status == "True" for c in (status.conditions or [])
            )

        wait_for(established, what=f"CRD {crd['metadata']['name']} established")


class OperatorProcess:
    """`dlq-operator run` as a child process, with its log kept for failing tests."""

    def __init__(self, log: Path, env: dict[str, str]) -> None:
        self.log = log
        self.env = env
        self.start()

    def start(self) -> None:
        self._out = self.log.open("ab")
        self.proc = subprocess.Popen(
            [str(Path(sys.executable).parent / "dlq-operator"), "run"],
            env=self.env,
            stdout=self._out,
            stderr=subprocess.STDOUT,
        )

    def stop(self, kill: bool = False) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL if kill else signal.SIGTERM)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._out.close()
        return self.proc.returncode

    def log_tail(self, lines: int = 60) -> str:
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])


@pytest.fixture(scope="session")
def alert_receiver() -> Iterator[AlertReceiver]:
    receiver = AlertReceiver()
    yield receiver
    receiver.stop()


@pytest.fixture(scope="session")
def operator_env(
    platform, crds, alert_receiver, operator_image, pod_kafka_bootstrap
) -> dict[str, str]:
    """Environment of an operator process under test: fast resync and depth checks, free
    ports, one webhook sink of each kind pointing at the alert receiver, and retry workers
    that run as pods of the image under test (so Kafka is named where pods reach it)."""
    sinks = [
        {"kind": "generic", "url": alert_receiver.url("/generic"), "max_attempts": 2},
        {"kind": "alertmanager", "url": alert_receiver.url("/am"), "max_attempts": 2},
        {"kind": "slack", "url": alert_receiver.url("/slack"), "max_attempts": 2},
    ]
    env = dict(os.environ)
    env.update(platform.environment())
    env.update(
        {
            "DLQ_RESYNC_INTERVAL_SECONDS": "3",
            "DLQ_MONITOR_INTERVAL_SECONDS": "2",
            "DLQ_KAFKA_RETRY_DELAY_SECONDS": "1",
            "DLQ_KAFKA_RETRY_MAX_DELAY_SECONDS": "3",
            "DLQ_HEALTH_PORT": str(local_platform.free_port()),
            "DLQ_METRICS_PORT": str(local_platform.free_port()),
            "DLQ_KAFKA_BOOTSTRAP_SERVERS": pod_kafka_bootstrap,
            "DLQ_WORKER_IMAGE": operator_image,
            "DLQ_ALERT_SINKS": json.dumps(sinks),
        }
    )
    return env


@pytest.fixture(scope="session")
def operator(operator_env, tmp_path_factory) -> Iterator[OperatorProcess]:
    """One operator for the session, watching every namespace."""
    running = OperatorProcess(tmp_path_factory.mktemp("operator") / "operator.log", operator_env)
    yield running
    running.stop()


@pytest.fixture
def kubectl(tools_bin, kubeconfig):
    """Runs the built kubectl against the platform; returns the CompletedProcess."""

    def run(*args: str, input: str | None = None, check: bool = True):
        return subprocess.run(
            [str(tools_bin / "kubectl"), "--kubeconfig", str(kubeconfig), *args],
            input=input,
            capture_output=True,
            text=True,
            check=check,
        )

    return run
