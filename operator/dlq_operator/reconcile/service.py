"""Reconciles one DeadLetterQueue: its topics in Kafka and its retry worker in the cluster.

The planning is pure (:mod:`.topics`, :mod:`.workload`); this module applies the plans
through the adapters and turns every outcome into status conditions and Events. The
handler hands the status patch to kopf, which writes it together with its own bookkeeping
(one status write per reconcile), and, when :attr:`Outcome.retry_after` is set, asks kopf
to come back later (a broker outage heals by itself).
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

from pydantic import ValidationError

from dlq_operator.api import DeadLetterQueueSpec, RetryPolicySpec
from dlq_operator.api.conditions import (
    INVALID_SPEC,
    POLICY_NOT_FOUND,
    RECONCILED,
    RETRY_DISABLED,
    TOPIC_CONFLICT,
    TOPIC_READY,
    WORKER_READY,
    State,
    set_condition,
    set_state,
)
from dlq_operator.api.deadletterqueue import DeletionPolicy
from dlq_operator.api.naming import worker_deployment_name
from dlq_operator.errors import KafkaError, KafkaUnavailable, KubeError, TopicOperationRefused
from dlq_operator.kafka import TopicAdmin, TopicDescription
from dlq_operator.kube import KubeClient
from dlq_operator.reconcile.batching import TopicGateway
from dlq_operator.reconcile.topics import (
    Ownership,
    TopicClaim,
    TopicPlan,
    access_refusal,
    desired_topics,
    plan_topic,
    topic_conflict,
)
from dlq_operator.reconcile.workload import (
    deployment_available,
    desired_deployment,
    desired_network_policy,
    worker_availability,
)
from dlq_operator.settings import Settings


@dataclass(frozen=True)
class DlqObject:
    """The parts of a DeadLetterQueue that reconciling needs."""

    namespace: str
    name: str
    uid: str
    generation: int
    created: str
    spec: Mapping[str, Any]
    status: Mapping[str, Any]

    @classmethod
    def from_kopf(cls, body: Mapping[str, Any]) -> DlqObject:
        meta = body["metadata"]
        return cls(
            meta["namespace"],
            meta["name"],
            meta["uid"],
            meta.get("generation", 0),
            meta.get("creationTimestamp", ""),
            body.get("spec", {}),
            body.get("status", {}),
        )

    @property
    def claim(self) -> tuple[str, str, str]:
        return (self.created, self.namespace, self.name)


@dataclass
class Outcome:
    """What a reconcile found and did: a status patch, Events, and maybe "try again later"."""

    status: dict[str, Any] = field(default_factory=dict)  # the status fields it decided
    status_patch: dict[str, Any] = field(default_factory=dict)  # what differs from the status
    events: list[tuple[str, str, str]] = field(default_factory=list)  # (type, reason, message)
    retry_after: float | None = None
    error: str | None = None

    def event(self, type_: str, reason: str, message: str) -> None:
        self.events.append((type_, reason, message))


class _Conditions:
    """The conditions this reconcile decided, to be laid over whatever the status holds
    when it is written (the monitor writes conditions of its own).

    ``TopicReady`` and ``WorkerReady`` are set one by one; ``Ready``, ``Reconciling`` and
    ``Stalled`` follow from the first part that is not ready (see :meth:`settle`).
    """

    def __init__(self, dlq: DlqObject) -> None:
        self.generation = dlq.generation
        self.decided: dict[str, tuple[bool, str, str, bool]] = {}  # type -> ok, reason, ...
        self.state: tuple[State, str, str] | None = None

    def set(self, type_: str, ok: bool, reason: str, message: str, stalled: bool = False) -> None:
        """``stalled``: not ok, and only a person can change that (kstatus ``Stalled``)."""
        self.decided[type_] = (ok, reason, message, stalled and not ok)

    def refuse(self, reason: str, message: str) -> None:
        """The whole DLQ cannot be reconciled as specified until a person changes it."""
        self.state = (State.STALLED, reason, message)

    def settle(self, ready_message: str) -> None:
        """Ready when every part is; otherwise the first part that is not says why."""
        for type_ in (TOPIC_READY, WORKER_READY):
            ok, reason, message, stalled = self.decided[type_]
            if not ok:
                self.state = (State.STALLED if stalled else State.RECONCILING, reason, message)
                return
        self.state = (State.READY, RECONCILED, ready_message)

    def applied_to(self, conditions: list[dict[str, Any]]) -> list[dict[str, Any]]:
        now = datetime.now(UTC)
        for type_, (ok, reason, message, _) in self.decided.items():
            status = "True" if ok else "False"
            conditions = set_condition(
                conditions, type_, status, reason, message, self.generation, now
            )
        if self.state is not None:
            state, reason, message = self.state
            conditions = set_state(conditions, state, reason, message, self.generation, now)
        return conditions


class DlqReconciler:
    """Applies DeadLetterQueue specs; one instance per operator process."""

    def __init__(self, topics: TopicAdmin, kube: KubeClient, settings: Settings) -> None:
        # Concurrent reconciles share batched broker calls (see .batching).
        self.topics = TopicGateway(topics)
        self.kube = kube
        self.settings = settings

    async def reconcile(
        self,
        dlq: DlqObject,
        policy: RetryPolicySpec | None,
        claims: list[TopicClaim],
        retry: int = 0,
    ) -> Outcome:
        """Brings topics and worker to the spec; never raises for expected failures."""
        outcome = Outcome()
        conditions = _Conditions(dlq)
        try:
            spec = DeadLetterQueueSpec.model_validate(dlq.spec)
        except ValidationError as exc:
            conditions.refuse(INVALID_SPEC, _short(exc))
            return self._finish(dlq, outcome, conditions, None)

        refusal = access_refusal(dlq.namespace, spec, self.settings)
        conflict = topic_conflict(dlq.claim, spec, claims)
        if conflict is not None:
            refusal = (TOPIC_CONFLICT, conflict)
        if refusal is not None:
            # Nothing is done with topics that may be someone else's, and no worker runs.
            conditions.set(TOPIC_READY, False, *refusal, stalled=True)
            conditions.refuse(*refusal)
            await self._remove_worker(dlq, outcome)
            return self._finish(dlq, outcome, conditions, spec)

        observed = await self._reconcile_topics(dlq, spec, outcome, conditions, retry)
        await self._reconcile_worker(dlq, spec, policy, outcome, conditions)
        outcome.status["topic"] = observed
        conditions.settle(
            f"topic {spec.topic_name} matches the spec"
            + ("; retry worker available" if spec.retry and spec.retry.policy_ref else "")
        )
        return self._finish(dlq, outcome, conditions, spec)

    def _finish(
        self,
        dlq: DlqObject,
        outcome: Outcome,
        conditions: _Conditions,
        spec: DeadLetterQueueSpec | None,
    ) -> Outcome:
        """Turns what this reconcile found into a patch of the status as it was read.

        The patch is a merge patch, so ``conditions`` goes whole: another writer's condition
        written since the read (the monitor's) would be replaced, and the monitor, comparing
        with the status it sees next, writes it again in its next cycle.
        """
        outcome.status["observedGeneration"] = dlq.generation
        if spec is not None:
            retry_on = bool(spec.retry and spec.retry.policy_ref)
            outcome.status["parkedTopic"] = spec.parked_topic_name if retry_on else None
        outcome.status_patch = {k: v for k, v in outcome.status.items() if dlq.status.get(k) != v}
        existing = list(dlq.status.get("conditions") or [])
        updated = conditions.applied_to(existing)
        if updated != existing:
            outcome.status_patch["conditions"] = updated
        return outcome

    async def _reconcile_topics(
        self,
        dlq: DlqObject,
        spec: DeadLetterQueueSpec,
        outcome: Outcome,
        conditions: _Conditions,
        retry: int,
    ) -> dict[str, Any] | None:
        wanted = desired_topics(spec)
        ownership = Ownership(
            created=frozenset(dlq.status.get("createdTopics") or ()),
            managed_configs=frozenset(dlq.status.get("managedConfigs") or ()),
            adopt=spec.topic.adopt,
        )
        try:
            found = await self.topics.describe([t.name for t in wanted])
            plans = [plan_topic(t, found.get(t.name), ownership) for t in wanted]
            refused = [p for p in plans if p.refused]
            await self._apply(plans, outcome)
            created = ownership.created | {p.topic.name for p in plans if p.create}
            outcome.status["createdTopics"] = sorted(created)
            outcome.status["managedConfigs"] = sorted({k for t in wanted for k in t.configs})
            dlq_plan = plans[0]
            topic = _after(dlq_plan, found.get(dlq_plan.topic.name))
            if topic is not None and topic.replication_factor <= 0:
                topic = replace(
                    topic, replication_factor=await self.topics.default_replication_factor()
                )
        except KafkaUnavailable as exc:
            delay = min(
                self.settings.kafka_retry_delay_seconds * 2**retry,
                self.settings.kafka_retry_max_delay_seconds,
            )
            message = f"Kafka is unreachable, retrying in {delay:.0f}s: {exc}"
            conditions.set(TOPIC_READY, False, exc.reason, message)
            outcome.retry_after = delay
            outcome.error = message
            return dlq.status.get("topic")
        except KafkaError as exc:
            # A refusal (a config the broker rejects, an ACL) waits for a person; it is
            # still tried again, so it heals once they act.
            refused_by_broker = isinstance(exc, TopicOperationRefused)
            conditions.set(TOPIC_READY, False, exc.reason, str(exc), stalled=refused_by_broker)
            outcome.event("Warning", "TopicFailed", str(exc))
            outcome.retry_after = self.settings.kafka_retry_max_delay_seconds
            outcome.error = str(exc)
            return dlq.status.get("topic")

        if refused:
            message = "; ".join(p.refused or "" for p in refused)
            conditions.set(TOPIC_READY, False, refused[0].refused_reason, message, stalled=True)
            outcome.event("Warning", refused[0].refused_reason, message)
        else:
            conditions.set(
                TOPIC_READY,
                True,
                TOPIC_READY,
                f"topic {spec.topic_name} exists and matches the spec",
            )
        if topic is None:
            return None
        return {
            "name": topic.name,
            "partitions": topic.partitions,
            "replicationFactor": topic.replication_factor,
            "retentionMs": int(topic.configs.get("retention.ms", spec.topic.retention_ms)),
        }

    async def _apply(self, plans: list[TopicPlan], outcome: Outcome) -> None:
        """Applies the changing plans in one batched call per kind of change."""
        changing = [p for p in plans if p.changes and not p.refused]
        creates = [p.topic for p in changing if p.create]
        if creates:
            await self.topics.create(creates)
        grows = {p.topic.name: p.grow_to for p in changing if p.grow_to}
        if grows:
            await self.topics.grow(grows)
        # None removes a config: the topic falls back to the broker's default.
        alters = {
            p.topic.name: {**p.set_configs, **dict.fromkeys(p.delete_configs)}
            for p in changing
            if not p.create and (p.set_configs or p.delete_configs)
        }
        if alters:
            await self.topics.alter_configs(alters)
        for plan in changing:
            outcome.event(
                "Normal", "TopicCreated" if plan.create else "TopicUpdated", plan.describe()
            )

    async def _reconcile_worker(
        self,
        dlq: DlqObject,
        spec: DeadLetterQueueSpec,
        policy: RetryPolicySpec | None,
        outcome: Outcome,
        conditions: _Conditions,
    ) -> None:
        """Deploys, updates or removes the retry worker, and says whether it serves."""
        ref = spec.retry.policy_ref if spec.retry else None
        if ref is None:
            await self._without_worker(
                dlq,
                outcome,
                conditions,
                True,
                RETRY_DISABLED,
                "no spec.retry.policyRef: messages wait for a person",
            )
            return
        if policy is None:
            # Not stalled: in a GitOps apply the policy may simply come later.
            await self._without_worker(
                dlq,
                outcome,
                conditions,
                False,
                POLICY_NOT_FOUND,
                f"RetryPolicy {dlq.namespace}/{ref.name} does not exist; create it "
                f"or change spec.retry.policyRef",
            )
            return
        manifest = desired_deployment(dlq.namespace, dlq.name, dlq.uid, spec, policy, self.settings)
        try:
            action, deployment = await asyncio.to_thread(self.kube.apply_deployment, manifest)
        except KubeError as exc:
            conditions.set(WORKER_READY, False, exc.reason, str(exc))
            outcome.retry_after = outcome.retry_after or self.settings.kafka_retry_delay_seconds
            return
        policy_manifest = desired_network_policy(dlq.namespace, dlq.name, dlq.uid, self.settings)
        if policy_manifest is not None:
            try:
                await asyncio.to_thread(self.kube.apply_network_policy, policy_manifest)
            except KubeError as exc:
                conditions.set(WORKER_READY, False, exc.reason, str(exc))
                outcome.retry_after = self.settings.kafka_retry_delay_seconds
                return
        if action != "unchanged":
            outcome.event(
                "Normal",
                f"Worker{action.capitalize()}",
                f"retry worker Deployment {manifest['metadata']['name']} {action} "
                f"(RetryPolicy {ref.name})",
            )
        outcome.status["workerDeployment"] = manifest["metadata"]["name"]
        pods = []
        if not deployment_available(deployment):
            selector = manifest["spec"]["selector"]["matchLabels"]
            try:
                pods = await asyncio.to_thread(self.kube.list_pods, dlq.namespace, selector)
            except KubeError:
                pods = []  # only the message misses the pods' reasons
        availability = worker_availability(deployment, pods)
        conditions.set(
            WORKER_READY,
            availability.ok,
            availability.reason,
            f"{availability.message} (RetryPolicy {ref.name})",
            stalled=availability.stalled,
        )

    async def _without_worker(
        self,
        dlq: DlqObject,
        outcome: Outcome,
        conditions: _Conditions,
        ok: bool,
        reason: str,
        message: str,
    ) -> None:
        """Removes the worker, if any, and says why there is none."""
        await self._remove_worker(dlq, outcome)
        outcome.status["workerDeployment"] = None
        conditions.set(WORKER_READY, ok, reason, message)

    async def _remove_worker(self, dlq: DlqObject, outcome: Outcome) -> None:
        # Only a worker the status reports can exist: no API call for the many DLQs
        # that never had one.
        if not dlq.status.get("workerDeployment"):
            return
        deployment = worker_deployment_name(dlq.name)
        if await asyncio.to_thread(self.kube.delete_deployment, dlq.namespace, deployment):
            outcome.event(
                "Normal", "WorkerRemoved", f"retry worker Deployment {deployment} removed"
            )
        if self.settings.worker_network_policy is not None:
            # Named like the Deployment.
            await asyncio.to_thread(self.kube.delete_network_policy, dlq.namespace, deployment)

    async def finalize(
        self, dlq: DlqObject, claims: list[TopicClaim]
    ) -> tuple[list[str], list[tuple[str, str]]]:
        """Cleans up on deletion: (what was deleted, for an Event; the other DLQs that use
        one of its topics, (namespace, name), to reconcile again now that it is gone).

        A DLQ that lost a topic claim to another (see ``claims``) never deletes a topic:
        the winner's it is. With deletionPolicy Delete only the topics the DLQ created go.
        """
        deleted = []
        if await asyncio.to_thread(
            self.kube.delete_deployment, dlq.namespace, worker_deployment_name(dlq.name)
        ):
            deleted.append(f"Deployment {worker_deployment_name(dlq.name)}")
        others = sorted({(c.namespace, c.name) for c in claims} - {(dlq.namespace, dlq.name)})
        try:
            spec = DeadLetterQueueSpec.model_validate(dlq.spec)
        except ValidationError:
            return deleted, others
        keeps_topic = topic_conflict(dlq.claim, spec, claims) is None
        if spec.deletion_policy is DeletionPolicy.DELETE and keeps_topic:
            # Only what this DLQ created: an adopted topic was someone's before it.
            created = set(dlq.status.get("createdTopics") or ())
            names = [n for n in (spec.topic_name, spec.parked_topic_name) if n in created]
            if names:
                await self.topics.delete(names)
            deleted += [f"topic {name}" for name in names]
        return deleted, others


def _after(plan: TopicPlan, before: TopicDescription | None) -> TopicDescription | None:
    """The topic as it is once ``plan`` was applied (no second describe needed): a
    replication factor of 0 stands for the broker's default."""
    desired = plan.topic
    if plan.refused:
        return before
    if plan.create:
        return TopicDescription(
            name=desired.name,
            partitions=desired.partitions,
            replication_factor=desired.replication_factor or 0,
            configs=dict(desired.configs),
        )
    if before is None:
        return None
    return replace(
        before, partitions=plan.grow_to or before.partitions, configs=dict(desired.configs)
    )


def _short(exc: ValidationError) -> str:
    return "; ".join(f"spec.{'.'.join(map(str, err['loc']))}: {err['msg']}" for err in exc.errors())
