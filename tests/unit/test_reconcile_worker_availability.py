"""WorkerReady from a worker Deployment and its pods, as the API server reports them."""

from __future__ import annotations

from typing import Any

import pytest

from dlq_operator.api.conditions import AVAILABLE, PROGRESSING, UNAVAILABLE
from dlq_operator.reconcile.workload import (
    MESSAGE_LIMIT,
    worker_availability,
    worker_verdict_changed,
)


def deployment(
    replicas: int = 1,
    generation: int = 2,
    observed: int = 2,
    updated: int = 1,
    available: int = 1,
    conditions: list[dict[str, str]] | None = None,
) -> dict[str, Any]:
    return {
        "metadata": {"name": "orders-retry-worker", "generation": generation},
        "spec": {"replicas": replicas},
        "status": {
            "observedGeneration": observed,
            "updatedReplicas": updated,
            "availableReplicas": available,
            "conditions": conditions or [],
        },
    }


def pod(name: str, waiting: str | None = None, message: str = "") -> dict[str, Any]:
    state = {"waiting": {"reason": waiting, "message": message}} if waiting else {"running": {}}
    return {"metadata": {"name": name}, "status": {"containerStatuses": [{"state": state}]}}


def test_every_replica_of_the_current_template_available() -> None:
    verdict = worker_availability(deployment(replicas=2, updated=2, available=2), [])
    assert (verdict.ok, verdict.reason) == (True, AVAILABLE)
    assert "2/2 replicas available" in verdict.message


def test_scaled_to_zero_is_available() -> None:
    assert worker_availability(deployment(replicas=0, updated=0, available=0), []).ok


@pytest.mark.parametrize(
    "changes",
    [
        {"observed": 1},  # the controller has not seen the new template yet
        {"updated": 0},  # old pods still serve
        {"available": 0},  # the new pod is not ready yet
    ],
)
def test_a_rollout_in_progress_is_progressing(changes: dict[str, int]) -> None:
    verdict = worker_availability(deployment(**changes), [pod("w-1", "ContainerCreating")])
    assert (verdict.ok, verdict.reason) == (False, PROGRESSING)
    assert "pod w-1: ContainerCreating" in verdict.message


@pytest.mark.parametrize(
    "reason", ["ImagePullBackOff", "ErrImagePull", "CrashLoopBackOff", "ErrImageNeverPull"]
)
def test_a_stuck_pod_makes_it_unavailable_with_its_reason(reason: str) -> None:
    verdict = worker_availability(
        deployment(available=0), [pod("w-1", reason, 'image "nope:1" not found'), pod("w-2")]
    )
    assert (verdict.ok, verdict.reason) == (False, UNAVAILABLE)
    assert f'pod w-1: {reason}: image "nope:1" not found' in verdict.message
    assert "w-2" not in verdict.message
    # The Deployment controller has not given up yet: kstatus would still wait for it.
    assert not verdict.stalled


def test_the_controllers_own_failures_make_it_unavailable() -> None:
    failed = deployment(
        available=0,
        conditions=[
            {"type": "Progressing", "status": "False", "reason": "ProgressDeadlineExceeded"},
            {"type": "ReplicaFailure", "status": "True", "reason": "FailedCreate", "message": "x"},
        ],
    )
    verdict = worker_availability(failed, [])
    assert verdict.reason == UNAVAILABLE and verdict.stalled
    assert "ProgressDeadlineExceeded" in verdict.message and "FailedCreate: x" in verdict.message


def test_unschedulable_pods_are_stuck() -> None:
    unschedulable = {
        "metadata": {"name": "w-1"},
        "status": {
            "conditions": [
                {"type": "PodScheduled", "reason": "Unschedulable", "message": "0/1 nodes"}
            ]
        },
    }
    verdict = worker_availability(deployment(available=0), [unschedulable])
    assert verdict.reason == UNAVAILABLE and "Unschedulable: 0/1 nodes" in verdict.message


def test_long_messages_are_cut() -> None:
    pods = [pod(f"w-{i}", "ErrImagePull", "x" * 200) for i in range(20)]
    message = worker_availability(deployment(available=0), pods).message
    assert len(message) == MESSAGE_LIMIT and message.endswith("...")


@pytest.mark.parametrize(
    ("state", "reported", "changed"),
    [
        (deployment(), AVAILABLE, False),
        (deployment(), PROGRESSING, True),  # became available
        (deployment(), None, True),
        (deployment(available=0), AVAILABLE, True),  # a pod went
        (deployment(available=0), PROGRESSING, False),
        # The pods said why; a Deployment merely in progress does not contradict them.
        (deployment(available=0), UNAVAILABLE, False),
        (
            deployment(available=0, conditions=[{"type": "Progressing", "status": "False"}]),
            PROGRESSING,
            True,
        ),
    ],
)
def test_the_deployment_alone_decides_when_to_look_again(
    state: dict[str, Any], reported: str | None, changed: bool
) -> None:
    assert worker_verdict_changed(state, reported) is changed
