"""Handlers of RetryPolicy objects: validate, count users, and roll the DLQs that use it."""

from __future__ import annotations

from typing import Any

import kopf
from pydantic import ValidationError

from dlq_operator.api import DEAD_LETTER_QUEUE, RetryPolicySpec
from dlq_operator.reconcile.policies import observed_status, policy_digest


async def index_spec(
    namespace: str, name: str, spec: kopf.Spec, **_: Any
) -> dict[tuple[str, str], RetryPolicySpec] | None:
    """(namespace, name) -> the validated spec; an invalid spec is as good as none."""
    try:
        return {(namespace, name): RetryPolicySpec.model_validate(dict(spec))}
    except ValidationError:
        return None


async def changed(
    body: kopf.Body, patch: kopf.Patch, memo: kopf.Memo, policy_users: kopf.Index, **_: Any
) -> None:
    """Re-reconciles every DLQ that uses this policy (their workers roll when the effective
    configuration changed), and records the policy as observed."""
    meta = body.metadata
    users = sorted(policy_users.get((meta.namespace, meta.name), []))
    why = f"policy {meta.name} {policy_digest(body.spec)}"
    for user in users:
        await memo.nudge(DEAD_LETTER_QUEUE.plural, meta.namespace, user, why)
    patch.status.update(observed_status(body.status, len(users), meta.get("generation")))


async def deleted(body: kopf.Body, memo: kopf.Memo, policy_users: kopf.Index, **_: Any) -> None:
    """DLQs that used this policy lose their worker and say PolicyNotFound."""
    meta = body.metadata
    for user in policy_users.get((meta.namespace, meta.name), []):
        await memo.nudge(
            DEAD_LETTER_QUEUE.plural, meta.namespace, user, f"policy {meta.name} deleted"
        )


async def count_users(
    body: kopf.Body, patch: kopf.Patch, policy_users: kopf.Index, **_: Any
) -> None:
    """Keeps status.usedBy current as DLQs start or stop using the policy."""
    meta = body.metadata
    used_by = len(policy_users.get((meta.namespace, meta.name), []))
    if body.status.get("usedBy") != used_by:
        patch.status["usedBy"] = used_by
