"""Shared test harness.

Tests are marked by folder (tests/unit -> ``unit``, ...). Integration and e2e tests get the
real local platform from ``hack/local_platform.py``: a fresh one per test session, or the
one already running when ``DLQ_PLATFORM_REUSE=1`` and ``DLQ_PLATFORM_DIR`` point at it.
A platform that cannot start fails those tests with the component's log; it never skips.
"""

from __future__ import annotations

import os
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

TESTS = Path(__file__).resolve().parent
ROOT = TESTS.parent
sys.path.insert(0, str(ROOT / "hack"))

import local_platform  # noqa: E402


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
def kubeconfig(platform: local_platform.Platform) -> Path:
    return platform.kubeconfig


@pytest.fixture(scope="session")
def tools_bin(platform: local_platform.Platform) -> Path:
    return Path(platform.environment()["DLQ_TOOLS_BIN"])


@pytest.fixture(scope="session")
def api_client(kubeconfig: Path):
    """A kubernetes ApiClient logged in as the platform admin."""
    from kubernetes import client, config

    return config.new_client_from_config(config_file=str(kubeconfig))


@pytest.fixture
def unique() -> str:
    """A short unique suffix for names of one test."""
    return uuid.uuid4().hex[:8]


@pytest.fixture
def namespace(api_client, unique: str) -> Iterator[str]:
    """A fresh namespace per test (never finalized here: there is no controller-manager)."""
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
