"""``dlq-admin reprocess`` from its options to the replay it starts or the request it
creates, with Kafka and the cluster stubbed (the platform tests run them for real)."""

from __future__ import annotations

import json
from typing import Any, ClassVar

import pytest
from typer.testing import CliRunner

from dlq_operator.api import DeadLetterQueueSpec, ReprocessPhase
from dlq_operator.cli import replay as replay_module
from dlq_operator.cli.app import app
from dlq_operator.reprocess.engine import ReplayOutcome
from dlq_operator.reprocess.progress import Progress

PLAN = {0: (0, 10), 1: (0, 5)}


class Client:
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        pass

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        pass


class Cluster:
    """A cluster with one DeadLetterQueue, whose requests are recorded."""

    created: ClassVar[list[tuple[str, str | None, dict[str, Any]]]] = []

    def namespace(self, namespace: str | None) -> str:
        return namespace or "default"

    def dead_letter_queue(self, namespace: str, name: str) -> DeadLetterQueueSpec:
        return DeadLetterQueueSpec(source_topic="orders")

    def create_request(self, namespace: str, name: str | None, spec: Any) -> dict[str, Any]:
        body = spec.model_dump(mode="json", by_alias=True)
        self.created.append((namespace, name, body))
        return {"metadata": {"name": name or "generated", "namespace": namespace}, "spec": body}


@pytest.fixture
def replays(monkeypatch) -> list[dict[str, Any]]:
    """What each local replay was asked to do; each one replays what it matched."""
    asked: list[dict[str, Any]] = []

    def replay(settings: object, **kwargs: Any) -> ReplayOutcome:
        asked.append(kwargs)
        progress = kwargs["progress"]
        progress.matched = progress.replayed = 1
        return ReplayOutcome(phase=ReprocessPhase.SUCCEEDED, progress=progress, message="done")

    monkeypatch.setattr(replay_module, "TopicAdmin", Client)
    monkeypatch.setattr(replay_module, "RecordReader", Client)
    monkeypatch.setattr(replay_module, "retained_offsets", lambda admin, topic: PLAN)
    monkeypatch.setattr(
        replay_module, "plan_replay", lambda admin, reader, topic, selector: Progress.start(PLAN)
    )
    monkeypatch.setattr(replay_module, "replay", replay)
    monkeypatch.setattr(replay_module, "Cluster", Cluster)
    Cluster.created = []
    return asked


def reprocess(*args: str) -> Any:
    return CliRunner().invoke(app, ["reprocess", *args, "-b", "broker:9092"])


def test_a_record_position_and_the_options_reach_the_replay(replays) -> None:
    done = reprocess(
        "orders.dlq", "1:3", "--rate", "5", "--keep-retry-count", "--target-topic", "t",
        "-o", "json",
    )  # fmt: skip
    assert done.exit_code == 0, done.output
    (asked,) = replays
    assert asked["source_topic"] == "orders.dlq"
    assert (asked["selector"].partitions, asked["selector"].from_offset) == ([1], 3)
    assert asked["selector"].to_offset == 3
    assert (asked["target"].topic, asked["target"].reset_retry_count) == ("t", False)
    assert (asked["rate"], asked["dry_run"]) == (5.0, False)
    assert asked["reprocessed_by"].startswith("dlq-admin/")
    assert json.loads(done.stdout)["replayed"] == 1


def test_filters_become_the_selector_of_a_dry_run(replays) -> None:
    done = reprocess(
        "orders.dlq.parked", "--source", "parked", "--error-code", "A", "--key", "k",
        "--header", "h=v", "--max", "4", "--dry-run", "-o", "json",
    )  # fmt: skip
    assert done.exit_code == 0, done.output
    selector = replays[0]["selector"]
    assert (selector.error_codes, selector.keys, selector.headers) == (["A"], ["k"], {"h": "v"})
    assert selector.max_messages == 4
    assert replays[0]["dry_run"] is True
    assert json.loads(done.stdout)["dryRun"] is True


def test_via_cluster_creates_a_request_with_the_same_values(replays) -> None:
    done = reprocess(
        "orders.dlq.parked", "1:3", "--via-cluster", "--dlq", "orders", "-n", "shop",
        "--name", "r1", "--rate", "7", "--dry-run",
    )  # fmt: skip
    assert done.exit_code == 0, done.output
    assert done.stdout.strip() == "reprocessrequest.dlq.orion.io/r1 created"
    assert replays == []
    ((namespace, name, spec),) = Cluster.created
    assert (namespace, name) == ("shop", "r1")
    assert spec["deadLetterQueueRef"] == {"name": "orders"}
    assert spec["source"] == "parked"
    assert spec["selector"]["partitions"] == [1]
    assert (spec["selector"]["fromOffset"], spec["selector"]["toOffset"]) == (3, 3)
    assert spec["rateLimit"] == {"messagesPerSecond": 7.0}
    assert spec["dryRun"] is True
