"""Handlers of DeadLetterQueue objects."""

from __future__ import annotations

from typing import Any

import kopf
from pydantic import ValidationError

from dlq_operator.api import DEAD_LETTER_QUEUE, DeadLetterQueueSpec
from dlq_operator.api.conditions import PROGRESSING, UNAVAILABLE, WORKER_READY, get_condition
from dlq_operator.api.naming import PAUSED_ANNOTATION
from dlq_operator.reconcile.service import DlqObject, Outcome
from dlq_operator.reconcile.topics import TopicClaim, claimed_topics
from dlq_operator.reconcile.workload import worker_verdict_changed


def claims_on_topics_of(spec: kopf.Spec, topic_claims: kopf.Index) -> list[TopicClaim]:
    """Every DLQ's claim on a topic that this spec uses (its own included)."""
    parsed = _valid_spec(spec)
    topics = claimed_topics(parsed) if parsed else {}
    return [claim for topic in topics for claim in topic_claims.get(topic, [])]


def _valid_spec(spec: kopf.Spec) -> DeadLetterQueueSpec | None:
    try:
        return DeadLetterQueueSpec.model_validate(dict(spec))
    except ValidationError:
        return None  # the reconcile reports InvalidSpec


def policy_of(spec: dict[str, Any]) -> str | None:
    return ((spec.get("retry") or {}).get("policyRef") or {}).get("name")


def apply_outcome(body: kopf.Body, patch: kopf.Patch, outcome: Outcome) -> None:
    """Hands the outcome's status patch to kopf (written when the handler returns, even when
    it asks for a retry), posts its Events, and asks kopf to retry when it says so."""
    patch.status.update(outcome.status_patch)
    for type_, reason, message in outcome.events:
        kopf.event(body, type=type_, reason=reason, message=message)
    if outcome.retry_after is not None:
        raise kopf.TemporaryError(outcome.error or "retrying", delay=outcome.retry_after)


async def reconcile(
    body: kopf.Body,
    retry: int,
    memo: kopf.Memo,
    policy_specs: kopf.Index,
    topic_claims: kopf.Index,
    patch: kopf.Patch,
    **_: Any,
) -> None:
    """Brings the DLQ's topics and retry worker to its spec."""
    dlq = DlqObject.from_kopf(body)
    policy = next(iter(policy_specs.get((dlq.namespace, policy_of(dict(body.spec))), [])), None)
    claims = claims_on_topics_of(body.spec, topic_claims)
    outcome = await memo.reconciler.reconcile(dlq, policy, claims, retry)
    apply_outcome(body, patch, outcome)


async def finalize(body: kopf.Body, memo: kopf.Memo, topic_claims: kopf.Index, **_: Any) -> None:
    """Removes the worker (and the topics with deletionPolicy Delete); wakes up the DLQs
    that waited for one of this one's topics."""
    dlq = DlqObject.from_kopf(body)
    claims = claims_on_topics_of(body.spec, topic_claims)
    deleted, others = await memo.reconciler.finalize(dlq, claims)
    if deleted:
        kopf.info(body, reason="Deleted", message=f"deleted {', '.join(deleted)}")
    for namespace, name in others:
        await memo.nudge(DEAD_LETTER_QUEUE.plural, namespace, name, f"topic released by {dlq.uid}")


async def index_topic_claim(
    namespace: str, name: str, spec: kopf.Spec, meta: kopf.Meta, **_: Any
) -> dict[str, TopicClaim] | None:
    """topic -> each DLQ's claim on it: its source, dead-letter and parked topics."""
    parsed = _valid_spec(spec)
    if parsed is None:
        return None
    created = meta.get("creationTimestamp", "")
    return {
        topic: TopicClaim(created=created, namespace=namespace, name=name, topic=topic, role=role)
        for topic, role in claimed_topics(parsed).items()
    }


async def index_policy_user(
    namespace: str, name: str, spec: kopf.Spec, **_: Any
) -> dict[tuple[str, str], str] | None:
    """(namespace, RetryPolicy name) -> name of each DLQ that uses it."""
    policy = policy_of(dict(spec))
    return {(namespace, policy): name} if policy else None


def not_paused(annotations: kopf.Annotations, **_: Any) -> bool:
    return annotations.get(PAUSED_ANNOTATION) != "true"


def worker_pending(annotations: kopf.Annotations, status: kopf.Status, **_: Any) -> bool:
    """A worker that is rolling out or stuck: its pods are looked at again until it serves."""
    reported = get_condition(status.get("conditions") or [], WORKER_READY) or {}
    return not_paused(annotations) and reported.get("reason") in (PROGRESSING, UNAVAILABLE)


async def worker_changed(
    type: str | None,
    body: kopf.Body,
    namespace: str,
    labels: kopf.Labels,
    memo: kopf.Memo,
    dlq_bodies: kopf.Index,
    **_: Any,
) -> None:
    """Reconciles a DLQ again when its worker Deployment became (un)available or went."""
    name = labels.get("app.kubernetes.io/instance", "")
    dlq = next(iter(dlq_bodies.get((namespace, name), [])), None)
    if dlq is None or dlq.metadata.get("deletionTimestamp"):
        return
    reported = get_condition(dlq.status.get("conditions") or [], WORKER_READY) or {}
    if type == "DELETED" or worker_verdict_changed(body, reported.get("reason")):
        version = body.metadata.get("resourceVersion")
        await memo.nudge(DEAD_LETTER_QUEUE.plural, namespace, name, f"worker {type} {version}")


async def index_body(
    namespace: str, name: str, body: kopf.Body, **_: Any
) -> dict[tuple[str, str], kopf.Body]:
    """(namespace, name) -> the object: the depth monitor's watch-fed view of every DLQ,
    so its cycles need no list call (kopf keeps indexes current and silent)."""
    return {(namespace, name): body}
