"""The ReprocessRequest controller's waits, with the API server and the replay stubbed:
a request that waits is woken by what it waits for, never by a timer."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable
from typing import Any

import pytest
from prometheus_client import CollectorRegistry

from dlq_operator.api import ReprocessPhase
from dlq_operator.reprocess import controller as controller_module
from dlq_operator.reprocess.controller import ReprocessController
from dlq_operator.reprocess.engine import ReplayOutcome
from dlq_operator.reprocess.metrics import ReprocessMetrics
from dlq_operator.reprocess.progress import Progress
from dlq_operator.settings import Settings

NAMESPACE = "shop"
READY_DLQ = {
    "spec": {"sourceTopic": "orders"},
    "status": {"conditions": [{"type": "TopicReady", "status": "True", "reason": "TopicReady"}]},
}


class FakeKube:
    """The DeadLetterQueue the controller reads, and the status patches it writes."""

    def __init__(self, dlq: dict[str, Any] | None = READY_DLQ) -> None:
        self.dlq = dlq
        self.reads = 0
        self.patches: dict[str, list[dict[str, Any]]] = {}
        self.events: list[tuple[str, str]] = []

    def get_object(self, plural: str, namespace: str, name: str) -> dict[str, Any] | None:
        self.reads += 1
        return self.dlq

    def patch_status(self, plural: str, namespace: str, name: str, patch: dict) -> None:
        self.patches.setdefault(name, []).append(patch)

    def post_event(self, obj: dict, type_: str, reason: str, message: str) -> None:
        self.events.append((obj["metadata"]["name"], reason))

    def phases(self, name: str) -> list[str]:
        return [p["phase"] for p in self.patches.get(name, []) if "phase" in p]

    def reasons(self, name: str) -> list[str]:
        return [
            c["reason"]
            for p in self.patches.get(name, [])
            for c in p.get("conditions", [])
            if c["type"] == "Ready"
        ]


class Daemon:
    """What kopf hands one request's daemon: its body and the stopped flag."""

    def __init__(self, name: str, spec: dict[str, Any] | None = None) -> None:
        self.body = {
            "metadata": {"namespace": NAMESPACE, "name": name, "uid": f"uid-{name}"},
            "spec": {"deadLetterQueueRef": {"name": "orders"}, **(spec or {})},
        }
        self.stopped = asyncio.Event()
        self.operator_stops = False

    def run(self, controller: ReprocessController) -> asyncio.Task[None]:
        return asyncio.create_task(
            controller.run(
                self.body,
                stopping=lambda: self.operator_stops,
                deleted=lambda: False,
                until_stopped=self.stopped.wait,
            )
        )


class Replays:
    """Stands in for ``runner.replay``: a replay sleeps on its cancel flag, as the engine
    does between batches, or on ``release`` when the test ends it (``ends_on_release``)."""

    def __init__(self, ends_on_release: bool = False) -> None:
        self.ends_on_release = ends_on_release
        self.release = threading.Event()
        self.started: list[str] = []
        self.waited: list[float] = []

    def __call__(self, settings: object, *, cancel: threading.Event, **kwargs: Any) -> Any:
        self.started.append(kwargs["reprocessed_by"])
        began = time.monotonic()
        (self.release if self.ends_on_release else cancel).wait(30)
        self.waited.append(time.monotonic() - began)
        phase = ReprocessPhase.CANCELLED if cancel.is_set() else ReprocessPhase.SUCCEEDED
        return ReplayOutcome(phase=phase, progress=Progress.start({}), message=str(phase))


def controller_with(kube: FakeKube, replays: Replays, monkeypatch) -> ReprocessController:
    monkeypatch.setattr(controller_module, "replay", replays)
    # No grants: a replay may write only to its queue's source topic.
    return ReprocessController(
        kube,  # type: ignore[arg-type]
        Settings(topic_grants=[]),
        ReprocessMetrics(CollectorRegistry()),
    )


async def until(condition: Callable[[], bool], timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.005)


