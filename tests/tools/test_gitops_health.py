"""Every state of every kind, as the operator writes it, through Flux's kstatus and the Argo CD
health scripts (examples/gitops/argocd/health/), by gitops-check.

The states follow the status contract: `status.observedGeneration`, and conditions Ready,
Reconciling (work under way, or a dependency still coming) and Stalled (a person has to
act), with `status.phase` on a ReprocessRequest; the conditions are written by the
operator's own `set_state`. Each case is a pair of verdicts; the table is the contract
between the operator and the GitOps tools. The helpers (tests/gitops.py) work the same on
objects read back from a cluster.
"""

from __future__ import annotations

import json
import re
import subprocess
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from dlq_operator.api.conditions import State, set_state
from tests.gitops import (
    ARGO_HEALTH_SCRIPTS,
    GitopsCheckError,
    Health,
    crd_schema_errors,
    health_verdicts,
    run_gitops_check,
)

SPECS: dict[str, dict[str, Any]] = {
    "DeadLetterQueue": {"sourceTopic": "orders", "retry": {"policyRef": {"name": "standard"}}},
    "RetryPolicy": {"maxRetries": 3},
    "ReprocessRequest": {"deadLetterQueueRef": {"name": "orders"}, "source": "parked"},
}
PAUSED = {"dlq.orion.io/paused": "true"}
SUSPEND = {"suspend": True}
WRITTEN_AT = datetime(2026, 1, 1, tzinfo=UTC)


def status(
    state: State, reason: str, message: str, *, phase: str | None = None, generation: int = 1
) -> dict[str, Any]:
    """A status as the operator writes it: Ready, Reconciling and Stalled by the operator's
    own ``set_state``, for ``generation``."""
    written: dict[str, Any] = {
        "observedGeneration": generation,
        "conditions": set_state([], state, reason, message, generation, WRITTEN_AT),
    }
    if phase is not None:
        written["phase"] = phase
    return written


@dataclass(frozen=True)
class Case:
    kind: str
    state: str
    status: dict[str, Any] | None
    kstatus: str
    argo: str
    generation: int = 1
    annotations: dict[str, str] = field(default_factory=dict)
    deleting: bool = False
    spec: dict[str, Any] = field(default_factory=dict)

    @property
    def name(self) -> str:
        return re.sub(r"[^a-z0-9]+", "-", f"{self.kind} {self.state}".lower()).strip("-")

    @property
    def message(self) -> str | None:
        """The message both tools must show: the Stalled or Reconciling condition's, once
        the operator has seen the object's generation."""
        written = self.status or {}
        if written.get("observedGeneration") != self.generation:
            return None
        for c in written.get("conditions", []):
            if c["type"] in ("Stalled", "Reconciling") and c["status"] == "True":
                return c["message"]
        return None

    def object(self) -> dict[str, Any]:
        metadata: dict[str, Any] = {
            "name": self.name,
            "namespace": "orion-dlq",
            "generation": self.generation,
            "uid": "00000000-0000-0000-0000-000000000001",
            "creationTimestamp": "2026-01-01T00:00:00Z",
        }
        if self.annotations:
            metadata["annotations"] = self.annotations
        if self.deleting:
            metadata["deletionTimestamp"] = "2026-01-02T00:00:00Z"
            metadata["finalizers"] = ["dlq.orion.io/cleanup"]
        obj: dict[str, Any] = {
            "apiVersion": "dlq.orion.io/v1alpha1",
            "kind": self.kind,
            "metadata": metadata,
            "spec": {**SPECS[self.kind], **self.spec},
        }
        if self.status is not None:
            obj["status"] = self.status
        return obj


DLQ_READY = status(State.READY, "Reconciled", "topic orders.dlq matches the spec; retry worker "
                   "available")
POLICY_READY = status(State.READY, "Accepted", "used by 4 DeadLetterQueue(s)")


def dlq_waiting(reason: str, message: str) -> Case:
    return Case("DeadLetterQueue", f"reconciling ({reason})",
                status(State.RECONCILING, reason, message), "InProgress", "Progressing")


