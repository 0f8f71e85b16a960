"""Handlers of RetryPolicy objects: validate, count users, and roll the DLQs that use it."""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime
from typing import Any

import kopf
from pydantic import ValidationError

from dlq_operator.api import DEAD_LETTER_QUEUE, RetryPolicySpec
from dlq_operator.api.conditions import ACCEPTED, State, set_state


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
    digest = hashlib.sha256(json.dumps(dict(body.spec), sort_keys=True).encode()).hexdigest()[:16]
    for user in users:
        await memo.nudge(
            DEAD_LETTER_QUEUE.plural, meta.namespace, user, f"policy {meta.name} {digest}"
        )
    patch.status["observedGeneration"] = meta.get("generation")
    patch.status["usedBy"] = len(users)
    patch.status["conditions"] = set_state(
        body.status.get("conditions") or [],
        State.READY,
        ACCEPTED,
        f"used by {len(users)} DeadLetterQueue(s)",
        meta.get("generation"),
        datetime.now(UTC),
    )


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