def test_a_second_request_waits_for_its_turn_and_starts_when_the_first_ends(
    monkeypatch,
) -> None:
    kube, replays = FakeKube(), Replays(ends_on_release=True)
    controller = controller_with(kube, replays, monkeypatch)

    async def scenario() -> None:
        first, second = Daemon("first"), Daemon("second")
        first_task = first.run(controller)
        await until(lambda: len(replays.started) == 1)
        second_task = second.run(controller)
        await until(lambda: "Pending" in kube.phases("second"))
        await asyncio.sleep(0.3)
        reads_while_waiting = kube.reads
        released = time.monotonic()
        replays.release.set()  # the first replay ends
        await until(lambda: len(replays.started) == 2)
        assert time.monotonic() - released < 1, "the second started when the first ended"
        await asyncio.wait_for(asyncio.gather(first_task, second_task), 5)
        # One look when it started, one when the first request ended: no polling between.
        assert reads_while_waiting == 2
        assert kube.reads == 3

    asyncio.run(scenario())
    assert replays.started == [f"{NAMESPACE}/first", f"{NAMESPACE}/second"]
    assert kube.phases("second") == ["Pending", "Running", "Succeeded"]
    assert kube.reasons("second")[0] == "WaitingForOtherRequest"


def test_a_request_waits_for_its_queue_and_starts_when_the_queue_is_ready(monkeypatch) -> None:
    kube, replays = FakeKube(dlq=None), Replays(ends_on_release=True)
    replays.release.set()
    controller = controller_with(kube, replays, monkeypatch)

    async def scenario() -> None:
        early = Daemon("early")
        task = early.run(controller)
        await until(lambda: "Pending" in kube.phases("early"))
        assert controller.waits_for(NAMESPACE, "orders")
        assert not controller.waits_for(NAMESPACE, "payments")
        kube.dlq = {"spec": {"sourceTopic": "orders"}, "status": {}}
        controller.queue_changed(NAMESPACE, "orders")  # created, topic not ready yet
        await until(lambda: len(kube.reasons("early")) == 2)
        kube.dlq = READY_DLQ
        controller.queue_changed(NAMESPACE, "orders")  # the topic is ready
        await asyncio.wait_for(task, 5)
        assert not controller.waits_for(NAMESPACE, "orders")

    asyncio.run(scenario())
    assert kube.reasons("early")[:2] == ["WaitingForDeadLetterQueue", "WaitingForTopic"]
    assert kube.phases("early") == ["Pending", "Pending", "Running", "Succeeded"]
    assert kube.reads == 3


def test_a_suspend_stops_the_replay_at_once(monkeypatch) -> None:
    kube, replays = FakeKube(), Replays()
    controller = controller_with(kube, replays, monkeypatch)

    async def scenario() -> None:
        slow = Daemon("slow")
        task = slow.run(controller)
        await until(lambda: len(replays.started) == 1)
        slow.body["spec"]["suspend"] = True
        controller.request_suspended(NAMESPACE, "slow")
        await asyncio.wait_for(task, 5)

    asyncio.run(scenario())
    assert replays.waited[0] < 5, "the replay's wait returned when the suspend came"
    assert kube.phases("slow")[-1] == "Cancelled"


def test_a_suspend_cancels_a_waiting_request(monkeypatch) -> None:
    kube, replays = FakeKube(dlq=None), Replays()
    controller = controller_with(kube, replays, monkeypatch)

    async def scenario() -> None:
        waiting = Daemon("waiting")
        task = waiting.run(controller)
        await until(lambda: "Pending" in kube.phases("waiting"))
        waiting.body["spec"]["suspend"] = True
        controller.request_suspended(NAMESPACE, "waiting")
        await asyncio.wait_for(task, 5)

    asyncio.run(scenario())
    assert replays.started == []
    assert kube.phases("waiting") == ["Pending", "Cancelled"]
    assert kube.events[-1] == ("waiting", "ReprocessCancelled")


@pytest.mark.parametrize("replaying", [True, False])
def test_the_operator_stopping_ends_a_wait_or_a_replay_without_a_final_status(
    monkeypatch, replaying: bool
) -> None:
    kube, replays = FakeKube(dlq=READY_DLQ if replaying else None), Replays()
    controller = controller_with(kube, replays, monkeypatch)

    async def scenario() -> None:
        daemon = Daemon("stopped")
        task = daemon.run(controller)
        if replaying:
            await until(lambda: len(replays.started) == 1)
        else:
            await until(lambda: "Pending" in kube.phases("stopped"))
        daemon.operator_stops = True
        daemon.stopped.set()  # kopf's flag
        await asyncio.wait_for(task, 5)

    asyncio.run(scenario())
    if replaying:
        assert replays.waited[0] < 5
        assert kube.phases("stopped") == ["Running"], "left Running, to resume"
    else:
        assert kube.phases("stopped") == ["Pending"]
    assert not controller.waits_for(NAMESPACE, "orders")