def dlq_stalled(reason: str, message: str) -> Case:
    return Case("DeadLetterQueue", f"stalled ({reason})",
                status(State.STALLED, reason, message), "Failed", "Degraded")


CASES = [
    # kstatus calls an object whose status the operator has not written yet Current (there
    # is nothing to compare); Argo CD waits for the operator. See examples/gitops/README.md.
    Case("DeadLetterQueue", "new (no status yet)", None, "Current", "Progressing"),
    Case("DeadLetterQueue", "spec changed, not yet seen", DLQ_READY, "InProgress",
         "Progressing", generation=2),
    Case("DeadLetterQueue", "ready", DLQ_READY, "Current", "Healthy"),
    dlq_waiting("PolicyNotFound", "RetryPolicy standard does not exist in orion-dlq yet"),
    dlq_waiting("KafkaUnavailable", "Kafka is unreachable; retrying in 30s"),
    dlq_waiting("Progressing", "retry worker rolling out: 0 of 1 replicas updated"),
    dlq_stalled("InvalidSpec", "spec.topic.config: unknown key cleanup.polcy; fix the spec"),
    dlq_stalled("TopicConflict", "orders.dlq belongs to orion-dlq/older; set spec.topic.name"),
    dlq_stalled("NotSupported", "partitions never shrink: set spec.topic.partitions to 6"),
    dlq_stalled("ProgressDeadlineExceeded", "worker unavailable: ImagePullBackOff; fix the image"),
    Case("DeadLetterQueue", "paused", DLQ_READY, "Current", "Suspended", annotations=PAUSED),
    # A paused queue is not reconciled, so a spec change stays unobserved: Flux waits for it.
    Case("DeadLetterQueue", "paused, spec changed", DLQ_READY, "InProgress", "Suspended",
         generation=2, annotations=PAUSED),
    Case("DeadLetterQueue", "being deleted", DLQ_READY, "Terminating", "Progressing",
         deleting=True),
    Case("RetryPolicy", "new (no status yet)", None, "Current", "Progressing"),
    Case("RetryPolicy", "spec changed, not yet seen", POLICY_READY, "InProgress",
         "Progressing", generation=2),
    Case("RetryPolicy", "ready", POLICY_READY, "Current", "Healthy"),
    Case("RetryPolicy", "reconciling (Progressing)",
         status(State.RECONCILING, "Progressing", "rolling 2 retry workers"),
         "InProgress", "Progressing"),
    Case("RetryPolicy", "stalled (InvalidSpec)",
         status(State.STALLED, "InvalidSpec", "backoff.maxDelay is below initialDelay; fix it"),
         "Failed", "Degraded"),
    Case("RetryPolicy", "being deleted", POLICY_READY, "Terminating", "Progressing",
         deleting=True),
    Case("ReprocessRequest", "new (no status yet)", None, "Current", "Progressing"),
    Case("ReprocessRequest", "pending",
         status(State.RECONCILING, "WaitingForDeadLetterQueue", "DeadLetterQueue orders does "
                "not exist in orion-dlq yet", phase="Pending"), "InProgress", "Progressing"),
    Case("ReprocessRequest", "running",
         status(State.RECONCILING, "Running", "replaying from orders.dlq.parked",
                phase="Running"), "InProgress", "Progressing"),
    Case("ReprocessRequest", "succeeded",
         status(State.READY, "Succeeded", "replayed 100 of 100", phase="Succeeded"),
         "Current", "Healthy"),
    Case("ReprocessRequest", "failed",
         status(State.STALLED, "Failed", "topic orders is gone; recreate it, then a new "
                "request", phase="Failed"), "Failed", "Degraded"),
    Case("ReprocessRequest", "cancelled (spec.suspend)",
         # Suspend is the desired state: Ready, reason Cancelled (kstatus reads Ready).
         status(State.READY, "Cancelled", "Cancelled at the checkpoint; so far 40 replayed",
                phase="Cancelled", generation=2), "Current", "Suspended",
         generation=2, spec=SUSPEND),
    Case("ReprocessRequest", "suspend set, not yet seen",
         status(State.RECONCILING, "Running", "replaying from orders.dlq.parked",
                phase="Running"), "InProgress", "Progressing", generation=2, spec=SUSPEND),
    Case("ReprocessRequest", "being deleted",
         status(State.READY, "Succeeded", "replayed 100 of 100", phase="Succeeded"),
         "Terminating", "Progressing", deleting=True),
]


def _id(case: Case) -> str:
    return f"{case.kind}: {case.state}"


@pytest.fixture(scope="module")
def verdicts(gitops_check: Path) -> dict[str, Health]:
    """All cases through the helper in one go (the three kinds mixed, as an e2e test has)."""
    return {health.name: health for health in health_verdicts(
        [case.object() for case in CASES], gitops_check)}


def test_case_names_are_unique() -> None:
    assert len({case.name for case in CASES}) == len(CASES)


@pytest.mark.parametrize("case", CASES, ids=_id)
def test_case_objects_follow_the_crds(case: Case) -> None:
    assert crd_schema_errors(case.object()) == []


@pytest.mark.parametrize("case", CASES, ids=_id)
def test_verdicts(case: Case, verdicts: dict[str, Health]) -> None:
    health = verdicts[case.name]
    assert (health.kind, health.namespace) == (case.kind, "orion-dlq")
    assert health.pair == (case.kstatus, case.argo), health
    if case.message is not None:
        assert health.kstatus_message == health.argo_message == case.message, health


def test_every_state_of_every_kind_is_covered() -> None:
    verdicts = {(case.kind, case.argo) for case in CASES}
    for kind in ARGO_HEALTH_SCRIPTS:
        assert {(kind, v) for v in ("Healthy", "Progressing", "Degraded")} <= verdicts
    assert {("DeadLetterQueue", "Suspended"), ("ReprocessRequest", "Suspended")} <= verdicts
    phases = {(case.status or {}).get("phase") for case in CASES}
    assert {"Pending", "Running", "Succeeded", "Failed", "Cancelled"} <= phases
    assert {case.kstatus for case in CASES} == {"Current", "InProgress", "Failed", "Terminating"}


def test_a_failing_script_fails_the_check(gitops_check: Path, tmp_path: Path) -> None:
    script = tmp_path / "broken.lua"
    script.write_text('error("no health today")\n')
    with pytest.raises(GitopsCheckError, match="no health today"):
        run_gitops_check(["argo-health", str(script)], [CASES[0].object()], gitops_check)


def test_scripts_get_only_the_libraries_argo_cd_opens(gitops_check: Path, tmp_path: Path) -> None:
    """Argo CD opens base, table and package for a script from argocd-cm; not string."""
    script = tmp_path / "uses-string.lua"
    script.write_text('return {status = string.upper("healthy")}\n')
    with pytest.raises(GitopsCheckError, match="with key 'upper'"):
        run_gitops_check(["argo-health", str(script)], [CASES[0].object()], gitops_check)


def test_an_unknown_health_status_is_unknown(gitops_check: Path, tmp_path: Path) -> None:
    script = tmp_path / "fine.lua"
    script.write_text('return {status = "Fine", message = obj.metadata.name}\n')
    (verdict,) = run_gitops_check(
        ["argo-health", str(script)], [CASES[0].object()], gitops_check
    )
    assert (verdict.status, verdict.message) == ("Unknown", "Lua returned an invalid health status")


def test_kstatus_reads_yaml_documents(gitops_check: Path) -> None:
    documents = (
        "apiVersion: v1\nkind: Namespace\nmetadata: {name: a}\n---\n"
        "apiVersion: dlq.orion.io/v1alpha1\nkind: RetryPolicy\n"
        "metadata: {name: b, namespace: a, generation: 2}\nstatus: {observedGeneration: 1}\n"
    )
    out = subprocess.run(
        [str(gitops_check), "kstatus"], input=documents, capture_output=True, text=True, check=True
    ).stdout
    assert [json.loads(line)["status"] for line in out.splitlines()] == ["Current", "InProgress"]
